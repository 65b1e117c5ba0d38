// A guest that keeps writing its memory, for live migration: built plain (a node makes it
// movable). A WASI command:
//   writer MIB RATE [SECONDS]  grows MIB of memory, then writes one 8-byte word into each 4 KiB
//                              page of it in turn, RATE MiB of pages a second (0: as fast as it
//                              can), paced by the host's clock; forever, or for SECONDS and then
//                              exits. Its export `pages_written` says how many pages so far.
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

static volatile u64 written;

FERRY_EXPORT("pages_written") u64 pages_written(void) { return written; }

static void _Noreturn run(void) {
    static char buffer[256];
    static char *argv[5];
    size count, bytes;
    args_sizes_get(&count, &bytes);
    if (count < 3 || count > 4 || bytes > sizeof buffer) proc_exit(2);
    args_get(argv, buffer);
    int mib = number(argv[1]), rate = number(argv[2]);
    long long seconds = count == 4 ? number(argv[3]) : 0;
    if (mib <= 0) proc_exit(2);
    int first = __builtin_wasm_memory_grow(0, mib * 16);
    if (first < 0) proc_exit(3);
    u64 *base = (u64 *)((unsigned long)first * 65536);
    unsigned long pages = (unsigned long)mib * 256, page = 0;
    long long start = ferry_clock_ms();
    for (;;) {
        long long now = ferry_clock_ms();
        if (seconds > 0 && now - start >= seconds * 1000) proc_exit(0);
        // Pages due by now at RATE MiB (256 pages) a second; at most a thousand at once, so
        // that the clock is read often.
        u64 due = rate == 0 ? written + 1000 : (u64)(now - start) * (u64)rate * 256 / 1000;
        for (int burst = 0; written < due && burst < 1000; burst++) {
            base[page * 512] = written;
            written++;
            page = page + 1 == pages ? 0 : page + 1;
        }
    }
}

FERRY_EXPORT("_start") void _start(void) { run(); }
