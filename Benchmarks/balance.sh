#!/usr/bin/env bash
# Load-driven migration measured against the ideal, in one run: three `ferry node` processes, each
# in a cgroup with the same CPU quota (--cpus, default 0.5: three small machines on this one), and
# 30 CPU-bound guests of mixed lengths (6 long, 24 short: the SHA-256 guest over generated data),
# spawned all on one node, then again each on a node picked at random (seeded). For each placement
# and each balancing mode (off, sender, receiver, both) it prints the makespan (first spawn to
# last result), its ratio to the ideal (the CPU time all guests used, over the three nodes'
# budget), the moves made and the bytes they sent, and checks that every process ended exactly
# once with the right digest. Writes the table as an SVG chart, balance.svg, beside this script.
#
# Usage: Benchmarks/balance.sh      (CPUS=0.5 LONG_MIB=32 SHORT_MIB=4 MODES=off,sender,receiver,both SEED=7)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
[ -n "${NO_BUILD:-}" ] || build_release ferry
FERRY="$ROOT/.build/release/ferry"
make_workdir balance-bench

echo "running..." >&2
python3 - "$FERRY" "$WORK" "$ROOT/Guests/sha256.plain.wasm" "$(dirname "$0")/balance.svg" <<'PY'
import hashlib, json, os, random, re, subprocess, sys, threading, time

ferry, work, module, svg_path = sys.argv[1:5]
cpus = float(os.environ.get("CPUS", "0.5"))
long_mib, short_mib = float(os.environ.get("LONG_MIB", "32")), float(os.environ.get("SHORT_MIB", "4"))
modes = os.environ.get("MODES", "off,sender,receiver,both").split(",")
seed = int(os.environ.get("SEED", "7"))
nodes = ["n1", "n2", "n3"]
sizes = [int(long_mib * 2**20)] * 6 + [int(short_mib * 2**20)] * 24
random.Random(seed).shuffle(sizes)

def expected(total):
    # The guest's data: byte i is (i * 31 + (i >> 11)) & 255.
    h = hashlib.sha256()
    for start in range(0, total, 1 << 16):
        h.update(bytes(((i * 31 + (i >> 11)) & 255) for i in range(start, min(start + (1 << 16), total))))
    return h.hexdigest()

digests = {size: expected(size) for size in set(sizes)}

def first_line(path, prefix="listening on "):
    for _ in range(400):
        try:
            line = open(path).readline().strip()
            if line.startswith(prefix):
                return line[len(prefix):].split()[0]
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{path}: no '{prefix}' line")

def run(*args):
    return subprocess.run([ferry, *args], check=True, capture_output=True, text=True).stdout

def one_run(mode, placement, index):
    folder = f"{work}/{placement}-{mode}"
    os.makedirs(folder)
    procs = [subprocess.Popen([ferry, "endpointd", "--port", "0"], stdout=open(f"{folder}/d.out", "w"),
                              stderr=subprocess.DEVNULL)]
    try:
        daemon = first_line(f"{folder}/d.out")
        run("keys", "generate", "--out", f"{folder}/keys")
        for node in nodes:
            procs.append(subprocess.Popen(
                [ferry, "node", "--name", node, "--endpoints", daemon, "--trust", f"{folder}/keys/ferry.pub",
                 "--cpus", str(cpus), "--balance", mode],
                stdout=open(f"{folder}/{node}.out", "w"), stderr=open(f"{folder}/{node}.err", "w")))
        for node in nodes:
            first_line(f"{folder}/{node}.out")
        run("sign", module, "--key", f"{folder}/keys/ferry.key", "--out", f"{folder}/sha.wasm")
        # The module goes to each node once before the clock starts: code transfer is not load.
        for node in nodes:
            run("spawn", "--endpoints", daemon, "--node", node, f"{folder}/sha.wasm", "--name", f"warm-{node}",
                "--invoke", "sha256_generated", "--result-bytes", "32", "64", "0")
            run("wait", "--endpoints", daemon, f"warm-{node}")
            run("kill", "--endpoints", daemon, f"warm-{node}")
        rng = random.Random(seed + index)
        where = [nodes[0] if placement == "one-node" else rng.choice(nodes) for _ in sizes]
        results, errors = {}, []
        start = time.monotonic()

        def guest(i):
            name = f"g{i:02d}"
            try:
                subprocess.run([ferry, "spawn", "--endpoints", daemon, "--node", where[i], f"{folder}/sha.wasm",
                                "--name", name, "--invoke", "sha256_generated", "--result-bytes", "32",
                                str(sizes[i]), "0"], check=True, capture_output=True, text=True)
                out = subprocess.run([ferry, "wait", "--endpoints", daemon, name], check=True,
                                     capture_output=True, text=True).stdout
                results[name] = (time.monotonic() - start, out.strip())
            except subprocess.CalledProcessError as error:
                errors.append(f"{name}: {error.stderr.strip()}")

        threads = [threading.Thread(target=guest, args=(i,)) for i in range(len(sizes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        makespan = max((t for t, _ in results.values()), default=0)
        listed = json.loads(run("ps", "--endpoints", daemon, "--json"))
        listed = [p for p in listed if p["name"].startswith("g")]
        names = [p["name"] for p in listed]
        wrong = [p["name"] for p in listed
                 if p["state"] != "exited" or digests[sizes[int(p["name"][1:])]] not in (p.get("detail") or "")]
        cpu = sum(p["cpu_ms"] for p in listed) / 1000
        moved = [int(m) for node in nodes
                 for m in re.findall(r"balance: '[^']+' moved to \S+ in [0-9.]+ ms \((\d+) bytes",
                                     open(f"{folder}/{node}.err").read())]
        return dict(mode=mode, placement=placement, makespan=makespan, ideal=cpu / (cpus * len(nodes)), cpu=cpu,
                    moves=len(moved), bytes=sum(moved), max_moves=max((p["moves"] for p in listed), default=0),
                    ended=len(results), listed=len(names), unique=len(set(names)), wrong=len(wrong) + len(errors),
                    errors=errors[:3])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()

rows = []
for index, placement in enumerate(["one-node", "random"]):
    for mode in modes:
        row = one_run(mode, placement, index)
        rows.append(row)
        print(f"  {placement} {mode}: {row['makespan']:.1f} s", file=sys.stderr)

print(f"Load balancing: 3 nodes, each --cpus {cpus}; 30 SHA-256 guests (6 of {long_mib:g} MiB, 24 of {short_mib:g} MiB),")
print("spawned on one node, then at random. Ideal: the CPU time all guests used over the three budgets.")
print()
header = (f"{'placement':>9} {'balance':>8} {'makespan s':>10} {'ideal s':>8} {'ratio':>6} {'moves':>6} "
          f"{'per proc':>8} {'most':>5} {'bytes moved':>11} {'ended once, right':>17}")
print(header)
print("-" * len(header))
for r in rows:
    ok = r["ended"] == len(sizes) and r["listed"] == r["unique"] == len(sizes) and r["wrong"] == 0
    print(f"{r['placement']:>9} {r['mode']:>8} {r['makespan']:>10.1f} {r['ideal']:>8.1f} "
          f"{r['makespan'] / r['ideal']:>5.2f}x {r['moves']:>6} {r['moves'] / len(sizes):>8.2f} {r['max_moves']:>5} "
          f"{r['bytes']:>11} {('yes' if ok else 'NO ' + '; '.join(r['errors'])):>17}")
print()
print("goal: with balancing, makespan <= 1.15x the ideal, every process ended once, < 2 moves per process")

width, height, left, top, bar = 760, 70 + 26 * len(rows), 190, 40, 18
scale = (width - left - 80) / max(r["makespan"] / r["ideal"] for r in rows) if rows else 1
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="10" y="20" font-size="14">Makespan over the ideal, 3 nodes at --cpus {cpus}, 30 guests (1.0 = ideal)</text>']
x1 = left + scale * 1.0
x2 = left + scale * 1.15
parts.append(f'<line x1="{x1:.1f}" y1="{top - 8}" x2="{x1:.1f}" y2="{height - 20}" stroke="#444" stroke-dasharray="4 3"/>')
parts.append(f'<line x1="{x2:.1f}" y1="{top - 8}" x2="{x2:.1f}" y2="{height - 20}" stroke="#c33" stroke-dasharray="4 3"/>')
parts.append(f'<text x="{x2 + 4:.1f}" y="{top - 10}" fill="#c33">goal 1.15</text>')
colors = {"off": "#999", "sender": "#4a7", "receiver": "#47a", "both": "#a47"}
for i, r in enumerate(rows):
    y = top + 26 * i
    ratio = r["makespan"] / r["ideal"]
    parts.append(f'<text x="10" y="{y + 13}">{r["placement"]}, {r["mode"]}</text>')
    parts.append(f'<rect x="{left}" y="{y}" width="{scale * ratio:.1f}" height="{bar}" fill="{colors.get(r["mode"], "#777")}"/>')
    parts.append(f'<text x="{left + scale * ratio + 4:.1f}" y="{y + 13}">{ratio:.2f}x ({r["moves"]} moves)</text>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
