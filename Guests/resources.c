// A process's resources across a move, one of each kind in the seed's table. A WASI command:
//   resources TARGET PEER          (HOST:PORT of a TCP peer; the first --dir is seen at fd 3)
// Before it goes to TARGET (ferry.go) it writes a file in its writable layer, stores a key in the
// cluster's kv and opens a connection to PEER (and waits for its one-byte answer); after, it reads
// them all back on the other node, with the lower layer's base.txt and the node's own temperature,
// and says what it found.
#include "ferry.h"

typedef unsigned long size;
typedef unsigned long long u64;
typedef struct { const char *base; size length; } ciovec;
typedef struct { char *base; size length; } iovec;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
WASI("fd_write") int fd_write(int fd, const ciovec *iovs, int count, size *written);
WASI("fd_read") int fd_read(int fd, const iovec *iovs, int count, size *read);
WASI("fd_close") int fd_close(int fd);
WASI("path_open") int path_open(int fd, int lookup, const char *path, size length, int oflags, u64 rights,
                                u64 inheriting, int fdflags, int *opened);
WASI("args_sizes_get") int args_sizes_get(size *count, size *bytes);
WASI("args_get") int args_get(char **argv, char *buffer);
WASI("proc_exit") _Noreturn void proc_exit(int code);

static void put(const char *text, int length) {
    ciovec iov = {text, (size)length};
    size written;
    fd_write(1, &iov, 1, &written);
}
#define PUTS(text) put(text, ferry_strlen(text))

static char here[64];
static int here_length;

static void where(void) {
    here_length = ferry_node_name(here, sizeof here);
    if (here_length < 0) here_length = 0;
}

static void write_file(const char *name, const char *text, int length) {
    int fd;
    if (path_open(3, 0, name, ferry_strlen(name), 1 | 8, 1 << 6, 0, 0, &fd) != 0) return;
    ciovec iov = {text, (size)length};
    size written;
    fd_write(fd, &iov, 1, &written);
    fd_close(fd);
}

/// Prints `label` and the file's contents (up to 200 bytes), or that it is missing.
static void show_file(const char *label, const char *name) {
    static char buffer[200];
    int fd;
    PUTS(label);
    if (path_open(3, 0, name, ferry_strlen(name), 0, 1 << 1, 0, 0, &fd) != 0) {
        PUTS("missing\n");
        return;
    }
    iovec iov = {buffer, sizeof buffer};
    size got = 0;
    fd_read(fd, &iov, 1, &got);
    fd_close(fd);
    put(buffer, (int)got);
    if (got == 0 || buffer[got - 1] != '\n') PUTS("\n");
}

static void _Noreturn run(void) {
    static char argument_buffer[512];
    static char *argv[4];
    size count, bytes;
    args_sizes_get(&count, &bytes);
    if (count != 3 || bytes > sizeof argument_buffer) {
        PUTS("usage: resources TARGET PEER\n");
        proc_exit(2);
    }
    args_get(argv, argument_buffer);
    const char *target = argv[1], *peer = argv[2];

    where();
    static char note[100];
    int length = 0;
    for (const char *p = "written at "; *p; p++) note[length++] = *p;
    for (int i = 0; i < here_length; i++) note[length++] = here[i];
    note[length++] = '\n';
    write_file("note.txt", note, length);
    ferry_kv_put("resources/greeting", 18, note, length);
    int connection = ferry_connect(peer, ferry_strlen(peer));
    ferry_conn_send(connection, "before the move\n", 16);
    // The peer answers one byte once it has taken the connection: only then does the process go,
    // so that a peer taking one connection only has surely stopped listening when the target
    // tries to open it again.
    char taken;
    ferry_conn_recv(connection, &taken, 1);

    int went = ferry_go(target, ferry_strlen(target));
    where();
    PUTS(went == 0 ? "moved: yes, on " : "moved: no, still on ");
    put(here, here_length);
    PUTS("\n");
    show_file("file: ", "note.txt");
    show_file("lower: ", "base.txt");
    static char value[100];
    int got = ferry_kv_get("resources/greeting", 18, value, sizeof value);
    PUTS("kv: ");
    if (got >= 0) put(value, got); else PUTS("unreachable\n");
    got = ferry_local_get("temperature", 11, value, sizeof value);
    PUTS("local: ");
    if (got >= 0) put(value, got);
    PUTS("\n");
    length = 0;
    for (const char *p = "after the move, from "; *p; p++) note[length++] = *p;
    for (int i = 0; i < here_length; i++) note[length++] = here[i];
    note[length++] = '\n';
    int sent = ferry_conn_send(connection, note, length);
    PUTS(sent == length ? "connection: sent\n" : "connection: failed\n");
    ferry_conn_close(connection);
    proc_exit(0);
}

FERRY_EXPORT("_start") void _start(void) { run(); }
