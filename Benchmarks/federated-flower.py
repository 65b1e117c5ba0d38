#!/usr/bin/env python3
"""The anchor of Benchmarks/federated.sh: the same softmax regression as Guests/softmax.c, in
numpy (float32), trained with the same mini-batch SGD on the same shards (the split ferry learn
made, from `ferry-bench federated-split`):

  federated-flower.py flower --split FILE --data FILE --rounds R --local-epochs E --lr X --batch B --seed S --port P
      Flower (flwr) running FedAvg over three clients, each a process of its own talking gRPC to
      the server on loopback; prints one JSON object per round (round, accuracy, ms, bytes: the
      weights' tensor bytes both ways) and a last one with final_accuracy.
  federated-flower.py client --split FILE --data FILE --node I --local-epochs E --lr X --batch B --seed S --port P
  federated-flower.py central --split FILE --data FILE --epochs N --lr X --batch B --seed S
      Centralized training on all the shards together for as many epochs: the upper bound.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

FEATURES, CLASSES = 64, 10


def load(data_path, split_path):
    raw = np.frombuffer(open(data_path, "rb").read(), dtype=np.uint8).reshape(-1, FEATURES + 1)
    x = (raw[:, :FEATURES] / 16.0).astype(np.float32)
    y = raw[:, FEATURES].astype(np.int64)
    split = json.load(open(split_path))
    return x, y, split


def train(w, x, y, epochs, lr, batch, rng):
    """Mini-batch SGD on the mean cross-entropy, as Guests/softmax.c does it; w is 65x10 (the
    weights row-major, then the biases)."""
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            rows = order[start:start + batch]
            xb, yb = x[rows], y[rows]
            z = xb @ w[:FEATURES] + w[FEATURES]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(rows)), yb] -= 1
            step = np.float32(lr / len(rows))
            w[:FEATURES] -= step * (xb.T @ p)
            w[FEATURES] -= step * p.sum(axis=0)
    return w


def accuracy(w, x, y):
    return float(((x @ w[:FEATURES] + w[FEATURES]).argmax(axis=1) == y).mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["flower", "client", "central"])
    for flag in ["--split", "--data"]:
        parser.add_argument(flag, required=True)
    for flag, default in [("--rounds", 20), ("--local-epochs", 1), ("--epochs", 20), ("--batch", 32), ("--seed", 1),
                          ("--port", 0), ("--node", 0)]:
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()
    x, y, split = load(args.data, args.split)
    test = np.array(split["test"])
    if args.mode == "central":
        rows = np.concatenate([np.array(s, dtype=np.int64) for s in split["shards"]])
        w = train(np.zeros((FEATURES + 1, CLASSES), np.float32), x[rows], y[rows], args.epochs, args.lr, args.batch,
                  np.random.default_rng(args.seed))
        print(json.dumps({"final_accuracy": accuracy(w, x[test], y[test])}))
        return

    import flwr as fl
    from flwr.common import ndarrays_to_parameters

    if args.mode == "client":
        rows = np.array(split["shards"][args.node], dtype=np.int64)
        rng = np.random.default_rng(args.seed * 1000 + args.node)

        class Client(fl.client.NumPyClient):
            def get_parameters(self, config):
                return [np.zeros((FEATURES + 1, CLASSES), np.float32)]

            def fit(self, parameters, config):
                w = train(parameters[0].astype(np.float32).copy(), x[rows], y[rows], args.local_epochs, args.lr,
                          args.batch, rng)
                return [w], len(rows), {"bytes": int(parameters[0].nbytes + w.nbytes)}

        fl.client.start_client(server_address=f"127.0.0.1:{args.port}", client=Client().to_client())
        return

    rounds = []
    last = [time.monotonic()]
    moved = {}

    def evaluate(server_round, parameters, config):
        now = time.monotonic()
        if server_round > 0:
            rounds.append(dict(round=server_round, accuracy=accuracy(parameters[0], x[test], y[test]),
                               ms=(now - last[0]) * 1000, bytes=moved.get(server_round, 0)))
        last[0] = now
        return 0.0, {}

    def fit_metrics(results):
        moved[len(moved) + 1] = sum(m.get("bytes", 0) for _, m in results)
        return {}

    strategy = fl.server.strategy.FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=len(split["shards"]),
        min_available_clients=len(split["shards"]), evaluate_fn=evaluate,
        fit_metrics_aggregation_fn=fit_metrics,
        initial_parameters=ndarrays_to_parameters([np.zeros((FEATURES + 1, CLASSES), np.float32)]))
    clients = [subprocess.Popen([sys.executable, __file__, "client", "--split", args.split, "--data", args.data,
                                 "--node", str(i), "--local-epochs", str(args.local_epochs), "--lr", str(args.lr),
                                 "--batch", str(args.batch), "--seed", str(args.seed), "--port", str(args.port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i in range(len(split["shards"]))]
    try:
        fl.server.start_server(server_address=f"127.0.0.1:{args.port}",
                               config=fl.server.ServerConfig(num_rounds=args.rounds), strategy=strategy)
    finally:
        for client in clients:
            client.wait(timeout=60)
    # The first round's time includes the clients' start: it is left out of the time per round.
    for r in rounds:
        print(json.dumps(r))
    print(json.dumps({"final_accuracy": rounds[-1]["accuracy"] if rounds else 0,
                      "ms_per_round": float(np.mean([r["ms"] for r in rounds[1:]])) if len(rounds) > 1 else 0}))


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
