#!/usr/bin/env bash
# Ferry's durable key-value service against Redis with appendonly yes / appendfsync always, in one
# run, driven by the same closed-loop load generator (ferry-bench: each client has its own
# connection and one request outstanding). Both acknowledge a put only after it is fsynced.
# Ferry runs twice: on its SQLite file (--db) and on PostgreSQL (--store; a throw-away cluster
# made here, at PostgreSQL's defaults: fsync on, synchronous_commit on), when PostgreSQL is
# installed.
#
# Each row also shows the CPU time a server spent per operation.
#
# Each row is the median of ROUNDS runs per server, the servers taking turns in every round: on
# this kind of machine two runs of one server differ by as much as a third from its neighbours'
# load, more than the differences measured, and a server always run first or last would carry
# its hour's trend.
#
# Usage: Benchmarks/kv.sh      (SECONDS_PER_RUN=4 ROUNDS=3 VALUE_SIZE=100 KEYS=10000 PIN=0)
#
# PIN=1 gives the servers core 0 and the load generator core 1 (taskset): each server then has a
# core to itself, as Redis's one thread has unpinned, and Ferry runs one event loop (NIO counts
# the cores it may use).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUN=${SECONDS_PER_RUN:-4}
ROUNDS=${ROUNDS:-3}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-10000}
SERVER_CPU=()
BENCH_CPU=()
if [ "${PIN:-0}" = 1 ]; then
    SERVER_CPU=(taskset -c 0)
    BENCH_CPU=(taskset -c 1)
fi

require redis-server

build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir kv-bench

"${SERVER_CPU[@]}" "$FERRY" serve kv --db "$WORK/kv.sqlite" --port 0 >"$WORK/ferry.out" 2>"$WORK/ferry.err" &
PIDS+=($!)
FERRY_PID=$!
FERRY_ADDR=$(listening_address "$WORK/ferry.out")

PG_ADDR=
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ]; then
    # Run as root, PostgreSQL runs as its own user (it refuses root).
    AS_PG=()
    if [ "$(id -u)" -eq 0 ]; then
        AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
        chmod 755 "$WORK" && mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
    fi
    PG_PORT=$(free_port)
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$WORK/pg/data" -U ferry --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1
    "${AS_PG[@]}" "$PGBIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -k "$WORK/pg" \
        -c listen_addresses=127.0.0.1 >"$WORK/postgres.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.05; done
    "${SERVER_CPU[@]}" "$FERRY" serve kv --store "postgres://ferry@127.0.0.1:$PG_PORT/postgres?sslmode=disable" --port 0 \
        >"$WORK/ferry-pg.out" 2>"$WORK/ferry-pg.err" &
    PIDS+=($!)
    FERRY_PG_PID=$!
    PG_ADDR=$(listening_address "$WORK/ferry-pg.out")
else
    echo "PostgreSQL is not installed (Debian: postgresql): no PostgreSQL column" >&2
fi

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
"${SERVER_CPU[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync always \
    --save "" --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS_ADDR="127.0.0.1:$REDIS_PORT"

# measure TARGET ADDR OP CLIENTS PID -> "ops_per_s p50_us p99_us errors cpu_us_per_op", the last
# the user and system time the server (process PID) took per operation: a figure the machine's
# neighbours move less than the rate
measure() {
    local line before after ops p50 p99 errors
    before=$(cpu_ticks "$5")
    line=$("${BENCH_CPU[@]}" "$BENCH" kv --target "$1" --addr "$2" --op "$3" --clients "$4" --seconds "$RUN" \
        --value-size "$VALUE_SIZE" --keys "$KEYS")
    after=$(cpu_ticks "$5")
    echo "$line" >>"$WORK/raw.log"
    read -r ops p50 p99 errors < <(sed -E 's/.*ops_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) errors=([0-9]+).*/\1 \2 \3 \4/' <<<"$line")
    echo "$ops $p50 $p99 $errors $(cpu_per_request $((after - before)) "$ops" "$RUN")"
}

echo "device of the data: $(df --output=source "$WORK" | tail -1)" >&2
printf '%-5s %7s | %12s %8s %8s %7s | %12s %8s %8s | %12s %8s %8s %7s | %9s %9s\n' op clients "ferry ops/s" p50_us p99_us \
    "cpu_us" "ferry-pg" p50_us p99_us "redis ops/s" p50_us p99_us "cpu_us" "ferry/rd" "pg/rd"
printf -- '----- ------- | ------------ -------- -------- ------- | ------------ -------- -------- | ------------ -------- -------- ------- | --------- ---------\n'
# median ROWS...: the row (of "ops p50 p99 errors cpu") whose ops are the median, errors summed
median() {
    printf '%s\n' "$@" | sort -n -k1,1 | awk '{ rows[NR] = $0; errors += $4 } END {
        split(rows[int((NR + 1) / 2)], f, " "); print f[1], f[2], f[3], errors, f[5] }'
}

for op in put get; do
    for clients in 1 16; do
        echo "$op, $clients clients, $ROUNDS rounds..." >&2
        f_rows=() p_rows=() r_rows=()
        for _ in $(seq "$ROUNDS"); do
            f_rows+=("$(measure ferry "$FERRY_ADDR" "$op" "$clients" "$FERRY_PID")")
            [ -n "$PG_ADDR" ] && p_rows+=("$(measure ferry "$PG_ADDR" "$op" "$clients" "$FERRY_PG_PID")")
            r_rows+=("$(measure redis "$REDIS_ADDR" "$op" "$clients" "$REDIS_PID")")
        done
        read -r f_ops f_p50 f_p99 f_err f_cpu < <(median "${f_rows[@]}")
        p_ops=- p_p50=- p_p99=- p_err=0 p_ratio=-
        if [ -n "$PG_ADDR" ]; then
            read -r p_ops p_p50 p_p99 p_err _ < <(median "${p_rows[@]}")
        fi
        read -r r_ops r_p50 r_p99 r_err r_cpu < <(median "${r_rows[@]}")
        printf '%s x%s\t%s\t%s\t%s\n' "$op" "$clients" "$f_ops" "$p_ops" "$r_ops" >>"$WORK/rows"
        ratio=$(python3 -c "print(f'{$f_ops / max($r_ops, 1):.2f}x')")
        [ -n "$PG_ADDR" ] && p_ratio=$(python3 -c "print(f'{$p_ops / max($r_ops, 1):.2f}x')")
        printf '%-5s %7s | %12s %8s %8s %7s | %12s %8s %8s | %12s %8s %8s %7s | %9s %9s\n' "$op" "$clients" \
            "$f_ops" "$f_p50" "$f_p99" "$f_cpu" "$p_ops" "$p_p50" "$p_p99" "$r_ops" "$r_p50" "$r_p99" "$r_cpu" "$ratio" "$p_ratio"
        if [ "$f_err" != 0 ] || [ "$p_err" != 0 ] || [ "$r_err" != 0 ]; then
            echo "  errors: ferry $f_err, ferry-pg $p_err, redis $r_err" >&2
        fi
    done
done
echo
[ -n "$PG_ADDR" ] && echo "ferry-pg: the same service with --store on PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') (postgres-nio; one transaction per group commit; fsync and synchronous_commit on)."
echo "Ferry: its own log (one fdatasync per group commit) in front of SQLite (GRDB) WAL, synchronous=FULL; Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'): appendonly yes, appendfsync always."
echo "${VALUE_SIZE}-byte values over $KEYS keys; each row the median of $ROUNDS runs of ${RUN}s per server, taking turns; gets read the keys the puts wrote."
echo "cpu_us: the server's user and system time per operation (the load generator's not counted)."

{ printf 'op\tferry sqlite\tferry postgres\tredis\n'; cat "$WORK/rows"; } |
    python3 "$(dirname "$0")/chart.py" --unit "operations/s, durable puts (acknowledged after the fsync)" \
        --title "Ferry's kv service beside Redis (appendfsync always)" "$(dirname "$0")/kv.svg"
