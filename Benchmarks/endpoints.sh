#!/usr/bin/env bash
# Contacting a server, side by side in one run:
#   (a) endpoint lookups per second at Ferry's endpoint daemon (ferry-bench, one connection per
#       client), and lookups as separate processes — `ferry endpoints lookup` against
#       rpcbind's `rpcinfo -p`, and `ferry --help` — for scale;
#   (b) superserver first-byte latency for a nowait service (a new /bin/echo per connection):
#       Ferry's superserver against xinetd and openbsd-inetd running the same program, measured
#       by one client (connect, then wait for the first byte).
#
# Usage: Benchmarks/endpoints.sh     (SECONDS_PER_RUN=5 CONNECTIONS=2000 PROCESSES=300)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUN=${SECONDS_PER_RUN:-5}
CONNECTIONS=${CONNECTIONS:-2000}
PROCESSES=${PROCESSES:-300}

require xinetd rpcbind
# The libraries of openbsd-inetd, whose binary is unpacked below rather than installed.
dpkg -s libevent-2.1-7 >/dev/null 2>&1 || apt_install libevent-2.1-7 libbsd0 libwrap0

build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir endpoints-bench

# openbsd-inetd conflicts with xinetd as a Debian package, so its binary is unpacked, not installed.
(cd "$WORK" && apt-get download -qq openbsd-inetd 2>/dev/null && dpkg-deb -x openbsd-inetd_*.deb oi)
OPENBSD_INETD="$WORK/oi/usr/sbin/inetd"

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

cat >"$WORK/first_byte.py" <<'PY'
# Connects N times in a row and times each connection from connect() to its first byte.
import socket, statistics, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
samples = []
for _ in range(count):
    start = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    if not s.recv(1):
        sys.exit("connection closed before the first byte")
    samples.append((time.perf_counter() - start) * 1e6)
    s.close()
samples.sort()
print(f"{statistics.mean(samples):.0f} {samples[len(samples)//2]:.0f} {samples[int(len(samples)*0.99)]:.0f}")
PY

# --- (a) lookups -------------------------------------------------------------------------------
"$FERRY" endpointd --port 0 >"$WORK/endpointd.out" 2>/dev/null &
PIDS+=($!)
DAEMON=$(listening_address "$WORK/endpointd.out")
"$FERRY" endpoints --addr "$DAEMON" register bench 127.0.0.1:9 --ttl 3600 --once >/dev/null

lookups() {
    "$BENCH" endpoints --addr "$DAEMON" --name bench --clients "$1" --seconds "$RUN" |
        sed -E 's/.*ops_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+).*/\1 \2 \3/'
}
echo "lookups, 1 and 16 clients..." >&2
read -r l1 l1p50 l1p99 < <(lookups 1)
read -r l16 l16p50 l16p99 < <(lookups 16)

pgrep -x rpcbind >/dev/null || { rpcbind -w 2>/dev/null || rpcbind; }
# `ferry --help` answers before its parser only where the parser would lay the help out for 80
# columns; an exported COLUMNS would measure the parser. (lib.sh clears FERRY_CREDENTIALS: the
# daemon and the lookups speak plain TCP, as rpcbind does.)
unset COLUMNS
per_second() { python3 -c "print(f'{$1 / $2:.0f}')"; }
echo "processes: ferry endpoints lookup and ferry --help vs rpcinfo -p, $PROCESSES each..." >&2
start=$(date +%s.%N)
for _ in $(seq "$PROCESSES"); do "$FERRY" endpoints --addr "$DAEMON" lookup bench >/dev/null; done
ferry_proc=$(per_second "$PROCESSES" "$(echo "$(date +%s.%N) - $start" | bc)")
start=$(date +%s.%N)
for _ in $(seq "$PROCESSES"); do "$FERRY" --help >/dev/null; done
help_proc=$(per_second "$PROCESSES" "$(echo "$(date +%s.%N) - $start" | bc)")
start=$(date +%s.%N)
for _ in $(seq "$PROCESSES"); do rpcinfo -p 127.0.0.1 >/dev/null; done
rpc_proc=$(per_second "$PROCESSES" "$(echo "$(date +%s.%N) - $start" | bc)")

# --- (b) superserver first-byte latency ---------------------------------------------------------
FERRY_PORT=$(free_port)
cat >"$WORK/superserver.yaml" <<EOF
endpoints: off
services:
  - {name: hello, listen: "127.0.0.1:$FERRY_PORT", mode: nowait, program: /bin/echo, args: [hi], max_instances: 100000}
EOF
"$FERRY" superserver --config "$WORK/superserver.yaml" >"$WORK/superserver.out" 2>"$WORK/superserver.err" &
PIDS+=($!)

XINETD_PORT=$(free_port)
cat >"$WORK/xinetd.conf" <<EOF
defaults
{
    instances = UNLIMITED
    cps = 100000 1
    per_source = UNLIMITED
}
service hello
{
    type = UNLISTED
    port = $XINETD_PORT
    bind = 127.0.0.1
    socket_type = stream
    protocol = tcp
    wait = no
    user = root
    server = /bin/echo
    server_args = hi
}
EOF
xinetd -dontfork -f "$WORK/xinetd.conf" -pidfile "$WORK/xinetd.pid" 2>"$WORK/xinetd.err" &
PIDS+=($!)

INETD_PORT=$(free_port)
echo "127.0.0.1:$INETD_PORT stream tcp nowait root /bin/echo echo hi" >"$WORK/inetd.conf"
"$OPENBSD_INETD" -d -R 1000000 "$WORK/inetd.conf" 2>"$WORK/inetd.err" &
PIDS+=($!)

wait_port "$FERRY_PORT" && wait_port "$XINETD_PORT" && wait_port "$INETD_PORT"
echo "first-byte latency, $CONNECTIONS connections each..." >&2
read -r f_mean f_p50 f_p99 < <(python3 "$WORK/first_byte.py" "$FERRY_PORT" "$CONNECTIONS")
read -r x_mean x_p50 x_p99 < <(python3 "$WORK/first_byte.py" "$XINETD_PORT" "$CONNECTIONS")
read -r o_mean o_p50 o_p99 < <(python3 "$WORK/first_byte.py" "$INETD_PORT" "$CONNECTIONS")
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

echo
echo "(a) endpoint lookups"
printf '%-44s %12s %8s %8s\n' "" "lookups/s" p50_us p99_us
printf '%-44s %12s %8s %8s\n' "ferry endpoint daemon, 1 client" "$l1" "$l1p50" "$l1p99"
printf '%-44s %12s %8s %8s\n' "ferry endpoint daemon, 16 clients" "$l16" "$l16p50" "$l16p99"
printf '%-44s %12s %8s\n' "ferry endpoints lookup (a process each)" "$ferry_proc" "$(ratio "$ferry_proc" "$rpc_proc")"
printf '%-44s %12s %8s\n' "ferry --help (a process each)" "$help_proc" "$(ratio "$help_proc" "$rpc_proc")"
printf '%-44s %12s %8s\n' "rpcinfo -p at rpcbind (a process each)" "$rpc_proc" "1.00x"
echo
echo "(b) superserver first-byte latency, nowait /bin/echo, $CONNECTIONS sequential connections"
printf '%-22s %10s %10s %10s %14s\n' "" mean_us p50_us p99_us "p50 vs xinetd"
printf '%-22s %10s %10s %10s %14s\n' "ferry superserver" "$f_mean" "$f_p50" "$f_p99" "$(ratio "$f_p50" "$x_p50")"
printf '%-22s %10s %10s %10s %14s\n' "xinetd 2.3.15" "$x_mean" "$x_p50" "$x_p99" "1.00x"
printf '%-22s %10s %10s %10s %14s\n' "openbsd-inetd" "$o_mean" "$o_p50" "$o_p99" "$(ratio "$o_p50" "$x_p50")"
echo "(latency: lower is better; below 1.00x is faster than xinetd)"

{
    printf 'process\tferry\trpcinfo -p\n'
    printf 'ferry endpoints lookup\t%s\t%s\n' "$ferry_proc" "$rpc_proc"
    printf 'ferry --help\t%s\t%s\n' "$help_proc" "$rpc_proc"
} | python3 "$(dirname "$0")/chart.py" --unit "processes/s, each started, answered and ended in turn" \
    --title "Starting ferry as a client, beside rpcinfo -p at rpcbind" "$(dirname "$0")/endpoints.svg"
