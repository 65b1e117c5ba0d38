// Native anchor for the guest benchmark: Guests/sha256.c compiled by the host's C compiler, so
// the Wasm runs can be compared with the same code running natively.
//   cc -O2 -o sha256_native Benchmarks/guest/sha256_native.c
//   sha256_native MIB REPEATS   (prints the digest and native_mib_per_s, best of REPEATS)
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// ferry.h's import_module/export_name attributes are Wasm-only; native compilers ignore them
// with a warning, which is all they need here. Including the .c keeps the guest file untouched
// and gives access to its static `digest`.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-attributes"
#else
#pragma GCC diagnostic ignored "-Wattributes"
#endif
#include "../../Guests/sha256.c"

// The only import sha256.c calls; a no-op, and never reached with every = 0 anyway.
void ferry_checkpoint(void) {}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int mib = argc == 3 ? atoi(argv[1]) : 0, repeats = argc == 3 ? atoi(argv[2]) : 0;
    // `total` is an int in the guest (an i32 in Wasm), so at most 2047 MiB.
    if (mib < 1 || mib > 2047 || repeats < 1) {
        fprintf(stderr, "usage: %s MIB REPEATS   (1 <= MIB <= 2047)\n", argv[0]);
        return 2;
    }
    double best = 0;
    for (int r = 0; r < repeats; r++) {
        double start = now_s();
        // The returned address is the guest's 32-bit view of `digest`; natively read it directly.
        sha256_generated(mib * 1048576, 0);
        double rate = mib / (now_s() - start);
        if (rate > best) best = rate;
    }
    for (int i = 0; i < 32; i++) printf("%02x", digest[i]);
    printf("\nnative_mib_per_s=%.1f\n", best);
    return 0;
}
