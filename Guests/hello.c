// A WASI command: prints its arguments and one environment variable to standard output.
// Written against wasi_snapshot_preview1 directly (no libc in the toolchain's wasm32 target).
#include "ferry.h"

typedef struct { const char *base; unsigned long length; } ciovec;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
WASI("fd_write") int fd_write(int fd, const ciovec *iovs, int count, unsigned long *written);
WASI("args_sizes_get") int args_sizes_get(unsigned long *count, unsigned long *bytes);
WASI("args_get") int args_get(char **argv, char *buffer);
WASI("proc_exit") _Noreturn void proc_exit(int code);

static void print(const char *text, int length) {
    ciovec iov = {text, (unsigned long)length};
    unsigned long written;
    fd_write(1, &iov, 1, &written);
}

static char *argv[64];
static char args[4096];

void _start(void) {
    unsigned long count, bytes;
    if (args_sizes_get(&count, &bytes) != 0 || count > 64 || bytes > sizeof args) proc_exit(2);
    args_get(argv, args);
    print("hello from a guest:", 19);
    for (unsigned long i = 1; i < count; i++) {
        print(" ", 1);
        print(argv[i], ferry_strlen(argv[i]));
    }
    print("\n", 1);
    proc_exit(0);
}
