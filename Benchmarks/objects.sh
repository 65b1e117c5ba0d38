#!/usr/bin/env bash
# Object calls, side by side with gRPC (grpc-swift-2 unary calls over HTTP/2, the same 8-byte
# payload both ways), then the threading policies as objects grow, then activation latency.
#
#   Benchmarks/objects.sh            (DURATION=5 WARMUP=1 by default)
#
# Both servers and both load generators are release builds on this machine; each load
# generator uses one connection, as an ordinary client does. The gRPC anchor is its own package
# (Benchmarks/grpc-anchor), so that `swift test` never builds gRPC.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
require python3

build_release ferry-bench
echo "building grpc-anchor (release; the first build takes a while)..." >&2
(cd "$ROOT/Benchmarks/grpc-anchor" && swift build -c release >/dev/null)
BENCH="$ROOT/.build/release/ferry-bench"
GRPC="$ROOT/Benchmarks/grpc-anchor/.build/release/grpc-anchor"
make_workdir objects

"$BENCH" objects serve >"$WORK/ferry.out" &
PIDS+=($!)
FERRY_ADDR=$(listening_address "$WORK/ferry.out")
"$GRPC" serve --port 0 >"$WORK/grpc.out" &
PIDS+=($!)
GRPC_ADDR=$(listening_address "$WORK/grpc.out")

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

echo
echo "counter.increment(by: 1), one connection, ${DURATION}s per row after ${WARMUP}s warm-up"
printf '%-8s | %-29s | %-29s | %s\n' "callers" "ferry: calls/s   p50   p99 µs" "grpc: calls/s   p50   p99 µs" "ferry/grpc"
printf '%-8s | %-29s | %-29s | %s\n' "--------" "-----------------------------" "-----------------------------" "----------"
for callers in 1 16 64; do
    ferry=$("$BENCH" objects load --addr "$FERRY_ADDR" --concurrency "$callers" --seconds "$DURATION" --warmup "$WARMUP")
    grpc=$("$GRPC" load --port "${GRPC_ADDR##*:}" --concurrency "$callers" --duration "$DURATION" --warmup "$WARMUP")
    fr=$(field calls_per_second "$ferry")
    gr=$(field calls_per_second "$grpc")
    printf '%-8s | %13.0f %7s %7s | %13.0f %7s %7s | %9.2fx\n' "$callers" \
        "$fr" "$(field p50_us "$ferry")" "$(field p99_us "$ferry")" \
        "$gr" "$(field p50_us "$grpc")" "$(field p99_us "$grpc")" \
        "$(python3 -c "print($fr / $gr)")"
done

echo
"$BENCH" objects policies --seconds "${POLICY_SECONDS:-2}"
echo
"$BENCH" objects activation
