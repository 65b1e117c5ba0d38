#!/usr/bin/env bash
# The instructions a request through Ferry's l7 switch costs in user space, beside HAProxy's http
# mode (`http-reuse always`), both under callgrind in front of the same nginx: a figure that the
# machine's other load does not move, for changes too small for switch.sh's rates to show. Each
# proxy is warmed up by a wrk run, its counters zeroed, then driven by `wrk -t1 -c8` for
# DURATION seconds; the count is divided by the requests wrk saw answered. Ferry's largest
# functions (self cost) are printed too. The kernel's share (switch.sh's perf profile puts it at
# more than half of a request) is not in these counts.
#
# Writes switch-instructions.svg next to this script.
#
# Usage: Benchmarks/switch-instructions.sh      (DURATION=10)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}

require nginx wrk haproxy valgrind

build_release ferry-runtime
make_workdir switch-instructions
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
start_nginx
BACKEND="127.0.0.1:$NGINX_PORT"
# Valgrind 3.19 cannot read the DWARF 5 the toolchain writes: a copy without it keeps the symbols.
strip -g -o "$WORK/ferry-runtime" "$ROOT/.build/release/ferry-runtime"

# measure NAME PORT COMMAND... : runs COMMAND under callgrind, prints "NAME REQUESTS IR".
measure() {
    local name=$1 port=$2
    shift 2
    valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$WORK/$name.%p" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$port/1k.bin" && break; sleep 0.2; done
    wrk -t1 -c8 -d3s "http://127.0.0.1:$port/1k.bin" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local requests
    requests=$(wrk -t1 -c8 -d"${DURATION}s" "http://127.0.0.1:$port/1k.bin" | awk '/requests in/ {print $1}')
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local dump
    dump=$(ls "$WORK/$name".*.1)
    echo "$name $requests $(awk '/^summary:/ {print $2}' "$dump") $dump"
}

SWITCH_PORT=$(free_port)
read -r _ FERRY_REQUESTS FERRY_IR FERRY_DUMP < <(measure ferry "$SWITCH_PORT" \
    "$WORK/ferry-runtime" switch --mode l7 --listen "127.0.0.1:$SWITCH_PORT" --backend "$BACKEND")

HAPROXY_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<CONF
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend files
backend files
    http-reuse always
    server nginx $BACKEND
CONF
read -r _ HAPROXY_REQUESTS HAPROXY_IR _ < <(measure haproxy "$HAPROXY_PORT" haproxy -f "$WORK/haproxy.cfg" -db)

FERRY_PER=$((FERRY_IR / FERRY_REQUESTS))
HAPROXY_PER=$((HAPROXY_IR / HAPROXY_REQUESTS))
echo
echo "instructions a request in user space, 1 KiB through each proxy (callgrind, wrk -t1 -c8 ${DURATION}s):"
printf '%-22s %10s requests  %8s instructions a request\n' "ferry l7" "$FERRY_REQUESTS" "$FERRY_PER"
printf '%-22s %10s requests  %8s instructions a request\n' "haproxy http" "$HAPROXY_REQUESTS" "$HAPROXY_PER"
echo "ferry l7 / haproxy http: $(ratio "$FERRY_PER" "$HAPROXY_PER") (lower is fewer)"
echo
echo "ferry's largest functions, instructions a request (self):"
python3 - "$FERRY_DUMP" "$ROOT/.build/release/ferry-runtime" "$FERRY_REQUESTS" <<'PY'
import bisect, subprocess, sys
# Self cost per function; names the stripped copy left as addresses are found in the symbols.
dump, binary, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
cost, function, in_call = {}, None, False
for line in open(dump):
    if line.startswith("fn="):
        function, in_call = line[3:].strip(), False
    elif line.startswith("calls="):
        in_call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) >= 2:
            if in_call:
                in_call = False
            else:
                cost[function] = cost.get(function, 0) + int(parts[1])
symbols = []
listing = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout
for entry in listing.splitlines():
    parts = entry.split(" ", 2)
    if len(parts) == 3 and parts[1] in "tTwW":
        symbols.append((int(parts[0], 16), parts[2]))
symbols.sort()
starts = [start for start, _ in symbols]
named = {}
for function, count in cost.items():
    if function.startswith("0x"):
        index = bisect.bisect_right(starts, int(function, 16)) - 1
        function = symbols[index][1] if index >= 0 else function
    named[function] = named.get(function, 0) + count
top = sorted(named.items(), key=lambda item: -item[1])[:15]
demangled = subprocess.run(
    ["swift", "demangle", "--simplified", "--compact"],
    input="\n".join(function for function, _ in top), capture_output=True, text=True,
).stdout.splitlines()
for (function, count), name in zip(top, demangled + [f for f, _ in top][len(demangled):]):
    print(f"{count // requests:7d}  {name[:110]}")
PY

{
    printf 'proxy\tferry l7\thaproxy http\n'
    printf 'instructions a request\t%s\t%s\n' "$FERRY_PER" "$HAPROXY_PER"
} | python3 "$(dirname "$0")/chart.py" --lower-is-better --unit "user-space instructions a request, 1 KiB, callgrind" \
    --title "Ferry's l7 switch beside HAProxy's http mode: instructions a request" \
    "$(dirname "$0")/switch-instructions.svg"
