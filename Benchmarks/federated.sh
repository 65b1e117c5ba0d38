#!/usr/bin/env bash
# Federated learning against Flower, in one run: three `ferry node` processes on loopback, each
# given a shard of the digits data set by `ferry learn`, and for each split (iid, dirichlet:0.5,
# dirichlet:0.1, classes:2) and seed, `ferry learn` (FedAvg, the model a wasm guest sent to the
# data) beside Flower (flwr from PyPI: FedAvg over three gRPC clients, each a process) training the
# same softmax regression in numpy on the very same shards (`ferry-bench federated-split`), and
# centralized training of that model on all shards for as many epochs (the upper bound). Prints
# accuracy after R rounds (mean ± std over the seeds), time per round and bytes per round, and
# writes accuracy per round for both as an SVG chart, federated.svg, beside this script.
#
# Usage: Benchmarks/federated.sh   (SPLITS=iid,dirichlet:0.5,dirichlet:0.1,classes:2 SEEDS=1,2,3,4,5
#                                   ROUNDS=20 EPOCHS=1 LR=0.5 BATCH=32 FERRY_ENGINE=wasmkit|wasmtime)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SPLITS=${SPLITS:-iid,dirichlet:0.5,dirichlet:0.1,classes:2}
SEEDS=${SEEDS:-1,2,3,4,5}
ROUNDS=${ROUNDS:-20}
EPOCHS=${EPOCHS:-1}
LR=${LR:-0.5}
BATCH=${BATCH:-32}
ENGINE=${FERRY_ENGINE:-wasmkit}

python3 -c 'import flwr, numpy' 2>/dev/null || { echo "installing: flwr numpy (PyPI)" >&2; pip install -q flwr numpy >&2; }
[ -n "${NO_BUILD:-}" ] || build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
DATA="$ROOT/Examples/digits/digits.bin"
make_workdir federated-bench

"$FERRY" endpointd --port 0 >"$WORK/endpointd.out" 2>"$WORK/endpointd.err" &
PIDS+=($!)
DAEMON=$(listening_address "$WORK/endpointd.out")
"$FERRY" keys generate --out "$WORK/keys" >/dev/null
for node in n1 n2 n3; do
    "$FERRY" node --name "$node" --endpoints "$DAEMON" --trust "$WORK/keys/ferry.pub" --engine "$ENGINE" \
        >"$WORK/$node.out" 2>"$WORK/$node.err" &
    PIDS+=($!)
    listening_address "$WORK/$node.out" >/dev/null
done

echo "learning..." >&2
for split in ${SPLITS//,/ }; do
    for seed in ${SEEDS//,/ }; do
        tag="${split//:/-}-$seed"
        "$FERRY" learn --endpoints "$DAEMON" --nodes n1,n2,n3 --split "$split" --seed "$seed" --rounds "$ROUNDS" \
            --local-epochs "$EPOCHS" --lr "$LR" --batch "$BATCH" --key "$WORK/keys/ferry.key" --json \
            --data "$DATA" --model "$ROOT/Guests/softmax.wasm" >"$WORK/ferry-$tag.jsonl"
        "$BENCH" federated-split --data "$DATA" --split "$split" --seed "$seed" --nodes 3 >"$WORK/split-$tag.json"
        python3 "$ROOT/Benchmarks/federated-flower.py" flower --split "$WORK/split-$tag.json" --data "$DATA" \
            --rounds "$ROUNDS" --local-epochs "$EPOCHS" --lr "$LR" --batch "$BATCH" --seed "$seed" \
            --port "$(free_port)" 2>/dev/null >"$WORK/flower-$tag.jsonl"
        python3 "$ROOT/Benchmarks/federated-flower.py" central --split "$WORK/split-$tag.json" --data "$DATA" \
            --epochs $((ROUNDS * EPOCHS)) --lr "$LR" --batch "$BATCH" --seed "$seed" >"$WORK/central-$tag.json"
        echo "  $split seed $seed: ferry $(tail -1 "$WORK/ferry-$tag.jsonl" | cut -c1-60)" >&2
    done
done

python3 - "$WORK" "$SPLITS" "$SEEDS" "$ROUNDS" "$EPOCHS" "$LR" "$BATCH" "$(dirname "$0")/federated.svg" "$ENGINE" <<'PY'
import json, statistics, sys

work, splits, seeds, rounds, epochs, lr, batch, svg_path = sys.argv[1:9]
splits, seeds = splits.split(","), seeds.split(",")

def lines(path):
    return [json.loads(line) for line in open(path) if line.strip()]

def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

rows, curves = [], {}
for split in splits:
    ferry, flower, central, ferry_ms, flower_ms, ferry_bytes, flower_bytes = [], [], [], [], [], [], []
    ferry_curve, flower_curve = [], []
    for seed in seeds:
        tag = f"{split.replace(':', '-')}-{seed}"
        f = lines(f"{work}/ferry-{tag}.jsonl")
        w = lines(f"{work}/flower-{tag}.jsonl")
        ferry.append(f[-1]["final_accuracy"])
        flower.append(w[-1]["final_accuracy"])
        central.append(json.load(open(f"{work}/central-{tag}.json"))["final_accuracy"])
        # Time per round without the first (the code's first trip; Flower's clients starting).
        ferry_ms.append(statistics.mean(r["ms"] for r in f[1:-1]) if len(f) > 2 else f[0]["ms"])
        flower_ms.append(w[-1]["ms_per_round"])
        ferry_bytes.append(statistics.mean(r["bytes"] for r in f[1:-1]) if len(f) > 2 else f[0]["bytes"])
        flower_bytes.append(statistics.mean(r["bytes"] for r in w[:-1]))
        ferry_curve.append([r["accuracy"] for r in f[:-1]])
        flower_curve.append([r["accuracy"] for r in w[:-1]])
    curves[split] = ([statistics.mean(v) for v in zip(*ferry_curve)], [statistics.mean(v) for v in zip(*flower_curve)])
    rows.append(dict(split=split, ferry=mean_std(ferry), flower=mean_std(flower), central=statistics.mean(central),
                     ferry_ms=statistics.mean(ferry_ms), flower_ms=statistics.mean(flower_ms),
                     ferry_bytes=statistics.mean(ferry_bytes), flower_bytes=statistics.mean(flower_bytes)))

print(f"Federated learning, 3 nodes on loopback: softmax regression on the digits data set, FedAvg, {rounds} rounds of")
print(f"{epochs} local epoch(s), lr {lr}, batch {batch}; accuracy on the held-out fifth, mean ± std over seeds {','.join(seeds)}.")
print("Ferry: the model is a wasm guest sent to the nodes ("+{"wasmkit": "WasmKit", "wasmtime": "Wasmtime"}.get(sys.argv[9], sys.argv[9])+"). Flower: the same model in numpy, gRPC clients.")
print()
header = (f"{'split':>13} {'Ferry':>15} {'Flower':>15} {'diff pts':>8} {'central':>8} {'Ferry/central':>13} "
          f"{'Ferry ms/rd':>11} {'Flower ms/rd':>12} {'time ratio':>10} {'Ferry B/rd':>10} {'Flower B/rd':>11}")
print(header)
print("-" * len(header))
for r in rows:
    (fm, fs), (wm, ws) = r["ferry"], r["flower"]
    print(f"{r['split']:>13} {fm:>8.4f} ±{fs:.4f} {wm:>8.4f} ±{ws:.4f} {100 * (fm - wm):>+8.2f} {r['central']:>8.4f} "
          f"{fm / r['central']:>12.3f}x {r['ferry_ms']:>11.1f} {r['flower_ms']:>12.1f} "
          f"{r['ferry_ms'] / r['flower_ms']:>9.2f}x {r['ferry_bytes']:>10.0f} {r['flower_bytes']:>11.0f}")
print()
print("goals: Ferry within 1 point of Flower on every split; >= 0.95x centralized on iid; time per round <= Flower's.")
print("Bytes: Ferry's are node-protocol frames both ways (weights as base64 out and hex back, in JSON); Flower's are")
print("the weight tensors only, without gRPC's framing.")

width, panel_h, left = 900, 220, 50
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{60 + panel_h * ((len(rows) + 1) // 2)}" '
         'font-family="sans-serif" font-size="12">',
         f'<text x="10" y="20" font-size="14">Test accuracy per round, mean over seeds: Ferry (solid) and Flower (dashed)</text>']
panel_w = (width - 2 * left) // 2
for i, split in enumerate(splits):
    ferry_curve, flower_curve = curves[split]
    x0, y0 = left + (i % 2) * (panel_w + left // 2), 40 + (i // 2) * panel_h
    h = panel_h - 50
    parts.append(f'<text x="{x0}" y="{y0 + 12}">{split}</text>')
    parts.append(f'<rect x="{x0}" y="{y0 + 20}" width="{panel_w - 20}" height="{h}" fill="none" stroke="#ccc"/>')
    for acc in (0.5, 0.75, 1.0):
        y = y0 + 20 + h * (1 - (acc - 0.25) / 0.75)
        parts.append(f'<text x="{x0 - 32}" y="{y + 4:.1f}" fill="#666">{acc:.2f}</text>')
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + panel_w - 20}" y2="{y:.1f}" stroke="#eee"/>')
    for curve, dash, color in ((ferry_curve, "", "#a47"), (flower_curve, ' stroke-dasharray="5 3"', "#47a")):
        if not curve:
            continue
        points = " ".join(f"{x0 + (panel_w - 20) * k / max(1, len(curve) - 1):.1f},"
                          f"{y0 + 20 + h * (1 - (max(0.25, a) - 0.25) / 0.75):.1f}" for k, a in enumerate(curve))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
