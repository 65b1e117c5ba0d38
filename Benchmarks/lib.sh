# Shared by the benchmark scripts (source it): Ferry's release build, a work folder that is
# removed on exit, background processes that are stopped on exit, and free ports.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Plain TCP between the Ferry processes a script starts, whatever credentials ~/.ferry holds: a
# script that measures TLS (tls.sh) names its cluster's credentials itself.
export FERRY_CREDENTIALS=${FERRY_CREDENTIALS-}
PIDS=()

# apt_install PACKAGE... : installs Debian packages, saying so on stderr.
apt_install() {
    echo "installing: $*" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# require COMMAND[:PACKAGE]... : installs the package of each command that is missing (the
# package is named like the command unless given).
require() {
    local missing=() spec
    for spec in "$@"; do command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}"); done
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# build_release PRODUCT... : builds each product in release mode.
build_release() {
    echo "building $* (release)..." >&2
    for product in "$@"; do (cd "$ROOT" && swift build -c release --product "$product" >/dev/null); done
}

# make_workdir NAME : sets WORK to a fresh folder under /var/tmp, removed with PIDS' processes on exit.
make_workdir() {
    WORK=$(mktemp -d "/var/tmp/ferry-$1-XXXXXX")
    trap cleanup EXIT
}

cleanup() {
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_two_nodes : an endpoint daemon and two `ferry node` processes, n1 and n2, with no data
# directory (nothing journaled), trusting a key made in $WORK/keys; sets DAEMON. Needs FERRY.
start_two_nodes() {
    "$FERRY" endpointd --port 0 >"$WORK/endpointd.out" 2>"$WORK/endpointd.err" &
    PIDS+=($!)
    DAEMON=$(listening_address "$WORK/endpointd.out")
    "$FERRY" keys generate --out "$WORK/keys" >/dev/null
    local node
    for node in n1 n2; do
        "$FERRY" node --name "$node" --endpoints "$DAEMON" --trust "$WORK/keys/ferry.pub" \
            >"$WORK/$node.out" 2>"$WORK/$node.err" &
        PIDS+=($!)
        listening_address "$WORK/$node.out" >/dev/null
    done
}

# listening_address FILE : waits for a Ferry server's first line in FILE and prints its HOST:PORT.
listening_address() {
    for _ in $(seq 200); do grep -q '^listening on' "$1" 2>/dev/null && break; sleep 0.05; done
    head -1 "$1" | sed 's/^listening on //; s/ .*//'
}

# start_nginx : nginx serving $WORK/www with as many workers as cores; sets URL and NGINX_PORT.
# EXTRA_NGINX_SERVERS, when set, is added inside its http block.
start_nginx() {
    local port
    port=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
user root;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server { listen 127.0.0.1:$port; root $WORK/www; }
    ${EXTRA_NGINX_SERVERS:-}
}
CONF
    nginx -c "$WORK/nginx/nginx.conf" &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/1k.bin" && break; sleep 0.05; done
    URL="http://127.0.0.1:$port"
    NGINX_PORT=$port
}

# stop_last : stops the process started last.
stop_last() {
    local pid=${PIDS[-1]}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
}

# cpu_ticks PID... : user and system clock ticks (1/getconf CLK_TCK s) used so far by the
# processes and their child processes (nginx's workers under its master), every thread counted.
cpu_ticks() {
    local total=0 pid ticks
    for pid in "$@" $(for parent in "$@"; do pgrep -P "$parent" || true; done); do
        # utime and stime, fields 14 and 15, counted after the name in parentheses
        ticks=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ticks))
    done
    echo "$total"
}

# cpu_per_request TICKS RATE SECONDS -> microseconds of CPU a request took
cpu_per_request() {
    python3 -c "import os, sys; t, r, s = map(float, sys.argv[1:]); print(f'{t / os.sysconf(\"SC_CLK_TCK\") / (r * s) * 1e6:.1f}' if r else '-')" "$1" "$2" "$3"
}

# wrk_rate ARGS... -> prints requests/s (non-2xx answers are reported, not counted as success)
wrk_rate() {
    local out rate
    out=$(wrk "$@" 2>&1)
    echo "wrk $*" >>"$WORK/../ferry-bench-wrk.log"
    echo "$out" >>"$WORK/../ferry-bench-wrk.log"
    if grep -q 'Non-2xx' <<<"$out"; then echo "warning: $(grep 'Non-2xx' <<<"$out") for wrk $*" >&2; fi
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    if [ -z "$rate" ]; then
        echo "warning: wrk $* printed no rate: $(tail -3 <<<"$out" | tr '\n' ' ')" >&2
        rate=0
    fi
    echo "$rate"
}

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}x' if b else '-')" "$1" "$2"; }
