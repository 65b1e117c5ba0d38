#!/usr/bin/env bash
# What authenticated peers cost: the kv service (puts and gets) and object calls, each measured
# over plain TCP and over TLS 1.3 with the cluster's certificates at both ends, in the same run,
# with the same load generator (ferry-bench). Prints ops/s and p99 for both and the ratio
# TLS/plain (goal: at least 0.85, i.e. at most 15% fewer calls), and writes tls.svg beside this
# script. Each row also shows the server's CPU time per operation (user and system, the load
# generator's not counted): both ends of every connection run on this machine's cores, so the
# rate also carries the client's TLS, and the server's CPU is what TLS costs the server alone. Each row alternates plain and TLS ROUNDS times and keeps the median of each: on two
# shared cores one 5-second run moves by 10% or more either way.
#
# Usage: Benchmarks/tls.sh        (SECONDS_PER_RUN=5 ROUNDS=3)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUN=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}

require python3
build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir tls

"$FERRY" ca init --data-dir "$WORK/cluster" >/dev/null
CREDENTIALS="$WORK/cluster/tls"

# start_servers SECURITY: a kv service and an object server whose FerryWire is plain ("") or TLS.
start_servers() {
    FERRY_CREDENTIALS=$1 "$FERRY" serve kv --db "$WORK/kv-$2.sqlite" --port 0 >"$WORK/kv-$2.out" 2>"$WORK/kv-$2.err" &
    PIDS+=($!)
    printf -v "KV_PID_$2" %s $!
    FERRY_CREDENTIALS=$1 "$BENCH" objects serve >"$WORK/objects-$2.out" 2>"$WORK/objects-$2.err" &
    PIDS+=($!)
    printf -v "OBJECTS_PID_$2" %s $!
}
start_servers "" plain
start_servers "$CREDENTIALS" tls
KV_PLAIN=$(listening_address "$WORK/kv-plain.out")
KV_TLS=$(listening_address "$WORK/kv-tls.out")
OBJECTS_PLAIN=$(listening_address "$WORK/objects-plain.out")
OBJECTS_TLS=$(listening_address "$WORK/objects-tls.out")

# measure SECURITY WORKLOAD CLIENTS: "ops p99_us cpu_us" with the client's credentials, the last
# the server's CPU time per operation.
measure() {
    local credentials=$1 address line pid before ops p99
    [ "$credentials" = "" ] && address_suffix=PLAIN || address_suffix=TLS
    [ "$credentials" = "" ] && security=plain || security=tls
    case $2 in
    put | get)
        address=KV_$address_suffix
        pid=KV_PID_$security
        before=$(cpu_ticks "${!pid}")
        line=$(FERRY_CREDENTIALS=$credentials "$BENCH" kv --target ferry --addr "${!address}" --op "$2" \
            --clients "$3" --seconds "$RUN")
        read -r ops p99 < <(sed -E 's/.*ops_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+).*/\1 \3/' <<<"$line")
        ;;
    call)
        address=OBJECTS_$address_suffix
        pid=OBJECTS_PID_$security
        before=$(cpu_ticks "${!pid}")
        # Its warm-up second is counted in the CPU time, not in the calls: a fifth more each side.
        line=$(FERRY_CREDENTIALS=$credentials "$BENCH" objects load --addr "${!address}" --concurrency "$3" \
            --seconds "$RUN" --warmup 1)
        ops=$(sed -n 's/.*calls_per_second=\([0-9.]*\).*/\1/p' <<<"$line")
        p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$line")
        ;;
    esac
    echo "$line" >>"$WORK/raw.log"
    echo "$ops $p99 $(cpu_per_request $(($(cpu_ticks "${!pid}") - before)) "$ops" "$RUN")"
}

printf '%-15s | %11s %8s %7s | %11s %8s %7s | %9s\n' workload "plain ops/s" p99_us cpu_us "tls ops/s" p99_us cpu_us "tls/plain"
printf -- '--------------- | ----------- -------- ------- | ----------- -------- ------- | ---------\n'
: >"$WORK/rows"
for row in "put 1" "put 16" "get 1" "get 16" "call 1" "call 16" "call 64"; do
    read -r workload clients <<<"$row"
    echo "$workload, $clients clients..." >&2
    : >"$WORK/plain" && : >"$WORK/tls"
    for _ in $(seq "$ROUNDS"); do
        measure "" "$workload" "$clients" >>"$WORK/plain"
        measure "$CREDENTIALS" "$workload" "$clients" >>"$WORK/tls"
    done
    # The median round by ops/s, with its p99.
    read -r p_ops p_p99 p_cpu < <(sort -n "$WORK/plain" | sed -n "$(((ROUNDS + 1) / 2))p")
    read -r t_ops t_p99 t_cpu < <(sort -n "$WORK/tls" | sed -n "$(((ROUNDS + 1) / 2))p")
    ratio=$(python3 -c "print(f'{$t_ops / max($p_ops, 1):.2f}')")
    label="kv $workload x$clients"
    [ "$workload" = call ] && label="object call x$clients"
    printf '%-15s | %11.0f %8s %7s | %11.0f %8s %7s | %8sx\n' "$label" "$p_ops" "$p_p99" "$p_cpu" "$t_ops" "$t_p99" "$t_cpu" "$ratio"
    echo "$label|$p_ops|$t_ops" >>"$WORK/rows"
done
echo
echo "TLS 1.3 (swift-nio-ssl, BoringSSL), ECDSA P-256 certificates from 'ferry ca init' at both ends; one connection per client, ${RUN}s per run, median of $ROUNDS alternating rounds."
echo "kv: SQLite WAL, synchronous=FULL, group commit (puts wait for the fsync). Objects: counter.increment, one connection shared by the callers."
echo "cpu_us: the server's user and system time per operation (the load generator's not counted)."

python3 - "$WORK/rows" "$(dirname "$0")/tls.svg" <<'PY'
import sys
rows = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
width, bar, gap, left, top = 760, 14, 18, 150, 40
height = top + len(rows) * (2 * bar + gap) + 40
peak = max(max(float(p), float(t)) for _, p, t in rows)
scale = (width - left - 120) / peak
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14">What TLS costs: operations per second, plain TCP against TLS 1.3 with certificates at both ends</text>']
y = top
for label, plain, tls in rows:
    plain, tls = float(plain), float(tls)
    parts.append(f'<text x="10" y="{y + bar + 4}">{label}</text>')
    parts.append(f'<rect x="{left}" y="{y}" width="{plain * scale:.1f}" height="{bar}" fill="#9aa5b1"/>')
    parts.append(f'<text x="{left + plain * scale + 4:.1f}" y="{y + bar - 3}">{plain:.0f} plain</text>')
    parts.append(f'<rect x="{left}" y="{y + bar}" width="{tls * scale:.1f}" height="{bar}" fill="#2b6cb0"/>')
    parts.append(f'<text x="{left + tls * scale + 4:.1f}" y="{y + 2 * bar - 3}">{tls:.0f} tls ({tls / max(plain, 1):.2f}x)</text>')
    y += 2 * bar + gap
parts.append("</svg>")
open(sys.argv[2], "w").write("\n".join(parts))
PY
echo "chart: $(dirname "$0")/tls.svg"
