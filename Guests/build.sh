#!/usr/bin/env bash
# Rebuilds every example guest from its C source with the Swift toolchain's clang and wasm-ld:
#   Guests/build.sh
# The built .wasm files are committed, so tests and users need no rebuild.
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang}
# No libc: the guests use only Ferry's host API and raw WASI calls. The stack pointer is exported
# so that a guest's execution state can be captured and restored (FerryGuest checkpoints).
FLAGS=(--target=wasm32 -O2 -nostdlib -fno-builtin -Wall -Werror -Wl,--export=__stack_pointer -Wl,-z,stack-size=65536)
for source in counter spin membomb recursion messages; do
    "$CLANG" "${FLAGS[@]}" -Wl,--no-entry -Wl,--allow-undefined -o "$source.wasm" "$source.c"
    echo "built Guests/$source.wasm"
done
# WASI commands (they have a _start).
for source in hello files; do
    "$CLANG" "${FLAGS[@]}" -Wl,--allow-undefined -o "$source.wasm" "$source.c"
    echo "built Guests/$source.wasm"
done

# Guests whose execution state can be captured: Binaryen's Asyncify (Debian's binaryen, 108)
# lets the host unwind the call stack into linear memory at ferry.checkpoint and rewind it later.
WASM_OPT=${WASM_OPT:-wasm-opt}
for source in sha256; do
    "$CLANG" "${FLAGS[@]}" -Wl,--no-entry -Wl,--allow-undefined -o "$source.plain.wasm" "$source.c"
    "$WASM_OPT" "$source.plain.wasm" --asyncify --pass-arg=asyncify-imports@ferry.checkpoint -O2 -o "$source.wasm"
    echo "built Guests/$source.wasm (plain: Guests/$source.plain.wasm)"
done
# User-level threads for the scheduler: their stacks unwind at ferry.yield and ferry.receive_wait too.
for source in worker; do
    "$CLANG" "${FLAGS[@]}" -Wl,--no-entry -Wl,--allow-undefined -o "$source.plain.wasm" "$source.c"
    "$WASM_OPT" "$source.plain.wasm" --asyncify \
        --pass-arg=asyncify-imports@ferry.yield,ferry.receive_wait,ferry.checkpoint -O2 -o "$source.wasm"
    rm "$source.plain.wasm"
    echo "built Guests/$source.wasm"
done
