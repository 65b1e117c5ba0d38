# Anchors for Benchmarks/guest.sh (source it after lib.sh and make_workdir): the SHA-256 guest run
# natively and in Wasmtime, to put Ferry's guest numbers in context.
ANCHORS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FERRY_BENCH_VENV=${FERRY_BENCH_VENV:-/var/tmp/ferry-bench-venv}

# build_native_anchor : compiles sha256_native.c into $WORK and prints the binary's path.
build_native_anchor() {
    require cc:gcc
    cc -O2 -o "$WORK/sha256_native" "$ANCHORS_DIR/sha256_native.c" >&2 || return 1
    echo "$WORK/sha256_native"
}

# ensure_wasmtime : creates (or reuses) a venv with PyPI's wasmtime and prints its python's path.
# Run it as: "$(ensure_wasmtime)" "$ANCHORS_DIR/wasmtime_sha256.py" WASM MIB REPEATS
ensure_wasmtime() {
    local python=$FERRY_BENCH_VENV/bin/python
    if ! "$python" -c 'import importlib.metadata as m; assert m.version("wasmtime").startswith("50.")' 2>/dev/null; then
        # Debian's python3 needs python3-venv for ensurepip.
        python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
        python3 -m venv "$FERRY_BENCH_VENV" >&2 || return 1
        # Pinned to the major version Ferry's own Wasmtime engine speaks (CFerryWasmtime.h).
        "$python" -m pip install -q 'wasmtime==50.*' >&2 || return 1
    fi
    echo "$python"
}
