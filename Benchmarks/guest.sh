#!/usr/bin/env bash
# FerryGuest's costs beside their anchors, in one run: the same SHA-256 C code (Guests/sha256.c)
# natively at -O2, under Wasmtime (PyPI), and under Ferry on each engine (WasmKit, and Wasmtime
# through the same wheel's C library) plain, metered (fuel), with Asyncify, and with both;
# instantiation of a cached module; checkpoint and restore time against memory size; one
# user-level switch under GuestScheduler. Writes guest.svg beside itself.
#
# Usage: Benchmarks/guest.sh      (MIB=16 REPEATS=3)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/guest/anchors.sh"
MIB=${MIB:-16}
REPEATS=${REPEATS:-3}

build_release ferry-bench
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir guest-bench

NATIVE=$(build_native_anchor)
PYTHON=$(ensure_wasmtime)

echo "native..." >&2
"$NATIVE" "$MIB" "$REPEATS" >"$WORK/native.out"
echo "wasmtime..." >&2
"$PYTHON" "$ANCHORS_DIR/wasmtime_sha256.py" "$ROOT/Guests/sha256.plain.wasm" "$MIB" "$REPEATS" >"$WORK/wasmtime-plain.out"
"$PYTHON" "$ANCHORS_DIR/wasmtime_sha256.py" "$ROOT/Guests/sha256.wasm" "$MIB" "$REPEATS" >"$WORK/wasmtime-asyncify.out"
echo "ferry..." >&2
"$BENCH" guest --guests "$ROOT/Guests" --mib "$MIB" --repeats "$REPEATS" >"$WORK/ferry.out"
echo "ferry on wasmtime..." >&2
# Ferry's second engine loads the same wheel's C library.
FERRY_WASMTIME_LIBRARY=$("$PYTHON" -c 'import glob, os, wasmtime; print(glob.glob(os.path.dirname(wasmtime.__file__) + "/*/_libwasmtime.so")[0])') \
    "$BENCH" guest --engine wasmtime --guests "$ROOT/Guests" --mib "$MIB" --repeats "$REPEATS" >"$WORK/ferry-wasmtime.out"

# value FILE KEY : the value of KEY=value in FILE.
value() { sed -n "s/^$2=//p" "$1"; }

digests=$(printf '%s\n' "$(head -1 "$WORK/native.out")" "$(head -1 "$WORK/wasmtime-plain.out")" \
    "$(head -1 "$WORK/wasmtime-asyncify.out")" "$(value "$WORK/ferry.out" digest)" | sort -u)
if [ "$(wc -l <<<"$digests")" != 1 ]; then
    echo "the runs disagree on the digest:" >&2
    echo "$digests" >&2
    exit 1
fi

python3 - "$MIB" "$WORK" "$(dirname "$0")/guest.svg" <<'EOF'
import math, sys

mib, work, svg_path = sys.argv[1], sys.argv[2], sys.argv[3]

def values(name):
    pairs = (line.strip().split("=", 1) for line in open(f"{work}/{name}.out") if "=" in line)
    return {key: float(value) for key, value in pairs if key != "digest"}

native, ferry, on_wasmtime = values("native"), values("ferry"), values("ferry-wasmtime")
wasmtime_plain, wasmtime_asyncify = values("wasmtime-plain"), values("wasmtime-asyncify")
plain = ferry["plain_mib_per_s"]

print(f"SHA-256 over {mib} MiB of generated data (best of runs; all runs agree on the digest)")
print()
print(f"{'run':34} {'MiB/s':>9} {'vs Ferry plain':>15} {'cost over plain':>16} {'vs native':>10}")
print(f"{'-' * 34} {'-' * 9} {'-' * 15} {'-' * 16} {'-' * 10}")
rows = [
    ("native, cc -O2", native["native_mib_per_s"]),
    ("wasmtime, plain .wasm", wasmtime_plain["wasmtime_mib_per_s"]),
    ("wasmtime, Asyncify .wasm", wasmtime_asyncify["wasmtime_mib_per_s"]),
    ("ferry (WasmKit), plain", plain),
    ("ferry, fuel", ferry["fuel_mib_per_s"]),
    ("ferry, Asyncify", ferry["asyncify_mib_per_s"]),
    ("ferry, fuel + Asyncify", ferry["fuel_asyncify_mib_per_s"]),
    ("ferry on Wasmtime, plain", on_wasmtime["plain_mib_per_s"]),
    ("ferry on Wasmtime, fuel", on_wasmtime["fuel_mib_per_s"]),
    ("ferry on Wasmtime, Asyncify", on_wasmtime["asyncify_mib_per_s"]),
    ("ferry on Wasmtime, fuel + Asyncify", on_wasmtime["fuel_asyncify_mib_per_s"]),
    ("ferry on Wasmtime, movable", on_wasmtime["movable_mib_per_s"]),
]
for name, rate in rows:
    base = on_wasmtime["plain_mib_per_s"] if "Wasmtime" in name else plain
    cost = f"{base / rate - 1:+.1%}" if name.startswith("ferry") else ""
    print(f"{name:34} {rate:9.1f} {rate / plain:14.2f}x {cost:>16} {rate / native['native_mib_per_s']:9.3f}x")
both = plain / ferry["fuel_asyncify_mib_per_s"] - 1

# The chart: MiB/s per run on a log scale (the engines are two orders of magnitude apart).
width, height, left, top, bar = 760, 70 + 26 * len(rows), 250, 40, 18
top_rate = max(rate for _, rate in rows)
scale = (width - left - 120) / math.log10(top_rate * 10)
colors = {"native": "#999", "wasmtime": "#d9822b", "ferry on": "#2b8a3e"}
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="10" y="20" font-size="14">SHA-256 over {mib} MiB, MiB/s, log scale (higher is better)</text>']
for i, (name, rate) in enumerate(rows):
    y = top + 26 * i
    color = next((c for key, c in colors.items() if name.startswith(key)), "#4a7ab5")
    length = scale * math.log10(max(rate, 0.1) * 10)
    parts.append(f'<text x="10" y="{y + 13}">{name}</text>')
    parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="{color}"/>')
    parts.append(f'<text x="{left + length + 6:.1f}" y="{y + 13}">{rate:.1f}</text>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print()
print(f"chart: {svg_path}")
print()
print(f"fuel + Asyncify together cost {both:.1%} over plain WasmKit (goal: at most 20%): "
      + ("met" if both <= 0.20 else "missed"))
both = on_wasmtime["plain_mib_per_s"] / on_wasmtime["fuel_asyncify_mib_per_s"] - 1
print(f"fuel + Asyncify together cost {both:.1%} over plain on Wasmtime (goal: at most 20%): "
      + ("met" if both <= 0.20 else "missed"))
speed = on_wasmtime["plain_mib_per_s"] / native["native_mib_per_s"]
print(f"ferry on Wasmtime runs SHA-256 at {speed:.2f}x native (goal: at least 0.6x): "
      + ("met" if speed >= 0.6 else "missed"))
print()
instantiate, wasmtime_instantiate = ferry["instantiate_us"], wasmtime_plain["wasmtime_instantiate_us"]
print(f"instantiate a cached module: ferry {instantiate:.1f} µs, wasmtime {wasmtime_instantiate:.1f} µs "
      f"(Python embedding, call overhead included): {wasmtime_instantiate / instantiate:.2f}x wasmtime's speed")
print(f"instantiate a cached module, ferry on Wasmtime: {on_wasmtime['instantiate_us']:.1f} µs "
      f"(goal on both engines: at most 100 µs): "
      + ("met" if max(instantiate, on_wasmtime["instantiate_us"]) <= 100 else "missed"))
print()
print(f"{'':22} {'WasmKit':>26} {'Wasmtime':>26}")
print(f"{'memory':>8} {'snapshot MiB':>13} {'checkpoint ms':>14} {'restore ms':>11} {'checkpoint ms':>14} {'restore ms':>11}")
print(f"{'-' * 8} {'-' * 13} {'-' * 14} {'-' * 11} {'-' * 14} {'-' * 11}")
for size in (1, 16, 64):
    print(f"{str(size) + ' MiB':>8} {ferry[f'snapshot_bytes_{size}'] / 2**20:13.2f} "
          f"{ferry[f'checkpoint_ms_{size}']:14.2f} {ferry[f'restore_ms_{size}']:11.2f} "
          f"{on_wasmtime[f'checkpoint_ms_{size}']:14.2f} {on_wasmtime[f'restore_ms_{size}']:11.2f}")
print("checkpoint: unwind + copy memory and globals + serialize (CRC-32); restore: decode + "
      "instantiate + grow + copy + rewind, until the guest runs again")
print()
print(f"one user-level switch under GuestScheduler (unwind at ferry.yield, requeue, rewind): "
      f"{ferry['switch_us']:.1f} µs on WasmKit, {on_wasmtime['switch_us']:.1f} µs on Wasmtime")
EOF
echo
echo "$(cc --version | head -1); wasmtime $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("wasmtime"))') (PyPI); WasmKit 0.4.2"
