// A guest of a chosen size for the migration benchmark, built plain. A WASI command:
//   memory hold MIB                      fills MIB of fresh memory with pseudo-random bytes (so
//                                        no page is zero), then waits for a message: idle,
//                                        holding no thread, while it is moved
//   memory shuttle MIB HOPS NODE_A NODE_B  fills MIB, then goes (ferry.go) HOPS times between
//                                        NODE_B and NODE_A, and exits: a mobile agent's hops
#include "ferry.h"

typedef unsigned long size;
typedef unsigned long long u64;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
WASI("args_sizes_get") int args_sizes_get(size *count, size *bytes);
WASI("args_get") int args_get(char **argv, char *buffer);
WASI("proc_exit") _Noreturn void proc_exit(int code);

static int number(const char *text) {
    int value = 0;
    while (*text >= '0' && *text <= '9') value = value * 10 + (*text++ - '0');
    return value;
}

static volatile u64 checksum;

/// Grows memory by `mib` MiB and fills it, 8 bytes at a time, with xorshift64.
static void fill(int mib) {
    if (mib <= 0) return;
    int pages = mib * 16;
    int first = __builtin_wasm_memory_grow(0, pages);
    if (first < 0) proc_exit(3);
    u64 *words = (u64 *)((unsigned long)first * 65536);
    u64 state = 0x9E3779B97F4A7C15ull, sum = 0;
    for (unsigned long i = 0; i < (unsigned long)pages * 65536 / 8; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        words[i] = state;
        sum += state;
    }
    checksum = sum;
}

static void _Noreturn run(void) {
    static char buffer[512];
    static char *argv[8];
    size count, bytes;
    args_sizes_get(&count, &bytes);
    if (count < 3 || count > 6 || bytes > sizeof buffer) proc_exit(2);
    args_get(argv, buffer);
    fill(number(argv[2]));
    if (argv[1][0] == 'h') {
        static char message[16];
        for (;;) ferry_receive_wait(message, sizeof message);
    }
    if (count != 6) proc_exit(2);
    int hops = number(argv[3]);
    for (int hop = 0; hop < hops; hop++) {
        const char *node = hop % 2 == 0 ? argv[5] : argv[4];
        if (ferry_go(node, ferry_strlen(node)) != 0) proc_exit(4);
    }
    proc_exit(0);
}

FERRY_EXPORT("_start") void _start(void) { run(); }
