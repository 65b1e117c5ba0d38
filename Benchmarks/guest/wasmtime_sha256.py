#!/usr/bin/env python3
"""Wasmtime anchor for the guest benchmark: runs a Ferry SHA-256 guest (Guests/sha256*.wasm) in
Wasmtime's Python embedding, so Ferry's numbers have an off-the-shelf runtime next to them.

    wasmtime_sha256.py WASM MIB REPEATS

Prints the digest, wasmtime_mib_per_s (best of REPEATS calls of sha256_generated(MIB MiB, 0))
and wasmtime_instantiate_us (median time to instantiate the already-compiled module in a fresh
Store, Python call overhead included).
"""
import statistics
import sys
import time

import wasmtime


def zero(valtype):
    return 0.0 if str(valtype) in ("f32", "f64") else 0


def stub(functype):
    """A host function that ignores its arguments and returns zeros of the right types."""
    results = [zero(t) for t in functype.results]
    value = None if not results else results[0] if len(results) == 1 else results
    return lambda *args: value


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: wasmtime_sha256.py WASM MIB REPEATS")
    path, mib, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if not 1 <= mib <= 2047 or repeats < 1:
        sys.exit("MIB must be 1..2047 (the guest's total is an i32), REPEATS at least 1")

    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, path)
    # Define whatever the module imports from "ferry" (sha256 only takes checkpoint, which is
    # never called with every = 0), so the same script works for either build.
    linker = wasmtime.Linker(engine)
    for imp in module.imports:
        if imp.module != "ferry" or not isinstance(imp.type, wasmtime.FuncType):
            sys.exit(f"unexpected import {imp.module}.{imp.name}")
        linker.define_func(imp.module, imp.name, imp.type, stub(imp.type))

    times = []
    for _ in range(200):
        start = time.perf_counter()
        linker.instantiate(wasmtime.Store(engine), module)
        times.append(time.perf_counter() - start)
    instantiate_us = statistics.median(times) * 1e6

    store = wasmtime.Store(engine)
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    run, memory = exports["sha256_generated"], exports["memory"]
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        address = run(store, mib * 1048576, 0)
        best = max(best, mib / (time.perf_counter() - start))
    print(bytes(memory.read(store, address, address + 32)).hex())
    print(f"wasmtime_mib_per_s={best:.1f}")
    print(f"wasmtime_instantiate_us={instantiate_us:.1f}")


if __name__ == "__main__":
    main()
