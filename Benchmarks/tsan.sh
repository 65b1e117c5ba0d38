#!/usr/bin/env bash
# Runs Ferry's test suites under ThreadSanitizer and prints, per group of suites, the tests run
# and the race reports found (each kept under the work folder's reports/, printed at the end).
# The build goes to its own scratch folder, so it never disturbs the normal one; the first build
# takes about 20 minutes, later ones only what changed.
#   concurrent  the wire, endpoints, kv, objects, HTTP, servers, switch, client and superserver
#   guests      the guest VM, its scheduler, migration, the CDN and containers
# Races Ferry makes on purpose are suppressed in Benchmarks/tsan.supp, each with its reason.
# Wasmtime's library is not instrumented (a test on it never finished under TSan here), so the
# suites run without it: its engine's tests skip and the rest run on WasmKit.
#
# Usage: Benchmarks/tsan.sh      (ONLY=concurrent,guests SCRATCH=/var/tmp/ferry-tsan)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ONLY=${ONLY:-concurrent,guests}
SCRATCH=${SCRATCH:-/var/tmp/ferry-tsan}
FLAGS=(--sanitize=thread --scratch-path "$SCRATCH")

echo "building the tests with -sanitize=thread in $SCRATCH..." >&2
(cd "$ROOT" && swift build --build-tests "${FLAGS[@]}" >&2)
make_workdir tsan
export TSAN_OPTIONS="suppressions=$ROOT/Benchmarks/tsan.supp:log_path=$WORK/reports/report${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

printf '%-11s %6s %7s %8s %s\n' group tests failed reports seconds
found=0
for group in ${ONLY//,/ }; do
    case $group in
    concurrent) filter="FerryWireTests|FerryEndpointsTests|FerryKVTests|FerryObjectsTests|FerryHTTPTests|FerryServerTests|FerrySwitchTests|FerryClientTests|FerrySuperserverTests" ;;
    guests) filter="FerryGuestTests|FerryMigrationTests|FerryCDNTests|FerryContainerTests" ;;
    *) echo "unknown group '$group': concurrent or guests" >&2 && exit 2 ;;
    esac
    mkdir -p "$WORK/reports" && rm -f "$WORK/reports"/*
    started=$(date +%s)
    (cd "$ROOT" && env -u VIRTUAL_ENV swift test --skip-build "${FLAGS[@]}" --filter "$filter" >"$WORK/$group.log" 2>&1) || true
    tests=$(grep -oE 'Test run with [0-9]+ tests' "$WORK/$group.log" | grep -oE '[0-9]+' | tail -1)
    failed=$(grep -c '^✘ Test .* failed' "$WORK/$group.log" || true)
    reports=$(find "$WORK/reports" -name 'report.*' | xargs -r cat | grep -c '^WARNING: ThreadSanitizer' || true)
    printf '%-11s %6s %7s %8s %s\n' "$group" "${tests:-?}" "$failed" "$reports" "$(($(date +%s) - started))"
    if [ "$reports" -ne 0 ]; then
        found=1
        find "$WORK/reports" -name 'report.*' | xargs cat | swift demangle --simplified | head -80 >&2
    fi
done
exit "$found"
