// A server process for client–server calls (`ferry send`), built plain (a node makes it movable).
// A WASI command:
//   echo [MIB]  grows MIB of memory (0 when not given) and fills it with pseudo-random bytes (once:
//               moved weakly, it starts again with its memory filled), then
//               answers each message (ferry_receive_wait) upper-cased (ferry_send), forever,
//               keeping the count of calls it answered in its memory: a call answered twice, or
//               lost in a move, shows in the count it says at `ferry send P count`.
//               `wait MS` is answered after MS milliseconds (a call in progress that long; it logs
//               "waiting" when it starts).
#include "ferry.h"

typedef unsigned long size;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
WASI("args_sizes_get") int args_sizes_get(size *count, size *bytes);
WASI("args_get") int args_get(char **argv, char *buffer);
WASI("proc_exit") _Noreturn void proc_exit(int code);

static char message[4096];
static unsigned long answered;

static int number(const char *text) {
    int value = 0;
    while (*text >= '0' && *text <= '9') value = value * 10 + (*text++ - '0');
    return value;
}

FERRY_EXPORT("_start") void _start(void) {
    static char buffer[256];
    static char *argv[3];
    size count, bytes;
    args_sizes_get(&count, &bytes);
    if (count > 2 || bytes > sizeof buffer) proc_exit(2);
    args_get(argv, buffer);
    int mib = count == 2 ? number(argv[1]) : 0;
    // Moved weakly, it starts here again with its memory: filled already.
    static int filled;
    if (mib > 0 && !filled) {
        filled = 1;
        int first = __builtin_wasm_memory_grow(0, mib * 16);
        if (first < 0) proc_exit(3);
        unsigned int *word = (unsigned int *)((unsigned long)first * 65536), state = 2463534242u;
        for (unsigned long i = 0; i < (unsigned long)mib << 18; i++) {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5;
            word[i] = state;
        }
    }
    for (;;) {
        int length = ferry_receive_wait(message, sizeof message);
        if (length < 0) proc_exit(4);
        answered++;
        if (length == 5 && message[0] == 'c' && message[1] == 'o' && message[2] == 'u' && message[3] == 'n' &&
            message[4] == 't') {
            // The count, in decimal.
            char digits[24];
            int n = 0;
            unsigned long value = answered - 1;
            do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
            for (int i = 0; i < n; i++) message[i] = digits[n - 1 - i];
            length = n;
        } else {
            if (length > 5 && message[0] == 'w' && message[1] == 'a' && message[2] == 'i' && message[3] == 't' &&
                message[4] == ' ') {
                long long wait = 0;
                for (int i = 5; i < length && message[i] >= '0' && message[i] <= '9'; i++)
                    wait = wait * 10 + (message[i] - '0');
                FERRY_LOG("waiting");
                // Time passed, counted in steps: a node's clock starts at the process's arrival.
                long long last = ferry_clock_ms();
                while (wait > 0) {
                    long long now = ferry_clock_ms();
                    if (now > last) wait -= now - last;
                    last = now;
                }
            }
            for (int i = 0; i < length; i++) {
                if (message[i] >= 'a' && message[i] <= 'z') message[i] -= 32;
            }
        }
        if (ferry_send(message, length) != 0) proc_exit(5);
    }
}
