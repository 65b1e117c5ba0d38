#!/usr/bin/env bash
# Fuzzes Ferry's parsers with libFuzzer under AddressSanitizer: each harness of Benchmarks/fuzz
# (a package of its own, since a fuzz target has no main) runs for RUNS inputs, mutating the seed
# inputs under Benchmarks/fuzz/corpus/NAME with the dictionary NAME.dict. Prints, per harness, the
# inputs run, the coverage reached and the crashes found; a crash leaves its input in the work
# folder (crash-*), to be fixed and kept as a regression test.
#   fuzz-http   HTTP/1.1 request heads (pipelined, split across reads), response heads and
#               chunked bodies: the file server's and the l7 switch's parsers (FerryHTTP)
#   fuzz-wire   FerryWire frame headers, every message's payload (endpoints, kv, objects, control)
#               and object values, as a server reads them from a peer (FerryWire)
#
# Usage: Benchmarks/fuzz.sh      (RUNS=1000000 MAX_LEN=4096 ONLY=fuzz-http,fuzz-wire)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-1000000}
MAX_LEN=${MAX_LEN:-4096}
ONLY=${ONLY:-fuzz-http,fuzz-wire}
PACKAGE="$ROOT/Benchmarks/fuzz"
FLAGS=(-c release -Xswiftc -sanitize=fuzzer,address --package-path "$PACKAGE")

echo "building the harnesses with -sanitize=fuzzer,address..." >&2
swift build "${FLAGS[@]}" >&2
BIN=$(swift build "${FLAGS[@]}" --show-bin-path)
make_workdir fuzz

printf '%-12s %12s %10s %8s %s\n' harness inputs coverage crashes seconds
failed=0
for harness in ${ONLY//,/ }; do
    name=${harness#fuzz-}
    corpus="$WORK/corpus-$name"
    cp -r "$PACKAGE/corpus/$name" "$corpus"
    started=$(date +%s)
    status=0
    (cd "$WORK" && "$BIN/$harness" -runs="$RUNS" -max_len="$MAX_LEN" -dict="$PACKAGE/$name.dict" \
        -print_final_stats=1 "$corpus" >"$WORK/$harness.log" 2>&1) || status=$?
    seconds=$(($(date +%s) - started))
    inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$harness.log" | tail -1)
    coverage=$(grep -o 'cov: [0-9]*' "$WORK/$harness.log" | tail -1 | awk '{print $2}')
    crashes=$(find "$WORK" -maxdepth 1 -name 'crash-*' | wc -l)
    printf '%-12s %12s %10s %8s %s\n' "$harness" "${inputs:-?}" "${coverage:-?}" "$crashes" "$seconds"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        grep -m5 -E 'ERROR|Fatal|SUMMARY' "$WORK/$harness.log" >&2 || true
        mkdir -p "$ROOT/Benchmarks/fuzz/crashes" && cp "$WORK"/crash-* "$ROOT/Benchmarks/fuzz/crashes/" 2>/dev/null || true
    fi
done
exit "$failed"
