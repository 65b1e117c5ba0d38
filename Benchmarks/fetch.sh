#!/usr/bin/env bash
# The multithreaded client against curl and wget, in one run: `ferry serve files` serves a page
# that names 60 resources (24 images, 16 scripts, 10 stylesheets, each naming a background image),
# behind a delay relay (Benchmarks/delay-relay.py --handshake: every chunk held half a round trip
# each way, and each new connection's first bytes a handshake's round trip more; this kernel has
# no netem). For each round trip (20 and 100 ms), the time to the whole page: `ferry fetch` at 1,
# 2, 6 and 16 connections; curl --parallel (--parallel-max 6 and 16) and plain curl (one
# keep-alive connection, in turn), each given the 61 addresses outright (curl does not read
# HTML); and `wget -p` (page requisites, one connection). Median of RUNS runs, wall time of the
# whole command. Writes the table as an SVG chart, fetch.svg, beside this script.
#
# Usage: Benchmarks/fetch.sh      (RTTS=20,100 RUNS=3)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RTTS=${RTTS:-20,100}
RUNS=${RUNS:-3}
require curl wget
[ -n "${NO_BUILD:-}" ] || build_release ferry
FERRY="$ROOT/.build/release/ferry"
make_workdir fetch-bench

python3 - "$WORK/site" <<'PY'
import os, random, sys
site = sys.argv[1]
rng = random.Random(7)
for folder in ("img", "js", "css", "bg"):
    os.makedirs(f"{site}/{folder}", exist_ok=True)
tags = []
for n in range(24):
    open(f"{site}/img/{n}.png", "wb").write(rng.randbytes(rng.randint(4, 48) * 1024))
    tags.append(f'<img src="img/{n}.png" alt="">')
for n in range(16):
    open(f"{site}/js/{n}.js", "w").write(f"// script {n}\n" + "var x = 1;\n" * rng.randint(200, 2000))
    tags.append(f'<script src="/js/{n}.js"></script>')
for n in range(10):
    open(f"{site}/bg/{n}.png", "wb").write(rng.randbytes(rng.randint(8, 32) * 1024))
    open(f"{site}/css/{n}.css", "w").write(f".b{n} {{ background: url('../bg/{n}.png') }}\n" + "p { margin: 0 }\n" * 100)
    tags.insert(0, f'<link rel="stylesheet" href="css/{n}.css">')
open(f"{site}/index.html", "w").write("<!doctype html><html><head><title>60 resources</title>\n"
    + "\n".join(t for t in tags if t.startswith("<link")) + "\n</head><body>\n"
    + "\n".join(t for t in tags if not t.startswith("<link")) + "\n</body></html>\n")
PY

"$FERRY" serve files --root "$WORK/site" --port 0 --model event-driven >"$WORK/files.out" 2>"$WORK/files.err" &
PIDS+=($!)
FILES=$(listening_address "$WORK/files.out")

echo "fetching..." >&2
python3 - "$FERRY" "$WORK" "$FILES" "$RTTS" "$RUNS" "$ROOT/Benchmarks/delay-relay.py" "$(dirname "$0")/fetch.svg" <<'PY'
import json, os, socket, statistics, subprocess, sys, time

ferry, work, files, rtts, runs, relay_script, svg_path = sys.argv[1:8]
rtts, runs = [int(r) for r in rtts.split(",")], int(runs)
site = f"{work}/site"
paths = ["/index.html"] + sorted(
    "/" + os.path.relpath(os.path.join(d, f), site) for d, _, fs in os.walk(site) for f in fs if f != "index.html")
assert len(paths) == 61, len(paths)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def timed(command, check):
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    elapsed = (time.perf_counter() - started) * 1000
    if out.returncode != 0 or not check(out.stdout):
        sys.exit(f"{command[0]} failed ({out.returncode}): {out.stderr.strip()[:300]} {out.stdout[-300:]}")
    return elapsed

rows = []
for rtt in rtts:
    port = free_port()
    relay = subprocess.Popen(["python3", relay_script, str(port), "127.0.0.1", files.split(":")[1], str(rtt), "--handshake"],
                             stdout=subprocess.PIPE, text=True)
    relay.stdout.readline()
    base = f"http://127.0.0.1:{port}"
    config = f"{work}/curl-{rtt}.cfg"
    open(config, "w").write("".join(f'url = "{base}{p}"\noutput = "/dev/null"\n' for p in paths))
    def ferry_fetch(n):
        def check(out):
            last = json.loads(out.strip().splitlines()[-1])
            return last["resources"] == 61 and last["failed"] == 0
        return [ferry, "fetch", f"{base}/index.html", "--parallel", str(n), "--json"], check
    clients = [(f"ferry fetch", n, *ferry_fetch(n)) for n in (1, 2, 6, 16)] + [
        ("curl --parallel", 6, ["curl", "-sf", "-Z", "--parallel-max", "6", "-K", config], lambda out: True),
        ("curl --parallel", 16, ["curl", "-sf", "-Z", "--parallel-max", "16", "-K", config], lambda out: True),
        ("curl (in turn)", 1, ["curl", "-sf", "-K", config], lambda out: True),
        ("wget -p", 1, ["wget", "-q", "-p", "-P", f"{work}/wget-{rtt}", "-e", "robots=off", f"{base}/index.html"], lambda out: True),
    ]
    for name, connections, command, check in clients:
        times = [timed(command, check) for _ in range(runs)]
        rows.append((rtt, name, connections, statistics.median(times)))
        print(f"  rtt {rtt} ms, {name} x{connections}: {statistics.median(times):.0f} ms", file=sys.stderr)
    fetched = len([f for _, _, fs in os.walk(f"{work}/wget-{rtt}") for f in fs])
    if fetched != 61:
        print(f"  note: wget -p fetched {fetched} of 61", file=sys.stderr)
    relay.kill()

def time_of(rtt, name, n):
    return next(t for r, c, k, t in rows if r == rtt and c == name and k == n)

print("Page complete: a page and the 60 resources it names, behind a delay relay (user space, with the")
print(f"handshake's round trip); wall time of the whole command, median of {runs}.")
print()
print(f"{'rtt ms':>6} {'client':>16} {'conns':>5} {'page ms':>8} {'vs serial':>9} {'vs curl -Z 6':>12}")
print("-" * 62)
for rtt, name, n, t in rows:
    serial = time_of(rtt, "ferry fetch", 1)
    curl6 = time_of(rtt, "curl --parallel", 6)
    print(f"{rtt:>6} {name:>16} {n:>5} {t:>8.0f} {serial / t:>8.2f}x {t / curl6:>11.2f}x")
print()
print("goals: ferry fetch with 6 connections >= 4x faster than with 1 (serial), and <= 1.0x curl --parallel's time.")
for rtt in rtts:
    speedup = time_of(rtt, "ferry fetch", 1) / time_of(rtt, "ferry fetch", 6)
    ratio = time_of(rtt, "ferry fetch", 6) / time_of(rtt, "curl --parallel", 6)
    print(f"  rtt {rtt} ms: {speedup:.2f}x faster than serial ({'met' if speedup >= 4 else 'NOT met'}), "
          f"{ratio:.2f}x curl --parallel's time ({'met' if ratio <= 1.0 else 'NOT met'})")

# The chart: page time per client, one group per round trip.
labels = [f"{name} x{n}" for rtt, name, n, _ in rows if rtt == rtts[0]]
width, bar, gap = 760, 16, 30
height = 60 + len(rtts) * (len(labels) * (bar + 4) + gap)
longest = max(t for *_, t in rows)
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="10" y="20" font-size="14">Page complete (60 resources), ms: ferry fetch against curl and wget</text>']
y = 40
for rtt in rtts:
    parts.append(f'<text x="10" y="{y + 12}" font-weight="bold">{rtt} ms round trip</text>')
    y += 20
    for r, name, n, t in rows:
        if r != rtt:
            continue
        length = (width - 330) * t / longest
        color = "#3a7bd5" if name == "ferry fetch" else "#999"
        parts.append(f'<text x="10" y="{y + 12}">{name} x{n}</text>')
        parts.append(f'<rect x="170" y="{y}" width="{length:.1f}" height="{bar}" fill="{color}"/>')
        parts.append(f'<text x="{175 + length:.1f}" y="{y + 12}">{t:.0f}</text>')
        y += bar + 4
    y += gap - 20
parts.append("</svg>")
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
