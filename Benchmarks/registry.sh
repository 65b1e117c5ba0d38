#!/usr/bin/env bash
# The registry on its two backends, side by side in one run, driven by the same load generator
# (ferry-bench endpoints): lookups and registrations per second at Ferry's embedded endpoint
# daemon and at a three-member etcd cluster (Debian's etcd-server, at etcd's default timings and
# with its fsync, as its users run it; all three members on this machine's one disk). Prints
# ops/s, p50 and p99 and the ratio etcd/daemon, and writes registry.svg beside this script.
#
# The two keep different promises: the daemon holds its table in one process's memory (soft
# state, refilled after a restart); etcd replicates every registration to a majority and writes
# it down before it answers. A registration on etcd is a lease grant, a read and a transaction
# (and the revoke of the lease it replaces); on the daemon, one message.
#
# Usage: Benchmarks/registry.sh        (SECONDS_PER_RUN=5)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUN=${SECONDS_PER_RUN:-5}

require python3 curl etcd:etcd-server
build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir registry

"$FERRY" endpointd --port 0 >"$WORK/endpointd.out" 2>"$WORK/endpointd.err" &
PIDS+=($!)
DAEMON=$(listening_address "$WORK/endpointd.out")

# Three etcd members on free loopback ports.
CLIENT=() PEER=()
for i in 0 1 2; do CLIENT+=("$(free_port)") && PEER+=("$(free_port)"); done
CLUSTER="m0=http://127.0.0.1:${PEER[0]},m1=http://127.0.0.1:${PEER[1]},m2=http://127.0.0.1:${PEER[2]}"
for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$WORK/etcd-m$i" \
        --listen-client-urls "http://127.0.0.1:${CLIENT[$i]}" --advertise-client-urls "http://127.0.0.1:${CLIENT[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${PEER[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PEER[$i]}" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "ferry-bench-$$" \
        --logger zap --log-level error >"$WORK/etcd-m$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 0 1 2; do
    for _ in $(seq 200); do
        curl -s "http://127.0.0.1:${CLIENT[$i]}/health" 2>/dev/null | grep -q '"true"' && break
        sleep 0.1
    done
done
ETCD="etcd://127.0.0.1:${CLIENT[0]},127.0.0.1:${CLIENT[1]},127.0.0.1:${CLIENT[2]}"

"$FERRY" endpoints --addr "$DAEMON" register bench 127.0.0.1:9 --ttl 3600 --once >/dev/null
"$FERRY" endpoints --registry "$ETCD" register bench 127.0.0.1:9 --ttl 3600 --once >/dev/null

# measure ADDRESS OP CLIENTS: "ops p50 p99"
measure() {
    local line
    line=$("$BENCH" endpoints --addr "$1" --name bench --op "$2" --clients "$3" --seconds "$RUN")
    echo "$line" >>"$WORK/raw.log"
    sed -E 's/.*ops_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) errors=([0-9]+).*/\1 \2 \3 \4/' <<<"$line"
}

printf '%-16s | %10s %8s %8s | %10s %8s %8s | %10s\n' workload "daemon/s" p50_us p99_us "etcd/s" p50_us p99_us "etcd/daemon"
printf -- '---------------- | ---------- -------- -------- | ---------- -------- -------- | ----------\n'
: >"$WORK/rows"
for row in "lookup 1" "lookup 16" "register 1" "register 16"; do
    read -r op clients <<<"$row"
    echo "$op, $clients clients..." >&2
    read -r d_ops d_p50 d_p99 d_err < <(measure "$DAEMON" "$op" "$clients")
    read -r e_ops e_p50 e_p99 e_err < <(measure "$ETCD" "$op" "$clients")
    [ "$d_err$e_err" = "00" ] || echo "errors: daemon $d_err, etcd $e_err" >&2
    printf '%-16s | %10s %8s %8s | %10s %8s %8s | %10s\n' "$op x$clients" "$d_ops" "$d_p50" "$d_p99" \
        "$e_ops" "$e_p50" "$e_p99" "$(ratio "$e_ops" "$d_ops")"
    echo "$op x$clients|$d_ops|$e_ops" >>"$WORK/rows"
done
echo
echo "ferry-bench endpoints: one connection per client to the daemon (FerryWire); to etcd, one HTTP/1 request per call through its JSON gateway (a connection each), ${RUN}s per run."

python3 - "$WORK/rows" "$(dirname "$0")/registry.svg" <<'PY'
import sys
rows = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
width, bar, gap, left, top = 760, 14, 18, 120, 40
height = top + len(rows) * (2 * bar + gap) + 40
peak = max(max(float(d), float(e)) for _, d, e in rows) or 1
scale = (width - left - 150) / peak
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14">The registry: operations per second, embedded endpoint daemon against a three-member etcd</text>']
y = top
for label, daemon, etcd in rows:
    daemon, etcd = float(daemon), float(etcd)
    parts.append(f'<text x="10" y="{y + bar + 4}">{label}</text>')
    parts.append(f'<rect x="{left}" y="{y}" width="{daemon * scale:.1f}" height="{bar}" fill="#2b6cb0"/>')
    parts.append(f'<text x="{left + daemon * scale + 4:.1f}" y="{y + bar - 3}">{daemon:.0f} daemon</text>')
    parts.append(f'<rect x="{left}" y="{y + bar}" width="{etcd * scale:.1f}" height="{bar}" fill="#9aa5b1"/>')
    parts.append(f'<text x="{left + etcd * scale + 4:.1f}" y="{y + 2 * bar - 3}">{etcd:.0f} etcd ({etcd / max(daemon, 1):.2f}x)</text>')
    y += 2 * bar + gap
parts.append("</svg>")
open(sys.argv[2], "w").write("\n".join(parts))
PY
echo "chart: $(dirname "$0")/registry.svg"
