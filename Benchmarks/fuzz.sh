#!/usr/bin/env bash
# Fuzzes Ferry's parsers with libFuzzer under AddressSanitizer: each harness of Benchmarks/fuzz
# (a package of its own, since a fuzz target has no main) runs for RUNS inputs, mutating the seed
# inputs under Benchmarks/fuzz/corpus/NAME with the dictionary NAME.dict where there is one.
# Prints, per harness, the inputs run, the coverage reached and the crashes found; a crash leaves
# its input in the harness's work folder (crash-*), to be fixed and kept as a regression test.
#   fuzz-http   HTTP/1.1 request heads (pipelined, split across reads), response heads and
#               chunked bodies: the file server's and the l7 switch's parsers (FerryHTTP)
#   fuzz-wire   FerryWire frame headers, every message's payload (endpoints, kv, objects, control)
#               and object values, as a server reads them from a peer (FerryWire)
#   fuzz-wit    WIT interfaces, their stubs, and a call's arguments checked against them
#   fuzz-config the YAML configurations of the switch, the superserver and the redirector
#   fuzz-snapshot guest snapshots (raw, and framed with a valid checksum) and signed modules'
#               signature sections, as a node takes them from a peer
#   fuzz-dns    DNS packets: parsed, written back (which must parse), answered by the redirector
#   fuzz-oci    OCI bundles' config.json
#
# Usage: Benchmarks/fuzz.sh      (RUNS=1000000 MAX_LEN=4096 ONLY=fuzz-http,fuzz-wire,...)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-1000000}
MAX_LEN=${MAX_LEN:-4096}
ONLY=${ONLY:-fuzz-http,fuzz-wire,fuzz-wit,fuzz-config,fuzz-snapshot,fuzz-dns,fuzz-oci}
PACKAGE="$ROOT/Benchmarks/fuzz"
# -enable-testing lets a harness reach a parser that is internal to its module (the redirector's
# responder, the OCI reader) without making it public.
FLAGS=(-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing --package-path "$PACKAGE")

echo "building the harnesses with -sanitize=fuzzer,address..." >&2
swift build "${FLAGS[@]}" >&2
BIN=$(swift build "${FLAGS[@]}" --show-bin-path)
make_workdir fuzz
# Allocations LeakSanitizer cannot see are reachable (see the file); any other leak is reported.
export LSAN_OPTIONS="suppressions=$PACKAGE/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

printf '%-14s %12s %10s %8s %s\n' harness inputs coverage crashes seconds
failed=0
for harness in ${ONLY//,/ }; do
    name=${harness#fuzz-}
    folder="$WORK/$name"
    mkdir -p "$folder"
    cp -r "$PACKAGE/corpus/$name" "$folder/corpus"
    started=$(date +%s)
    status=0
    dictionary=()
    [ -f "$PACKAGE/$name.dict" ] && dictionary=(-dict="$PACKAGE/$name.dict")
    (cd "$folder" && "$BIN/$harness" -runs="$RUNS" -max_len="$MAX_LEN" "${dictionary[@]}" \
        -print_final_stats=1 corpus >"$folder/log" 2>&1) || status=$?
    seconds=$(($(date +%s) - started))
    inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$folder/log" | tail -1)
    coverage=$(grep -o 'cov: [0-9]*' "$folder/log" | tail -1 | awk '{print $2}')
    crashes=$(find "$folder" -maxdepth 1 -name 'crash-*' | wc -l)
    printf '%-14s %12s %10s %8s %s\n' "$harness" "${inputs:-?}" "${coverage:-?}" "$crashes" "$seconds"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        grep -m5 -E 'ERROR|Fatal|SUMMARY' "$folder/log" >&2 || true
        mkdir -p "$PACKAGE/crashes/$name" && cp "$folder"/crash-* "$PACKAGE/crashes/$name/" 2>/dev/null || true
    fi
done
exit "$failed"
