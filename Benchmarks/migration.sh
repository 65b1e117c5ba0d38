#!/usr/bin/env bash
# Processes that move, beside the physical limit, in one run: two `ferry node` processes on
# loopback (no data directory: nothing journaled, as a benchmark of the move itself), an idle
# guest of 1, 16, 64 and 256 MiB of pseudo-random memory moved strongly between them, each time
# beside the same number of bytes sent through one loopback TCP connection; weak against strong;
# the code cache; a mobile agent's hop; and what making a plain module movable costs.
# Prints the table and writes it as an SVG chart, migration.svg (migration-tls.svg), beside this script.
#
# With TLS=1 the cluster has an authority (`ferry ca init`) and every connection, the migration
# port's among them, is TLS 1.3 with its certificates: run it both ways to see what TLS costs a move.
#
# Usage: Benchmarks/migration.sh      (SIZES=1,16,64,256 REPEATS=3 HOPS=20 TLS=0)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SIZES=${SIZES:-1,16,64,256}
REPEATS=${REPEATS:-3}
HOPS=${HOPS:-20}

require wasm-opt:binaryen
build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir migration-bench

if [ "${TLS:-0}" = 1 ]; then
    "$FERRY" ca init --data-dir "$WORK/cluster" >/dev/null
    export FERRY_CREDENTIALS="$WORK/cluster/tls"
    echo "every connection over TLS 1.3 with the certificates in $FERRY_CREDENTIALS" >&2
fi
start_two_nodes

echo "moving..." >&2
"$BENCH" migration --endpoints "$DAEMON" --guests "$ROOT/Guests" --key "$WORK/keys/ferry.key" \
    --sizes "$SIZES" --repeats "$REPEATS" --hops "$HOPS" >"$WORK/bench.out"

CHART="$(dirname "$0")/migration.svg"
[ "${TLS:-0}" != 1 ] || CHART="$(dirname "$0")/migration-tls.svg"
python3 - "$WORK/bench.out" "$SIZES" "$CHART" <<'EOF'
import sys

values = {}
for line in open(sys.argv[1]):
    if "=" in line:
        key, value = line.strip().split("=", 1)
        values[key] = float(value)
sizes = [int(size) for size in sys.argv[2].split(",")]
svg_path = sys.argv[3]

print("A strong move of an idle guest (memory of pseudo-random bytes), n1 -> n2 on loopback, median of runs,")
print("beside the same bytes through one loopback TCP connection into fresh memory, fastest of as many runs,")
print("in the same run. Goal: at most 1.5x that + 5 ms.")
print()
print(f"{'memory':>8} {'bytes sent':>12} {'move ms':>9} {'tcp ms':>8} {'move/tcp':>9} {'goal ms':>8} {'':>6} {'downtime ms':>12}")
print(f"{'-' * 8} {'-' * 12} {'-' * 9} {'-' * 8} {'-' * 9} {'-' * 8} {'-' * 6} {'-' * 12}")
rows = []
for size in sizes:
    move, tcp = values[f"move_ms_{size}"], values[f"tcp_ms_{size}"]
    goal = 1.5 * tcp + 5
    rows.append((size, move, tcp, goal))
    print(f"{str(size) + ' MiB':>8} {int(values[f'bytes_{size}']):12d} {move:9.1f} {tcp:8.1f} {move / tcp:8.2f}x "
          f"{goal:8.1f} {'met' if move <= goal else 'missed':>6} {values[f'downtime_ms_{size}']:12.1f}")
print()
order = ["hold", "prepare", "connect", "offer", "code", "memory", "state", "commit"]
print("where a move's time goes, median ms per step (phases_ms of ferry migrate --json):")
print(f"{'memory':>8} " + " ".join(f"{phase:>8}" for phase in order))
for size in sizes:
    print(f"{str(size) + ' MiB':>8} " + " ".join(
        f"{values[f'phase_{phase}_ms_{size}']:8.2f}" if f"phase_{phase}_ms_{size}" in values else f"{'-':>8}"
        for phase in order))
print()
print(f"weak against strong, 16 MiB: weak {values['weak_ms']:.1f} ms, strong {values['strong_ms']:.1f} ms "
      f"(weak leaves the stack behind; both send the memory)")
print(f"code cache: the first move of the module to a node sent {int(values['code_first'])} code bytes, "
      f"a later process of the same module {int(values['code_second'])}")
print()
print("stop-and-copy against pre-copy, 64 MiB (pre-copy's goals: downtime <= 5 ms idle, <= 20 ms writing 64 MiB/s):")
print(f"{'workload':>24} {'mode':>14} {'total ms':>9} {'downtime ms':>12} {'rounds':>7} {'pages':>7} {'converged':>10}")
for workload, label in (("idle", "idle"), ("writing", "writing 64 MiB/s")):
    for mode, name in (("stop", "stop-and-copy"), ("pre", "pre-copy")):
        key = f"{workload}_{mode}"
        print(f"{label:>24} {name:>14} {values[key + '_total_ms']:9.1f} {values[key + '_downtime_ms']:12.1f} "
              f"{int(values[key + '_rounds']):7d} {int(values[key + '_pages']):7d} "
              f"{'yes' if values[key + '_converged'] else 'no':>10}")
print()
hop = values["hop_ms"]
print(f"a mobile agent's hop with 1 MiB of memory: {hop:.2f} ms (goal: at most 5 ms): {'met' if hop <= 5 else 'missed'}")
print()
print("what making a plain module movable costs (safe points + Asyncify), in process, median of runs taken in turn:")
for label, name in (("primes", "count_primes(1000000), a CPU-bound loop"), ("sha", "SHA-256 over 8 MiB")):
    plain, movable = values[f"{label}_plain_s"], values[f"{label}_movable_s"]
    cost = movable / plain - 1
    print(f"  {name:40} plain {plain:.3f} s, movable {movable:.3f} s: {cost:+.1%} "
          f"(goal: at most 30%): {'met' if cost <= 0.30 else 'missed'}")

capture = values["capture_max_ms"]
print(f"a CPU-bound loop that never calls the host, held after a request: median {values['capture_p50_ms']:.2f} ms, "
      f"at most {capture:.2f} ms of 20 (goal: within 10 ms): {'met' if capture <= 10 else 'missed'}")

# The chart: move and TCP time per size, on a log scale.
import math
width, height, left, bottom, top = 640, 360, 70, 50, 40
plot_w, plot_h = width - left - 20, height - top - bottom
high = max(max(r[1], r[2], r[3]) for r in rows) * 1.2
low = max(min(min(r[1], r[2]) for r in rows) / 2, 0.01)
def y(ms):
    return top + plot_h - plot_h * (math.log10(ms) - math.log10(low)) / (math.log10(high) - math.log10(low))
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="{left}" y="20" font-size="14">Strong move of an idle guest vs. the same bytes over loopback TCP (ms, log scale)</text>']
group = plot_w / len(rows)
for index, (size, move, tcp, goal) in enumerate(rows):
    x0 = left + index * group + group * 0.15
    for offset, value, colour in ((0, move, "#2f6fb3"), (group * 0.3, tcp, "#999999")):
        parts.append(f'<rect x="{x0 + offset:.1f}" y="{y(value):.1f}" width="{group * 0.28:.1f}" '
                     f'height="{top + plot_h - y(value):.1f}" fill="{colour}"/>')
        parts.append(f'<text x="{x0 + offset + group * 0.14:.1f}" y="{y(value) - 4:.1f}" text-anchor="middle">{value:.1f}</text>')
    parts.append(f'<line x1="{x0 - 4:.1f}" x2="{x0 + group * 0.62:.1f}" y1="{y(goal):.1f}" y2="{y(goal):.1f}" '
                 f'stroke="#c0392b" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{x0 + group * 0.29:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{size} MiB</text>')
parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="black"/>')
parts.append(f'<rect x="{left}" y="{height - 22}" width="10" height="10" fill="#2f6fb3"/><text x="{left + 14}" y="{height - 13}">ferry migrate --mode strong</text>')
parts.append(f'<rect x="{left + 200}" y="{height - 22}" width="10" height="10" fill="#999999"/><text x="{left + 214}" y="{height - 13}">loopback TCP, same bytes</text>')
parts.append(f'<line x1="{left + 390}" x2="{left + 410}" y1="{height - 17}" y2="{height - 17}" stroke="#c0392b" stroke-dasharray="4 3"/><text x="{left + 414}" y="{height - 13}">goal: 1.5x TCP + 5 ms</text>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print()
print(f"chart: {svg_path}")
EOF
