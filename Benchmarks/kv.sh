#!/usr/bin/env bash
# Ferry's durable key-value service against Redis with appendonly yes / appendfsync always, in one
# run, driven by the same closed-loop load generator (ferry-bench: each client has its own
# connection and one request outstanding). Both acknowledge a put only after it is fsynced.
#
# Usage: Benchmarks/kv.sh      (SECONDS_PER_RUN=5 VALUE_SIZE=100 KEYS=10000)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUN=${SECONDS_PER_RUN:-5}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-10000}

require redis-server

build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir kv-bench

"$FERRY" serve kv --db "$WORK/kv.sqlite" --port 0 >"$WORK/ferry.out" 2>"$WORK/ferry.err" &
PIDS+=($!)
FERRY_ADDR=$(listening_address "$WORK/ferry.out")

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync always \
    --save "" --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS_ADDR="127.0.0.1:$REDIS_PORT"

# measure TARGET ADDR OP CLIENTS -> "ops_per_s p50_us p99_us errors"
measure() {
    local line
    line=$("$BENCH" kv --target "$1" --addr "$2" --op "$3" --clients "$4" --seconds "$RUN" \
        --value-size "$VALUE_SIZE" --keys "$KEYS")
    echo "$line" >>"$WORK/raw.log"
    sed -E 's/.*ops_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) errors=([0-9]+).*/\1 \2 \3 \4/' <<<"$line"
}

echo "device of the data: $(df --output=source "$WORK" | tail -1)" >&2
printf '%-5s %7s | %12s %8s %8s | %12s %8s %8s | %9s\n' op clients "ferry ops/s" p50_us p99_us "redis ops/s" p50_us p99_us "ferry/redis"
printf -- '----- ------- | ------------ -------- -------- | ------------ -------- -------- | ---------\n'
for op in put get; do
    for clients in 1 16; do
        echo "$op, $clients clients..." >&2
        read -r f_ops f_p50 f_p99 f_err < <(measure ferry "$FERRY_ADDR" "$op" "$clients")
        read -r r_ops r_p50 r_p99 r_err < <(measure redis "$REDIS_ADDR" "$op" "$clients")
        ratio=$(python3 -c "print(f'{$f_ops / max($r_ops, 1):.2f}x')")
        printf '%-5s %7s | %12s %8s %8s | %12s %8s %8s | %9s\n' "$op" "$clients" "$f_ops" "$f_p50" "$f_p99" \
            "$r_ops" "$r_p50" "$r_p99" "$ratio"
        if [ "$f_err" != 0 ] || [ "$r_err" != 0 ]; then echo "  errors: ferry $f_err, redis $r_err" >&2; fi
    done
done
echo
echo "Ferry: SQLite (GRDB) WAL, synchronous=FULL, group commit; Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'): appendonly yes, appendfsync always."
echo "${VALUE_SIZE}-byte values over $KEYS keys, ${RUN}s per run; gets read the keys the puts wrote."
