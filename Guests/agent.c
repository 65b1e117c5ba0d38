// A mobile agent: a WASI command that visits the nodes named in its arguments, reads each node's
// own "temperature" (ferry.local_get: bound by type, so it reads the node it is on), and comes
// home with what it found:
//   ferry spawn --node n1 agent.wasm n2 n3          strong: ferry.go, it goes on after the call
//   ferry spawn --node n1 agent.wasm --weak n2 n3   weak: ferry.go_weak, it starts again at
//                                                   ferry_arrive with its memory
// It is built plain (no Asyncify): the node makes it movable when it loads it.
#include "ferry.h"

typedef unsigned long size;
typedef struct { const char *base; size length; } ciovec;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
WASI("fd_write") int fd_write(int fd, const ciovec *iovs, int count, size *written);
WASI("args_sizes_get") int args_sizes_get(size *count, size *bytes);
WASI("args_get") int args_get(char **argv, char *buffer);
WASI("proc_exit") _Noreturn void proc_exit(int code);

enum { MAX_STOPS = 16, NAME = 64 };

// The tour lives in linear memory, so a weak move carries it too.
static char stops[MAX_STOPS + 1][NAME];
static int stop_count, next_stop, weak;
static long long total;
static int visited;

static void put(const char *text, int length) {
    ciovec iov = {text, (size)length};
    size written;
    fd_write(1, &iov, 1, &written);
}

static void put_number(long long value) {
    char digits[24];
    int n = 0;
    int negative = value < 0;
    if (negative) value = -value;
    do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value);
    if (negative) put("-", 1);
    while (n) put(&digits[--n], 1);
}

static long long parse(const char *text, int length) {
    long long value = 0;
    int sign = 1, i = 0;
    if (length > 0 && text[0] == '-') { sign = -1; i = 1; }
    for (; i < length && text[i] >= '0' && text[i] <= '9'; i++) value = value * 10 + (text[i] - '0');
    return sign * value;
}

/// Reads the temperature of the node it is on now, and says so.
static void record(void) {
    char here[NAME], value[32];
    int here_length = ferry_node_name(here, NAME);
    int length = ferry_local_get("temperature", 11, value, sizeof value);
    put("at ", 3);
    put(here, here_length > 0 ? here_length : 0);
    if (length < 0) {
        put(": no temperature\n", 17);
        return;
    }
    put(": ", 2);
    put(value, length);
    put("\n", 1);
    total += parse(value, length);
    visited++;
}

static void finish(void) {
    put("home at ", 8);
    put(stops[stop_count - 1], ferry_strlen(stops[stop_count - 1]));
    put(": visited ", 10);
    put_number(visited);
    put(" nodes, total ", 14);
    put_number(total);
    put("\n", 1);
    proc_exit(0);
}

static _Noreturn void fail(const char *node) {
    put("cannot go to ", 13);
    put(node, ferry_strlen(node));
    put("\n", 1);
    proc_exit(2);
}

/// Weak mobility: each arrival starts here, with the memory it left with.
FERRY_EXPORT("ferry_arrive") void ferry_arrive(void) {
    if (next_stop < stop_count - 1) record();
    next_stop++;
    if (next_stop == stop_count) finish();
    if (ferry_go_weak(stops[next_stop], ferry_strlen(stops[next_stop])) < 0) fail(stops[next_stop]);
}

int main_tour(void) {
    size count, bytes;
    static char buffer[4096];
    static char *argv[MAX_STOPS + 3];
    args_sizes_get(&count, &bytes);
    if (count > MAX_STOPS + 2 || bytes > sizeof buffer) fail("(too many stops)");
    args_get(argv, buffer);
    for (size i = 1; i < count; i++) {
        if (ferry_strlen(argv[i]) == 6 && argv[i][0] == '-' && argv[i][2] == 'w') {
            weak = 1;
            continue;
        }
        int n = 0;
        while (argv[i][n] && n < NAME - 1) { stops[stop_count][n] = argv[i][n]; n++; }
        stops[stop_count++][n] = 0;
    }
    // The last stop is home: where it started.
    int home = ferry_node_name(stops[stop_count], NAME - 1);
    stops[stop_count++][home > 0 ? home : 0] = 0;
    if (weak) {
        next_stop = 0;
        if (ferry_go_weak(stops[0], ferry_strlen(stops[0])) < 0) fail(stops[0]);
    }
    for (next_stop = 0; next_stop < stop_count; next_stop++) {
        if (ferry_go(stops[next_stop], ferry_strlen(stops[next_stop])) < 0) fail(stops[next_stop]);
        if (next_stop < stop_count - 1) record();
    }
    finish();
    return 0;
}

FERRY_EXPORT("_start") void _start(void) { main_tour(); }

/// The temperature of the node it runs on: remote evaluation (ferry eval) reads the node's own.
FERRY_EXPORT("temperature") int temperature(void) {
    char value[32];
    int length = ferry_local_get("temperature", 11, value, sizeof value);
    return length < 0 ? -1000 : (int)parse(value, length);
}
