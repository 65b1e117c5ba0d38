#!/usr/bin/env bash
# Ferry's switch in front of nginx, side by side with HAProxy (tcp and http mode) and nginx's own
# proxy_pass, in one run: wrk -t2 -c64 on 1 KiB and 64 KiB files, as ratios to nginx served
# directly. TCP handoff needs a Ferry backend (the file server, taking handoffs): it is compared
# with that backend served directly.
#
# Every configuration runs once per round, ROUNDS times, in turn (the order reversed every other
# round), and each figure is the median of its rounds: on a shared machine a neighbour's burst
# then lands on one round of every configuration rather than on the whole of one. Each round's
# l7 and l4 ratios are printed too, and what each request cost the proxy in CPU (user and system
# time of its process over the run, per request): a figure the neighbours move less than the rate.
#
# Writes switch.svg (each switch beside its HAProxy mode and nginx's proxy_pass) next to this script.
#
# Usage: Benchmarks/switch.sh      (DURATION=5 ROUNDS=3)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}

require nginx wrk haproxy

build_release ferry
FERRY="$ROOT/.build/release/ferry"
make_workdir switch-bench
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c 65536 /dev/urandom >"$WORK/www/64k.bin"

# nginx serves the files, and proxies to itself on a second port (its proxy_pass anchor).
PROXY_PORT=$(free_port)
BACKEND_PORT=$(free_port)
EXTRA_NGINX_SERVERS="upstream files { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
    server { listen 127.0.0.1:$PROXY_PORT; location / { proxy_pass http://files; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
    server { listen 127.0.0.1:$BACKEND_PORT; root $WORK/www; }"
start_nginx
NGINX_PID=${PIDS[-1]}
DIRECT="127.0.0.1:$BACKEND_PORT"

"$FERRY" switch --mode l4 --listen 127.0.0.1:0 --backend "$DIRECT" >"$WORK/switch.out" 2>"$WORK/switch.err" &
PIDS+=($!)
FERRY_L4_PID=$!
FERRY_L4=$(listening_address "$WORK/switch.out")
"$FERRY" switch --mode l7 --listen 127.0.0.1:0 --backend "$DIRECT" >"$WORK/switch-l7.out" 2>"$WORK/switch-l7.err" &
PIDS+=($!)
FERRY_L7_PID=$!
FERRY_L7=$(listening_address "$WORK/switch-l7.out")

# Ferry's own file server (event-driven, one loop per core), served directly and by handoff.
"$FERRY" serve files --root "$WORK/www" --port 0 --handoff-socket "$WORK/handoff.sock" \
    >"$WORK/files.out" 2>"$WORK/files.err" &
PIDS+=($!)
FERRY_FILES_PID=$!
FERRY_FILES=$(listening_address "$WORK/files.out")
"$FERRY" switch --mode handoff --listen 127.0.0.1:0 --backend "unix:$WORK/handoff.sock" \
    >"$WORK/switch-handoff.out" 2>"$WORK/switch-handoff.err" &
PIDS+=($!)
FERRY_HANDOFF_PID=$!
FERRY_HANDOFF=$(listening_address "$WORK/switch-handoff.out")

# haproxy_config MODE PORT : HAProxy with as many threads as cores, in front of nginx.
haproxy_config() {
    cat <<CONF
global
    nbthread $(nproc)
    maxconn 4096
defaults
    mode $1
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:$2
    default_backend files
backend files
    $([ "$1" = http ] && echo "http-reuse always")
    server nginx $DIRECT
CONF
}
HAPROXY_TCP_PORT=$(free_port)
HAPROXY_HTTP_PORT=$(free_port)
haproxy_config tcp "$HAPROXY_TCP_PORT" >"$WORK/haproxy-tcp.cfg"
haproxy_config http "$HAPROXY_HTTP_PORT" >"$WORK/haproxy-http.cfg"
haproxy -f "$WORK/haproxy-tcp.cfg" -db >"$WORK/haproxy-tcp.log" 2>&1 &
PIDS+=($!)
HAPROXY_TCP_PID=$!
haproxy -f "$WORK/haproxy-http.cfg" -db >"$WORK/haproxy-http.log" 2>&1 &
PIDS+=($!)
HAPROXY_HTTP_PID=$!

declare -A TARGETS=(
    [direct]="$DIRECT" [ferry-l4]="$FERRY_L4" [ferry-l7]="$FERRY_L7" [haproxy-tcp]="127.0.0.1:$HAPROXY_TCP_PORT"
    [haproxy-http]="127.0.0.1:$HAPROXY_HTTP_PORT" [nginx-proxy_pass]="127.0.0.1:$PROXY_PORT"
    [ferry-files]="$FERRY_FILES" [ferry-handoff]="$FERRY_HANDOFF"
)
# Whose CPU a request through each costs: the proxy's own (nginx's proxy_pass shares its workers
# with the backend, so it has none of its own); served directly, the server's; a handoff, the
# switch's and the file server's.
declare -A CPU_PIDS=(
    [direct]="$NGINX_PID" [ferry-l4]="$FERRY_L4_PID" [ferry-l7]="$FERRY_L7_PID" [haproxy-tcp]="$HAPROXY_TCP_PID"
    [haproxy-http]="$HAPROXY_HTTP_PID" [ferry-files]="$FERRY_FILES_PID"
    [ferry-handoff]="$FERRY_HANDOFF_PID $FERRY_FILES_PID"
)
ORDER=(direct ferry-l4 ferry-l7 haproxy-tcp haproxy-http nginx-proxy_pass ferry-files ferry-handoff)
for name in "${ORDER[@]}"; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://${TARGETS[$name]}/1k.bin" && break; sleep 0.05; done
done

declare -A SAMPLES RATE CPU_SAMPLES CPU
ROUND_RATIOS=()
for round in $(seq "$ROUNDS"); do
    turn=("${ORDER[@]}")
    if ((round % 2 == 0)); then
        turn=()
        for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do turn+=("${ORDER[i]}"); done
    fi
    declare -A THIS=()
    for size in 1k 64k; do
        for name in "${turn[@]}"; do
            echo "round $round of $ROUNDS: $name, $size..." >&2
            # shellcheck disable=SC2086 # a list of process ids
            before=$(cpu_ticks ${CPU_PIDS[$name]:-})
            THIS[$name.$size]=$(wrk_rate -t2 -c64 -d"${DURATION}s" "http://${TARGETS[$name]}/$size.bin")
            # shellcheck disable=SC2086
            after=$(cpu_ticks ${CPU_PIDS[$name]:-})
            SAMPLES[$name.$size]+="${THIS[$name.$size]} "
            if [ -n "${CPU_PIDS[$name]:-}" ]; then
                CPU_SAMPLES[$name.$size]+="$(cpu_per_request $((after - before)) "${THIS[$name.$size]}" "$DURATION") "
            fi
        done
    done
    ROUND_RATIOS+=("round $round: l7/http 1KiB $(ratio "${THIS[ferry-l7.1k]}" "${THIS[haproxy-http.1k]}"), 64KiB $(ratio "${THIS[ferry-l7.64k]}" "${THIS[haproxy-http.64k]}"); l4/tcp 1KiB $(ratio "${THIS[ferry-l4.1k]}" "${THIS[haproxy-tcp.1k]}"), 64KiB $(ratio "${THIS[ferry-l4.64k]}" "${THIS[haproxy-tcp.64k]}")")
done
for key in "${!SAMPLES[@]}"; do
    # shellcheck disable=SC2086 # the samples are one word each
    RATE[$key]=$(python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' ${SAMPLES[$key]})
done
for key in "${!CPU_SAMPLES[@]}"; do
    # shellcheck disable=SC2086
    CPU[$key]=$(python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.1f}")' ${CPU_SAMPLES[$key]})
done

echo "wrk -t2 -c64, ${DURATION}s a run; each figure the median of $ROUNDS rounds taken in turn"

printf '%-18s | %12s %9s %8s | %12s %9s %8s\n' "configuration" "1KiB req/s" "vs direct" "CPU µs" \
    "64KiB req/s" "vs direct" "CPU µs"
printf -- '------------------ | ------------ --------- -------- | ------------ --------- --------\n'
for name in "${ORDER[@]}"; do
    printf '%-18s | %12s %9s %8s | %12s %9s %8s\n' "$name" \
        "${RATE[$name.1k]}" "$(ratio "${RATE[$name.1k]}" "${RATE[direct.1k]}")" "${CPU[$name.1k]:--}" \
        "${RATE[$name.64k]}" "$(ratio "${RATE[$name.64k]}" "${RATE[direct.64k]}")" "${CPU[$name.64k]:--}"
done
echo "CPU µs: user and system time a request cost the proxy's (or the server's) process, per request"
echo
echo "ferry l4 / haproxy tcp: 1KiB $(ratio "${RATE[ferry-l4.1k]}" "${RATE[haproxy-tcp.1k]}"), 64KiB $(ratio "${RATE[ferry-l4.64k]}" "${RATE[haproxy-tcp.64k]}") (goal: at least 1.0x)"
echo "ferry l7 / haproxy http: 1KiB $(ratio "${RATE[ferry-l7.1k]}" "${RATE[haproxy-http.1k]}"), 64KiB $(ratio "${RATE[ferry-l7.64k]}" "${RATE[haproxy-http.64k]}") (goal: at least 1.0x)"
echo "CPU a request, ferry l7 / haproxy http: 1KiB $(ratio "${CPU[ferry-l7.1k]}" "${CPU[haproxy-http.1k]}"), 64KiB $(ratio "${CPU[ferry-l7.64k]}" "${CPU[haproxy-http.64k]}"); ferry l4 / haproxy tcp: 1KiB $(ratio "${CPU[ferry-l4.1k]}" "${CPU[haproxy-tcp.1k]}"), 64KiB $(ratio "${CPU[ferry-l4.64k]}" "${CPU[haproxy-tcp.64k]}") (lower is less CPU)"
echo "ferry handoff / ferry-files direct: 1KiB $(ratio "${RATE[ferry-handoff.1k]}" "${RATE[ferry-files.1k]}"), 64KiB $(ratio "${RATE[ferry-handoff.64k]}" "${RATE[ferry-files.64k]}") (goal: at least 0.95x)"
printf '%s\n' "${ROUND_RATIOS[@]}"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}'), $(nproc) cores, wrk on the same machine"

{
    printf 'switch\tferry l7\tferry l4\thaproxy http\thaproxy tcp\tnginx proxy_pass\n'
    for size in 1k 64k; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${size/k/ KiB}" "${RATE[ferry-l7.$size]}" "${RATE[ferry-l4.$size]}" \
            "${RATE[haproxy-http.$size]}" "${RATE[haproxy-tcp.$size]}" "${RATE[nginx-proxy_pass.$size]}"
    done
} | python3 "$(dirname "$0")/chart.py" --unit "requests/s through the proxy to nginx, wrk -t2 -c64" \
    --title "Ferry's switch beside HAProxy (http-reuse always) and nginx proxy_pass" "$(dirname "$0")/switch.svg"
