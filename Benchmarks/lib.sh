# Shared by the benchmark scripts (source it): Ferry's release build, a work folder that is
# removed on exit, background processes that are stopped on exit, and free ports.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIDS=()

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

# listening_address FILE : waits for a Ferry server's first line in FILE and prints its HOST:PORT.
listening_address() {
    for _ in $(seq 200); do grep -q '^listening on' "$1" 2>/dev/null && break; sleep 0.05; done
    head -1 "$1" | sed 's/^listening on //; s/ .*//'
}
