#!/usr/bin/env bash
# A backend killed under load, RUNS times: wrk -t2 -c16 for DURATION seconds through a switch in
# front of two `ferry serve files --model dispatcher`, one of them `kill -9`'d at a random moment
# while requests run; a run fails when wrk saw any failed request (a socket error, or an answer
# that is not 2xx/3xx). Ferry's l7 switch beside HAProxy's http mode configured to retry
# (`retries 3`, `option redispatch`, `retry-on all-retryable-errors`), in the same run.
#
# Usage: Benchmarks/switch-kill.sh      (RUNS=50 DURATION=3 FILE_KB=1)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-50}
DURATION=${DURATION:-3}
FILE_KB=${FILE_KB:-1}
require wrk haproxy
[ -n "${NO_BUILD:-}" ] || build_release ferry
FERRY="$ROOT/.build/release/ferry"
make_workdir switch-kill-bench
mkdir -p "$WORK/www"
head -c $((FILE_KB * 1024)) /dev/urandom >"$WORK/www/file.bin"

# start_backend NAME : a file server; sets BACKEND_PID and BACKEND.
start_backend() {
    "$FERRY" serve files --root "$WORK/www" --port 0 --model dispatcher >"$WORK/$1.out" 2>"$WORK/$1.err" &
    BACKEND_PID=$!
    BACKEND=$(listening_address "$WORK/$1.out")
}

# one_run SWITCH : starts two backends and the switch, kills one mid-load; prints the failed requests.
one_run() {
    start_backend b1
    local victim=$BACKEND_PID first=$BACKEND
    start_backend b2
    local other=$BACKEND_PID second=$BACKEND front switch_pid
    if [ "$1" = ferry ]; then
        "$FERRY" switch --mode l7 --listen 127.0.0.1:0 --backend "$first" --backend "$second" \
            >"$WORK/switch.out" 2>"$WORK/switch.err" &
        switch_pid=$!
        front=$(listening_address "$WORK/switch.out")
    else
        local port
        port=$(free_port)
        cat >"$WORK/haproxy.cfg" <<CONF
global
    nbthread $(nproc)
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on all-retryable-errors
    http-reuse always
frontend front
    bind 127.0.0.1:$port
    default_backend files
backend files
    balance roundrobin
    server b1 $first
    server b2 $second
CONF
        haproxy -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
        switch_pid=$!
        front="127.0.0.1:$port"
        for _ in $(seq 100); do curl -sf -o /dev/null "http://$front/file.bin" && break; sleep 0.05; done
    fi
    wrk -t2 -c16 -d"${DURATION}s" "http://$front/file.bin" >"$WORK/wrk.out" 2>&1 &
    local load=$!
    sleep "$(python3 -c "import random; print(round(random.uniform(0.3, $DURATION - 1), 2))")"
    kill -9 "$victim"
    wait "$load" || true
    kill "$switch_pid" "$other" 2>/dev/null || true
    wait "$switch_pid" "$other" "$victim" 2>/dev/null || true
    python3 - "$WORK/wrk.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
bad = int((re.search(r"Non-2xx or 3xx responses: (\d+)", text) or [0, 0])[1])
total = int((re.search(r"(\d+) requests in", text) or [0, 0])[1])
print(errors + bad, total)
PY
}

echo "killing a backend under load, $RUNS runs each..." >&2
declare -A FAILED_RUNS FAILED_REQUESTS REQUESTS
for target in ferry haproxy; do
    FAILED_RUNS[$target]=0
    FAILED_REQUESTS[$target]=0
    REQUESTS[$target]=0
    for run in $(seq "$RUNS"); do
        read -r failed total < <(one_run "$target")
        REQUESTS[$target]=$((REQUESTS[$target] + total))
        if [ "$failed" -gt 0 ]; then
            FAILED_RUNS[$target]=$((FAILED_RUNS[$target] + 1))
            FAILED_REQUESTS[$target]=$((FAILED_REQUESTS[$target] + failed))
            echo "  $target run $run: $failed failed of $total" >&2
        fi
    done
done

echo "A backend kill -9'd at a random moment under wrk -t2 -c16 (${DURATION} s, ${FILE_KB} KiB), $RUNS runs each"
printf '%-34s %12s %16s %14s\n' "switch" "failed runs" "failed requests" "requests"
printf '%-34s %12s %16s %14s\n' "ferry switch --mode l7" "${FAILED_RUNS[ferry]}/$RUNS" "${FAILED_REQUESTS[ferry]}" "${REQUESTS[ferry]}"
printf '%-34s %12s %16s %14s\n' "haproxy (http, retry-on, redispatch)" "${FAILED_RUNS[haproxy]}/$RUNS" "${FAILED_REQUESTS[haproxy]}" "${REQUESTS[haproxy]}"
echo "goal: 0 failed runs for ferry"
