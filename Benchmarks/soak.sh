#!/usr/bin/env bash
# A soak: `ferry up` (three tiers, three nodes) under a mixed load for DURATION seconds: files
# and app visits through the front switch (wrk, paced to about LOAD of the peak it measured
# first), kv puts (ferry-bench, two clients) and object calls (a client incrementing counters).
# Every SAMPLE seconds it samples, over every `ferry` process of the cluster, resident memory,
# open descriptors and threads, and the p99 of 50 requests through the front; it prints the first
# and last samples after warm-up and the growth, counts every failed request, and writes the
# samples as an SVG chart, soak.svg, beside this script.
#
# Usage: Benchmarks/soak.sh      (DURATION=600 SAMPLE=10 WARMUP=60 LOAD=0.8)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-10}
WARMUP=${WARMUP:-60}
LOAD=${LOAD:-0.8}
require wrk
[ -n "${NO_BUILD:-}" ] || build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir soak-bench

"$FERRY" up --port 0 --control-port 0 --endpoints-port 0 --kv-port 0 --objects-port 0 --redirector-port 0 \
    --dns-port 0 --dashboard-port 0 --data-dir "$WORK/data" >"$WORK/up.out" 2>"$WORK/up.err" &
UP=$!
PIDS+=($UP)
for _ in $(seq 600); do grep -q "^Ctrl-C stops" "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
FRONT=$(head -1 "$WORK/up.out" | sed 's/^listening on //')
KV=$(grep '^kv ' "$WORK/up.out" | awk '{print $2}')
OBJECTS=$(grep '^objects ' "$WORK/up.out" | awk '{print $2}')

echo "measuring the front's peak (5 s)..." >&2
cat >"$WORK/mix.lua" <<'LUA'
-- Two requests in turn: a file, and an app visit (front -> app node -> kv).
local n = 0
request = function()
    n = n + 1
    if n % 2 == 0 then return wrk.format("POST", "/app/visits") end
    return wrk.format("GET", "/hello.txt")
end
delay = function() return tonumber(os.getenv("WRK_DELAY_MS") or "0") end
LUA
PEAK=$(WRK_DELAY_MS=0 wrk -t2 -c32 -d5s -s "$WORK/mix.lua" "http://$FRONT" | awk '/Requests\/sec/ {print $2}')
# 32 connections, each waiting DELAY ms between requests: about LOAD of the peak.
DELAY=$(python3 -c "print(max(0, int(32 * 1000 / ($LOAD * $PEAK))))")
echo "peak $PEAK req/s; pacing 32 connections at $DELAY ms apart for ${DURATION} s..." >&2

WRK_DELAY_MS=$DELAY wrk -t2 -c32 -d"${DURATION}s" --latency -s "$WORK/mix.lua" "http://$FRONT" >"$WORK/wrk.out" 2>&1 &
LOADS=($!)
# The cluster's clients hold its credentials, which ferry up made in its data directory.
export FERRY_CREDENTIALS="$WORK/data/tls"
"$BENCH" kv --target ferry --addr "$KV" --op put --clients 2 --seconds "$DURATION" >"$WORK/kv.out" 2>&1 &
LOADS+=($!)
python3 - "$FERRY" "$OBJECTS" "$DURATION" >"$WORK/objects.out" 2>&1 <<'PY' &
import subprocess, sys, time
ferry, node, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
end, calls, failed = time.time() + duration, 0, 0
while time.time() < end:
    out = subprocess.run([ferry, "call", "--node", node, f"counter/soak{calls % 16}", "increment", "[1]"],
                         capture_output=True)
    calls += 1
    failed += out.returncode != 0
print(f"calls {calls} failed {failed}")
PY
LOADS+=($!)

python3 - "$UP" "$FRONT" "$DURATION" "$SAMPLE" "$WARMUP" "$WORK/samples.json" <<'PY'
import http.client, json, os, sys, time
up, front, duration, every, warmup, out = int(sys.argv[1]), sys.argv[2], *map(float, sys.argv[3:6]), sys.argv[6]
host, port = front.split(":")

def cluster():
    # ferry up and its `ferry node` children.
    pids = [up]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == up:
                    pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids

def sample(t):
    rss = fds = threads = 0
    for pid in cluster():
        try:
            status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
            rss += int(status["VmRSS"].split()[0]) * 1024
            threads += int(status["Threads"])
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    latencies = []
    for _ in range(50):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/hello.txt")
        connection.getresponse().read()
        connection.close()
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {"t": round(t), "rss": rss, "fds": fds, "threads": threads, "p99_ms": round(latencies[48], 2)}

samples, start = [], time.time()
while time.time() - start < duration:
    samples.append(sample(time.time() - start))
    print(f"  {samples[-1]}", file=sys.stderr)
    time.sleep(max(0, every - (time.time() - start) % every))
json.dump(samples, open(out, "w"))
PY
for pid in "${LOADS[@]}"; do wait "$pid" || true; done
# The cluster's side of any failure: what it logged at warning or above, most frequent first.
echo "ferry up's warnings and errors (count, line without its time), most frequent first:" >&2
{ grep -hE " (warning|error|critical) " "$WORK/up.err" || true; } | cut -d' ' -f2- | cut -c1-160 |
    sort | uniq -c | sort -rn | head -8 >&2

python3 - "$WORK" "$PEAK" "$DELAY" "$WARMUP" "$(dirname "$0")/soak.svg" <<'PY'
import json, re, sys
work, peak, delay, warmup, svg_path = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
samples = json.load(open(f"{work}/samples.json"))
wrk = open(f"{work}/wrk.out").read()
requests = int(re.search(r"(\d+) requests in", wrk)[1])
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk)[1])
kinds = dict((kind, int(n)) for kind, n in re.findall(r"(connect|read|write|timeout) (\d+)", wrk))
socket_errors = sum(kinds.values())
# wrk's kinds: connect/read/write are failed system calls (read: the server closed a connection
# wrk was reading from); timeout is an answer that took over wrk's 2 s.
error_kinds = ", ".join(f"{kind} {n}" for kind, n in kinds.items() if n) or "none"
non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", wrk) or [0, 0])[1])
kv = open(f"{work}/kv.out").read().strip().splitlines()[-1]
objects = open(f"{work}/objects.out").read().strip()
calls, failed_calls = map(int, re.findall(r"\d+", objects)[:2])
warm = [s for s in samples if s["t"] >= warmup] or samples
first, last = warm[0], warm[-1]
print(f"Soak of `ferry up`: {samples[-1]['t'] + 0:.0f} s of mixed load, {rate:.0f} req/s through the front "
      f"({rate / peak:.0%} of the {peak:.0f} req/s peak), kv puts and object calls beside.")
print()
print(f"{'sample':>10} {'t s':>6} {'RSS MiB':>9} {'fds':>6} {'threads':>8} {'p99 ms':>8}")
for name, s in (("first", first), ("last", last)):
    print(f"{name:>10} {s['t']:>6} {s['rss'] / 2**20:>9.1f} {s['fds']:>6} {s['threads']:>8} {s['p99_ms']:>8.2f}")
print(f"{'growth':>10} {last['t'] - first['t']:>6} {(last['rss'] - first['rss']) / 2**20:>+9.1f} "
      f"{last['fds'] - first['fds']:>+6} {last['threads'] - first['threads']:>+8} {last['p99_ms'] - first['p99_ms']:>+8.2f}")
print(f"(after {warmup:.0f} s of warm-up; every process of the cluster summed: ferry up and its nodes)")
print()
print(f"front: {requests} requests, {socket_errors} socket errors ({error_kinds}), {non2xx} not 2xx/3xx")
print(f"kv puts: {kv}")
print(f"object calls: {calls}, {failed_calls} failed")
print("goal: no growth beyond warm-up, no error")

width, height, left = 760, 420, 60
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         '<text x="10" y="20" font-size="14">Soak of ferry up: each series against its own maximum, over time</text>']
series = [("rss", "RSS", "#3a7bd5"), ("fds", "descriptors", "#2a9d5c"), ("threads", "threads", "#e08a1e"), ("p99_ms", "p99 ms", "#c0392b")]
span = max(1, samples[-1]["t"])
for i, (key, label, color) in enumerate(series):
    top = max(s[key] for s in samples) or 1
    points = " ".join(f"{left + (width - left - 20) * s['t'] / span:.1f},{380 - 320 * s[key] / top:.1f}" for s in samples)
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
    shown = f"{top / 2**20:.0f} MiB" if key == "rss" else f"{top:g}"
    parts.append(f'<text x="{left + 150 * i}" y="405" fill="{color}">{label} (max {shown})</text>')
parts.append(f'<line x1="{left}" y1="380" x2="{width - 20}" y2="380" stroke="#999"/>')
parts.append(f'<text x="{left}" y="395">0 s</text><text x="{width - 60}" y="395">{span} s</text>')
parts.append("</svg>")
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
