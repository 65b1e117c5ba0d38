#!/usr/bin/env bash
# Object calls, side by side with two gRPC anchors doing the same unary call with the same 8-byte
# payload both ways over HTTP/2: grpc-swift-2 (Benchmarks/grpc-anchor) and gRPC C++ with its
# callback API (Benchmarks/grpc-cpp, Debian's libgrpc++). Then the threading policies as objects
# grow, then activation latency. Goal: Ferry's calls/s at least 1.0x gRPC C++'s, and its p99
# lower, at 1, 16 and 64 callers. Writes objects.svg (calls/s per row) beside this script.
#
#   Benchmarks/objects.sh            (DURATION=5 WARMUP=1 ROUNDS=3 by default)
#
# All three servers run side by side, release builds (the C++ one -O2) on this machine; their
# load generators take turns, row by row, ROUNDS times, and each figure is the median of the
# rounds: on two shared cores one 5-second sample moves by half between runs. Each load generator
# uses one connection, as an ordinary client does. Ferry's callers run twice: as tasks that ask
# nothing (on the cooperative pool: `ferry`), and on the connection's event loop (`ferry-loop`:
# an answer resumes its caller on the thread that read it, as gRPC C++'s callback API starts a
# caller's next call from the callback).
# The anchors are built apart from the Ferry package, so that `swift test` never builds gRPC.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number of rounds, at least 1; got '$ROUNDS'" >&2; exit 64; }
require python3 pkg-config g++ make protoc:protobuf-compiler grpc_cpp_plugin:protobuf-compiler-grpc
pkg-config --exists grpc++ || apt_install libgrpc++-dev

build_release ferry-bench
echo "building grpc-anchor (release; the first build takes a while)..." >&2
(cd "$ROOT/Benchmarks/grpc-anchor" && swift build -c release >/dev/null)
echo "building grpc-cpp..." >&2
"$ROOT/Benchmarks/grpc-cpp/build.sh"
BENCH="$ROOT/.build/release/ferry-bench"
GRPC="$ROOT/Benchmarks/grpc-anchor/.build/release/grpc-anchor"
GRPC_CPP="$ROOT/Benchmarks/grpc-cpp/build"
make_workdir objects

"$BENCH" objects serve >"$WORK/ferry.out" &
PIDS+=($!)
FERRY_ADDR=$(listening_address "$WORK/ferry.out")
"$GRPC" serve --port 0 >"$WORK/grpc.out" &
PIDS+=($!)
GRPC_ADDR=$(listening_address "$WORK/grpc.out")
"$GRPC_CPP/server" --port 0 >"$WORK/grpc-cpp.out" &
PIDS+=($!)
GRPC_CPP_ADDR=$(listening_address "$WORK/grpc-cpp.out")

# The median of field $1 over the result lines that follow (the lower middle for an even count).
# Rate, p50 and p99 each take their own median, so they may come from different rounds.
median() {
    local name=$1
    shift
    printf '%s\n' "$@" | sed -n "s/.*$name=\([0-9.]*\).*/\1/p" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

echo
echo "counter.increment(by: 1), one connection; each figure the median of ${ROUNDS} rounds of ${DURATION}s"
echo "(after ${WARMUP}s warm-up) in which the four take turns; p50 and p99 in µs"
row() { printf '%-7s | %28s | %28s | %28s | %28s | %9s | %9s\n' "$@"; }
group() { printf '%12s %6s %8s' "$@"; }
printf '%-7s | %-28s | %-28s | %-28s | %-28s | %-9s | %-9s\n' "" ferry ferry-loop grpc-swift grpc-c++ ferry/c++ loop/c++
row callers "$(group calls/s p50 p99)" "$(group calls/s p50 p99)" "$(group calls/s p50 p99)" "$(group calls/s p50 p99)" calls/s calls/s
row "" "" "" "" "" "" "" | tr ' ' -
printf 'callers\tferry\tferry-loop\tgrpc-swift\tgrpc-c++\n' >"$WORK/rows"
# The medians of one column's result lines: "calls/s p50 p99".
medians() { printf '%.0f %s %s' "$(median calls_per_second "$@")" "$(median p50_us "$@")" "$(median p99_us "$@")"; }
for callers in 1 16 64; do
    ferry=() loop=() swift=() cpp=()
    for _ in $(seq "$ROUNDS"); do
        ferry+=("$("$BENCH" objects load --addr "$FERRY_ADDR" --concurrency "$callers" --seconds "$DURATION" --warmup "$WARMUP" --callers-on pool)")
        loop+=("$("$BENCH" objects load --addr "$FERRY_ADDR" --concurrency "$callers" --seconds "$DURATION" --warmup "$WARMUP" --callers-on loop)")
        swift+=("$("$GRPC" load --port "${GRPC_ADDR##*:}" --concurrency "$callers" --duration "$DURATION" --warmup "$WARMUP")")
        cpp+=("$("$GRPC_CPP/client" --port "${GRPC_CPP_ADDR##*:}" --concurrency "$callers" --duration "$DURATION" --warmup "$WARMUP")")
    done
    read -r fr fp50 fp99 <<<"$(medians "${ferry[@]}")"
    read -r lr lp50 lp99 <<<"$(medians "${loop[@]}")"
    read -r sr sp50 sp99 <<<"$(medians "${swift[@]}")"
    read -r cr cp50 cp99 <<<"$(medians "${cpp[@]}")"
    row "$callers" "$(group "$fr" "$fp50" "$fp99")" "$(group "$lr" "$lp50" "$lp99")" "$(group "$sr" "$sp50" "$sp99")" \
        "$(group "$cr" "$cp50" "$cp99")" "$(ratio "$fr" "$cr")" "$(ratio "$lr" "$cr")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$callers" "$fr" "$lr" "$sr" "$cr" >>"$WORK/rows"
done
python3 "$(dirname "$0")/chart.py" --title "Object calls: counter.increment(by: 1), one connection, by callers" \
    --unit "calls/s" "$(dirname "$0")/objects.svg" <"$WORK/rows"

echo
"$BENCH" objects policies --seconds "${POLICY_SECONDS:-2}"
echo
"$BENCH" objects activation
