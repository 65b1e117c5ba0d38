#!/usr/bin/env bash
# Two builds of Ferry's l7 switch against each other, side by side behind one nginx: wrk -t2 -c64
# alternates between them (and which goes first alternates too), so that the machine's drift
# falls on both. For a change that must not slow the switch: build the old commit elsewhere and
# give its binary.
#
# Usage: Benchmarks/switch-ab.sh OLD_FERRY [NEW_FERRY]   (ROUNDS=10 DURATION=6; NEW defaults to this tree's release build)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-6}
OLD=${1:?usage: Benchmarks/switch-ab.sh OLD_FERRY [NEW_FERRY]}
require nginx wrk
if [ -z "${2:-}" ]; then
    build_release ferry
    NEW="$ROOT/.build/release/ferry"
else
    NEW=$2
fi
make_workdir switch-ab
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c 65536 /dev/urandom >"$WORK/www/64k.bin"
start_nginx
"$OLD" switch --mode l7 --listen 127.0.0.1:0 --backend "127.0.0.1:$NGINX_PORT" >"$WORK/old.out" 2>"$WORK/old.err" &
PIDS+=($!)
OLD_AT=$(listening_address "$WORK/old.out")
"$NEW" switch --mode l7 --listen 127.0.0.1:0 --backend "127.0.0.1:$NGINX_PORT" >"$WORK/new.out" 2>"$WORK/new.err" &
PIDS+=($!)
NEW_AT=$(listening_address "$WORK/new.out")

echo "size  | old req/s (mean of $ROUNDS) | new req/s | new / old"
for size in 1k 64k; do
    old_sum=0
    new_sum=0
    for round in $(seq 1 "$ROUNDS"); do
        order="old new"
        if [ $((round % 2)) = 0 ]; then order="new old"; fi
        for which in $order; do
            if [ "$which" = old ]; then at=$OLD_AT; else at=$NEW_AT; fi
            rate=$(wrk_rate -t2 -c64 -d"${DURATION}s" "http://$at/$size.bin")
            if [ "$which" = old ]; then old_sum=$(python3 -c "print($old_sum + $rate)"); else new_sum=$(python3 -c "print($new_sum + $rate)"); fi
        done
    done
    old_mean=$(python3 -c "print(round($old_sum / $ROUNDS))")
    new_mean=$(python3 -c "print(round($new_sum / $ROUNDS))")
    echo "$size  | $old_mean | $new_mean | $(ratio "$new_mean" "$old_mean")"
done
