#!/usr/bin/env bash
# FerryGuest's costs beside their anchors, in one run: the same SHA-256 C code (Guests/sha256.c)
# natively at -O2, under Wasmtime (PyPI), and under Ferry (WasmKit) plain, metered (fuel), with
# Asyncify, and with both; instantiation of a cached module; checkpoint and restore time against
# memory size; one user-level switch under GuestScheduler.
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

# value FILE KEY : the value of KEY=value in FILE.
value() { sed -n "s/^$2=//p" "$1"; }

digests=$(printf '%s\n' "$(head -1 "$WORK/native.out")" "$(head -1 "$WORK/wasmtime-plain.out")" \
    "$(head -1 "$WORK/wasmtime-asyncify.out")" "$(value "$WORK/ferry.out" digest)" | sort -u)
if [ "$(wc -l <<<"$digests")" != 1 ]; then
    echo "the runs disagree on the digest:" >&2
    echo "$digests" >&2
    exit 1
fi

python3 - "$MIB" "$WORK" <<'EOF'
import sys

mib, work = sys.argv[1], sys.argv[2]

def values(name):
    pairs = (line.strip().split("=", 1) for line in open(f"{work}/{name}.out") if "=" in line)
    return {key: float(value) for key, value in pairs if key != "digest"}

native, ferry = values("native"), values("ferry")
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
]
for name, rate in rows:
    cost = f"{plain / rate - 1:+.1%}" if name.startswith("ferry") else ""
    print(f"{name:34} {rate:9.1f} {rate / plain:14.2f}x {cost:>16} {rate / native['native_mib_per_s']:9.3f}x")
both = plain / ferry["fuel_asyncify_mib_per_s"] - 1
print()
print(f"fuel + Asyncify together cost {both:.1%} over plain WasmKit (goal: at most 20%): "
      + ("met" if both <= 0.20 else "missed"))
print()
instantiate, wasmtime_instantiate = ferry["instantiate_us"], wasmtime_plain["wasmtime_instantiate_us"]
print(f"instantiate a cached module: ferry {instantiate:.1f} µs, wasmtime {wasmtime_instantiate:.1f} µs "
      f"(Python embedding, call overhead included): {wasmtime_instantiate / instantiate:.2f}x wasmtime's speed")
print()
print(f"{'memory':>8} {'snapshot MiB':>13} {'checkpoint ms':>14} {'restore ms':>11}")
print(f"{'-' * 8} {'-' * 13} {'-' * 14} {'-' * 11}")
for size in (1, 16, 64):
    print(f"{str(size) + ' MiB':>8} {ferry[f'snapshot_bytes_{size}'] / 2**20:13.2f} "
          f"{ferry[f'checkpoint_ms_{size}']:14.2f} {ferry[f'restore_ms_{size}']:11.2f}")
print("checkpoint: unwind + copy memory and globals + serialize (CRC-32); restore: decode + "
      "instantiate + grow + copy + rewind, until the guest runs again")
print()
print(f"one user-level switch under GuestScheduler (unwind at ferry.yield, requeue, rewind): "
      f"{ferry['switch_us']:.1f} µs")
EOF
echo
echo "$(cc --version | head -1); wasmtime $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("wasmtime"))') (PyPI); WasmKit 0.4.2"
