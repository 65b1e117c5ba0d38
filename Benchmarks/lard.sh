#!/usr/bin/env bash
# Locality-aware request distribution (LARD) against round robin, on Ferry's l7 switch, in one run.
#
# Three caching backends (ferry-bench cache-backend: each holds CAPACITY objects, least recently
# used out first; a miss waits MISS_MS, as a read from disk or an origin would) behind
# `ferry switch --mode l7`; wrk -t2 -c64 asks for objects chosen uniformly from OBJECTS. The
# working set is larger than one backend's cache and smaller than the three caches together, so
# round robin makes every backend cache a random part of everything, while LARD gives each backend
# its own part. Each policy starts with cold caches, warms up for WARMUP seconds, and is measured
# for DURATION seconds; the hit ratio counts only the measured part.
#
# Usage: Benchmarks/lard.sh      (DURATION=10 WARMUP=4 CAPACITY=1000 OBJECTS=2400 MISS_MS=2)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-4}
CAPACITY=${CAPACITY:-1000}
OBJECTS=${OBJECTS:-2400}
MISS_MS=${MISS_MS:-2}

require wrk curl
build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir lard-bench
cat >"$WORK/objects.lua" <<LUA
math.randomseed(os.time())
request = function() return wrk.format("GET", "/obj/" .. math.random(1, $OBJECTS)) end
LUA

# stats ADDRESS... : total hits and misses over the backends, as "HITS MISSES".
stats() {
    local hits=0 misses=0 line
    for address in "$@"; do
        line=$(curl -sf "http://$address/stats")
        hits=$((hits + $(sed 's/.*hits=\([0-9]*\).*/\1/' <<<"$line")))
        misses=$((misses + $(sed 's/.*misses=\([0-9]*\).*/\1/' <<<"$line")))
    done
    echo "$hits $misses"
}

declare -A RATE HIT
for policy in roundrobin lard; do
    backends=()
    for index in 1 2 3; do
        "$BENCH" cache-backend --capacity "$CAPACITY" --miss-ms "$MISS_MS" >"$WORK/backend-$policy-$index.out" &
        PIDS+=($!)
        backends+=("$(listening_address "$WORK/backend-$policy-$index.out")")
    done
    "$FERRY" switch --mode l7 --listen 127.0.0.1:0 --balance "$policy" \
        $(printf -- '--backend %s ' "${backends[@]}") >"$WORK/switch-$policy.out" 2>"$WORK/switch-$policy.err" &
    PIDS+=($!)
    front=$(listening_address "$WORK/switch-$policy.out")
    echo "$policy: warming up for ${WARMUP}s..." >&2
    wrk -t2 -c64 -d"${WARMUP}s" -s "$WORK/objects.lua" "http://$front/" >/dev/null
    read -r hits0 misses0 <<<"$(stats "${backends[@]}")"
    echo "$policy: measuring for ${DURATION}s..." >&2
    RATE[$policy]=$(wrk_rate -t2 -c64 -d"${DURATION}s" -s "$WORK/objects.lua" "http://$front/")
    read -r hits1 misses1 <<<"$(stats "${backends[@]}")"
    HIT[$policy]=$(python3 -c "h=$hits1-$hits0; m=$misses1-$misses0; print(f'{h/(h+m):.3f}')")
    # Stop this policy's switch and backends, so the next starts cold.
    for _ in 1 2 3 4; do stop_last; done
done

printf '%-11s | %10s %9s\n' "policy" "req/s" "cache hits"
printf -- '----------- | ---------- ---------\n'
for policy in roundrobin lard; do printf '%-11s | %10s %9s\n' "$policy" "${RATE[$policy]}" "${HIT[$policy]}"; done
echo
echo "lard / roundrobin: throughput $(ratio "${RATE[lard]}" "${RATE[roundrobin]}"), cache-hit ratio $(ratio "${HIT[lard]}" "${HIT[roundrobin]}")"
echo "3 backends x $CAPACITY objects cached, $OBJECTS objects asked for uniformly, a miss costs ${MISS_MS} ms; wrk -t2 -c64 on $(nproc) cores"
