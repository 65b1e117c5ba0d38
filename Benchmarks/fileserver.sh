#!/usr/bin/env bash
# Ferry's file server under its four execution models, side by side with nginx, in one run.
#
#   (a) cold disk: every request reads a different 16 KiB file whose pages were evicted from the
#       page cache just before the run (vmtouch -e, i.e. posix_fadvise DONTNEED), so reads block
#       on the disk. Ratios are to the iterative server.
#   (b) hot: 1 KiB and 64 KiB files from the page cache, keep-alive, wrk -t2 -c64. Ratios are to
#       nginx with as many worker processes as Ferry has threads serving (the core count).
#
# Writes fileserver.svg (the hot rows, each model beside nginx) next to this script.
#
# Usage: Benchmarks/fileserver.sh
#   (DURATION=10 COLD_DURATION=3 COLD_FILES=80000 COLD_SIZE=16384 COLD_CONNECTIONS=32 COLD_WORKERS=16)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
COLD_FILES=${COLD_FILES:-80000}
COLD_DURATION=${COLD_DURATION:-3}
COLD_SIZE=${COLD_SIZE:-16384}
COLD_CONNECTIONS=${COLD_CONNECTIONS:-32}
CORES=$(nproc)
COLD_WORKERS=${COLD_WORKERS:-16}

require nginx wrk vmtouch

build_release ferry
FERRY="$ROOT/.build/release/ferry"
make_workdir bench

echo "writing $COLD_FILES cold files of $COLD_SIZE bytes and the hot files..." >&2
mkdir -p "$WORK/www/cold"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c 65536 /dev/urandom >"$WORK/www/64k.bin"
python3 - "$WORK/www/cold" "$COLD_FILES" "$COLD_SIZE" <<'PY'
import os, sys
folder, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(size)
for i in range(count):
    with open(f"{folder}/f{i}.bin", "wb") as f:
        f.write(block[i % 251:] + block[:i % 251])
PY
sync

cat >"$WORK/cold.lua" <<'LUA'
-- Each request asks for a file no request asked for before in this run (the table shows how many
-- requests a run made against how many files there are: past 1.0 the reads were no longer cold).
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) counter = 0; files = tonumber(args[1]); nthreads = tonumber(args[2]) end
function request()
    counter = counter + 1
    return wrk.format("GET", "/cold/f" .. ((counter * nthreads + tid) % files) .. ".bin")
end
LUA

# start_ferry MODEL WORKERS -> sets URL
start_ferry() {
    local out="$WORK/ferry-$1.out"
    "$FERRY" serve files --root "$WORK/www" --port 0 --model "$1" --workers "$2" --queue 4096 >"$out" 2>/dev/null &
    PIDS+=($!)
    URL="http://$(listening_address "$out")"
}

declare -A COLD HOT1 HOT64 PASSES
SERVERS=(iterative thread-per-request dispatcher event-driven nginx)

for server in "${SERVERS[@]}"; do
    if [ "$server" = nginx ]; then start_nginx; else
        workers=$CORES
        # Blocking models hide disk waits only with more workers than cores: that is the point.
        [ "$server" = dispatcher ] && workers=$COLD_WORKERS
        start_ferry "$server" "$workers"
    fi
    vmtouch -e "$WORK/www/cold" >/dev/null
    echo "cold: $server" >&2
    COLD[$server]=$(wrk_rate -t2 -c"$COLD_CONNECTIONS" -d"${COLD_DURATION}s" -s "$WORK/cold.lua" "$URL" -- "$COLD_FILES" 2)
    PASSES[$server]=$(python3 -c "import sys; print(f'{float(sys.argv[1])*float(sys.argv[2])/float(sys.argv[3]):.2f}')" "${COLD[$server]}" "$COLD_DURATION" "$COLD_FILES")
    stop_last
done

for server in "${SERVERS[@]}"; do
    if [ "$server" = nginx ]; then start_nginx; else start_ferry "$server" "$CORES"; fi
    echo "hot: $server" >&2
    curl -sf -o /dev/null "$URL/1k.bin"
    HOT1[$server]=$(wrk_rate -t2 -c64 -d"${DURATION}s" "$URL/1k.bin")
    HOT64[$server]=$(wrk_rate -t2 -c64 -d"${DURATION}s" "$URL/64k.bin")
    stop_last
done

echo
echo "Ferry file server vs nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $CORES cores, wrk on the same machine, ${DURATION}s per run"
echo "(a) cold disk: $COLD_FILES distinct files of $COLD_SIZE bytes evicted before each run, wrk -t2 -c$COLD_CONNECTIONS -d${COLD_DURATION}s;"
echo "    dispatcher with $COLD_WORKERS workers; 'passes' = requests / files (below 1.00 every read was cold)"
echo "(b) hot: keep-alive, wrk -t2 -c64; Ferry with $CORES threads serving, nginx with $CORES worker processes"
echo
printf '%-20s %12s %8s %10s | %12s %10s | %12s %10s\n' server "cold req/s" passes "vs iter" "1KiB req/s" "vs nginx" "64KiB req/s" "vs nginx"
printf '%-20s %12s %8s %10s | %12s %10s | %12s %10s\n' -------------------- ------------ -------- ---------- ------------ ---------- ------------ ----------
for server in "${SERVERS[@]}"; do
    printf '%-20s %12s %8s %10s | %12s %10s | %12s %10s\n' "$server" \
        "${COLD[$server]}" "${PASSES[$server]}" "$(ratio "${COLD[$server]}" "${COLD[iterative]}")" \
        "${HOT1[$server]}" "$(ratio "${HOT1[$server]}" "${HOT1[nginx]}")" \
        "${HOT64[$server]}" "$(ratio "${HOT64[$server]}" "${HOT64[nginx]}")"
done

{
    printf 'file\tferry event-driven\tferry dispatcher\tferry thread-per-request\tferry iterative\tnginx\n'
    printf 'hot 1 KiB\t%s\t%s\t%s\t%s\t%s\n' "${HOT1[event-driven]}" "${HOT1[dispatcher]}" "${HOT1[thread-per-request]}" "${HOT1[iterative]}" "${HOT1[nginx]}"
    printf 'hot 64 KiB\t%s\t%s\t%s\t%s\t%s\n' "${HOT64[event-driven]}" "${HOT64[dispatcher]}" "${HOT64[thread-per-request]}" "${HOT64[iterative]}" "${HOT64[nginx]}"
} | python3 "$(dirname "$0")/chart.py" --unit "requests/s, wrk -t2 -c64, keep-alive" \
    --title "Ferry's file server, hot files from the page cache, beside nginx ($CORES workers)" "$(dirname "$0")/fileserver.svg"
