#!/usr/bin/env bash
# Live migration measured as Clark et al. (NSDI 2005) measured Xen's, in one run: two `ferry node`
# processes on loopback (no data directory: the move itself is measured), and for each workload
# (an idle guest; a guest writing its memory at 4, 64 and 512 MiB/s; the SHA-256 guest; a guest
# answering a steady client's calls, with the calls' p99 during the move and the failures) and size
# (16, 64, 256 MiB) a move in each mode (stop-and-copy, pre-copy, post-copy, hybrid), beside the
# same bytes through one loopback TCP connection. Prints the table and writes it as an SVG chart,
# live-migration.svg, beside this script.
#
# Usage: Benchmarks/live-migration.sh      (SIZES=16,64,256 RATES=4,64,512 MODES=stop-and-copy,pre-copy,post-copy,hybrid)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SIZES=${SIZES:-16,64,256}
RATES=${RATES:-4,64,512}
MODES=${MODES:-stop-and-copy,pre-copy,post-copy,hybrid}

require wasm-opt:binaryen
build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir live-migration-bench

start_two_nodes

echo "moving..." >&2
"$BENCH" live-migration --endpoints "$DAEMON" --guests "$ROOT/Guests" --key "$WORK/keys/ferry.key" \
    --sizes "$SIZES" --rates "$RATES" --modes "$MODES" >"$WORK/bench.out"

python3 - "$WORK/bench.out" "$(dirname "$0")/live-migration.svg" <<'EOF'
import math
import sys

rows, tcp, calls, phases = [], {}, [], {}
for line in open(sys.argv[1]):
    key, _, value = line.strip().partition("=")
    if key == "calls":
        w, mib, mode, total_calls, during, p99, most, failed = value.split()
        calls.append(dict(mib=int(mib), mode=mode, all=int(total_calls), during=int(during), p99=float(p99),
                          max=float(most), failed=int(failed)))
    elif key == "row":
        w, mib, mode, total, down, sent, pages, memory, rounds, conv, thr, demand = value.split()
        rows.append(dict(workload=w, mib=int(mib), mode=mode, total=float(total), down=float(down), bytes=int(sent),
                         pages=int(pages), memory=int(memory), rounds=int(rounds), converged=conv, throttled=int(thr),
                         demand=int(demand)))
    elif key == "phases":
        w, mib, mode, text = value.split()
        phases[(w, int(mib), mode)] = {k: float(v) for k, v in (p.split(":") for p in text.split(","))}
    elif key.startswith("tcp_ms_"):
        tcp[int(key[7:])] = float(value)
svg_path = sys.argv[2]

print("Live migration, n1 -> n2 on loopback, one move per row (downtime: the process's last instruction at the")
print("source to its first at the target; pages: 4 KiB pages of memory sent; on demand: pages the target asked for).")
print()
header = (f"{'workload':>11} {'memory':>7} {'mode':>13} {'total ms':>9} {'downtime ms':>12} {'bytes sent':>11} "
          f"{'pages':>7} {'rounds':>6} {'converged':>9} {'throttled':>9} {'on demand':>9}")
print(header)
print("-" * len(header))
for r in rows:
    print(f"{r['workload']:>11} {str(r['mib']) + ' MiB':>7} {r['mode']:>13} {r['total']:9.1f} {r['down']:12.2f} "
          f"{r['bytes']:11d} {r['pages']:7d} {r['rounds']:6d} {r['converged']:>9} {str(r['throttled']) + '%':>9} "
          f"{r['demand']:9d}")
print()
print("where the downtime goes, ms (phases_ms; prepare..commit lie in the downtime), 64 MiB rows:")
order = ["hold", "pre-copy", "prepare", "memory", "state", "commit", "post-copy"]
print(f"{'workload':>11} {'mode':>13} " + " ".join(f"{p:>9}" for p in order))
for (w, mib, mode), values in phases.items():
    if abs(mib - 64) <= 1:
        print(f"{w:>11} {mode:>13} " + " ".join(f"{values[p]:9.2f}" if p in values else f"{'-':>9}" for p in order))
print()
if calls:
    print("a steady client calling the process (Guests/echo.c, one call outstanding, following it when it moves):")
    print(f"{'memory':>7} {'mode':>13} {'calls':>6} {'during move':>11} {'p99 ms':>8} {'max ms':>8} {'failed':>6}")
    for c in calls:
        print(f"{str(c['mib']) + ' MiB':>7} {c['mode']:>13} {c['all']:6d} {c['during']:11d} {c['p99']:8.2f} "
              f"{c['max']:8.2f} {c['failed']:6d}")
    print()
print("the same bytes as memory through one loopback TCP connection (fastest of 3): "
      + ", ".join(f"{size} MiB {ms:.1f} ms" for size, ms in sorted(tcp.items())))
print()
print("goals:")
def find(workload, mib, mode):
    return next((r for r in rows if r["workload"] == workload and abs(r["mib"] - mib) <= 1 and r["mode"] == mode), None)
def verdict(ok):
    return "met" if ok else "missed"
r = find("idle", 64, "pre-copy")
if r: print(f"  pre-copy downtime, idle 64 MiB: {r['down']:.2f} ms (<= 5 ms): {verdict(r['down'] <= 5)}")
r = find("writer-64", 64, "pre-copy")
if r: print(f"  pre-copy downtime, 64 MiB writing 64 MiB/s: {r['down']:.2f} ms (<= 20 ms): {verdict(r['down'] <= 20)}")
for r in (x for x in rows if x["mode"] == "post-copy" and x["workload"] == "idle"):
    extra = r["bytes"] / r["memory"] - 1
    print(f"  post-copy, idle {r['mib']} MiB: downtime {r['down']:.2f} ms (<= 2 ms): {verdict(r['down'] <= 2)}; "
          f"{r['pages']} pages sent of {r['memory'] // 4096} (each once: {verdict(r['pages'] == r['memory'] // 4096)}), "
          f"bytes sent {extra:+.2%} over memory (within 1%): {verdict(abs(extra) <= 0.01)}")
for r in (x for x in rows if x["mode"] == "stop-and-copy" and x["workload"] == "idle"):
    base = tcp.get(r["mib"])
    if base: print(f"  stop-and-copy, idle {r['mib']} MiB: total {r['total']:.1f} ms against TCP {base:.1f} ms "
                   f"({r['total'] / base:.2f}x, <= 1.5x): {verdict(r['total'] <= 1.5 * base)}")
if calls:
    failed = sum(c["failed"] for c in calls)
    print(f"  failed calls in any mode: {failed} (none): {verdict(failed == 0)}")
print("  anchors: Xen pre-copy downtime 60 ms (Quake 3) and 210 ms (SPECweb), Clark 2005; QEMU ~26 ms idle; "
      "QEMU's default downtime limit 300 ms")

# The chart: downtime and total time per mode, for each size, of the guest writing 64 MiB/s (or
# the first writer measured), on log scales.
writers = sorted({r["workload"] for r in rows if r["workload"].startswith("writer-")}, key=lambda w: int(w[7:]))
shown = "writer-64" if "writer-64" in writers else (writers[0] if writers else "idle")
modes = [m for m in ("stop-and-copy", "pre-copy", "post-copy", "hybrid") if any(r["mode"] == m for r in rows)]
colours = {"stop-and-copy": "#999999", "pre-copy": "#2f6fb3", "post-copy": "#c0392b", "hybrid": "#27ae60"}
chosen = [r for r in rows if r["workload"] == shown]
label = f"a guest writing {shown[7:]} MiB/s of its memory" if shown.startswith("writer-") else "an idle guest"
sizes = sorted({r["mib"] for r in chosen})
width, height, top, bottom, left = 900, 380, 50, 60, 60
panel_w = (width - left - 40) / 2
plot_h = height - top - bottom
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="{left}" y="22" font-size="14">Live migration of {label}: downtime and total time per mode (ms, log scale)</text>']
for panel, (field, title) in enumerate((("down", "downtime"), ("total", "total time"))):
    values = [max(r[field], 0.01) for r in chosen] or [1]
    low, high = min(values) / 2, max(values) * 2
    def y(v):
        return top + plot_h - plot_h * (math.log10(max(v, 0.01)) - math.log10(low)) / (math.log10(high) - math.log10(low))
    x_base = left + panel * (panel_w + 30)
    parts.append(f'<text x="{x_base}" y="{top - 8}">{title}</text>')
    group = panel_w / max(len(sizes), 1)
    bar = group * 0.8 / max(len(modes), 1)
    for i, size in enumerate(sizes):
        for j, mode in enumerate(modes):
            r = next((x for x in chosen if x["mib"] == size and x["mode"] == mode), None)
            if not r: continue
            x = x_base + i * group + group * 0.1 + j * bar
            parts.append(f'<rect x="{x:.1f}" y="{y(r[field]):.1f}" width="{bar * 0.9:.1f}" height="{top + plot_h - y(r[field]):.1f}" fill="{colours[mode]}"/>')
            parts.append(f'<text x="{x + bar * 0.45:.1f}" y="{y(r[field]) - 3:.1f}" text-anchor="middle" font-size="9">{r[field]:.1f}</text>')
        parts.append(f'<text x="{x_base + i * group + group / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{size} MiB</text>')
    parts.append(f'<line x1="{x_base}" x2="{x_base + panel_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="black"/>')
for j, mode in enumerate(modes):
    parts.append(f'<rect x="{left + j * 150}" y="{height - 22}" width="10" height="10" fill="{colours[mode]}"/>'
                 f'<text x="{left + j * 150 + 14}" y="{height - 13}">{mode}</text>')
parts.append("</svg>")
open(svg_path, "w").write("\n".join(parts) + "\n")
print()
print(f"chart: {svg_path}")
EOF
