// A WASI command that works on the first directory it is given (WASI preopen fd 3): the file
// writer the layered view is tested and shown with. Arguments are a sequence of commands:
//   write PATH TEXT | append PATH TEXT | cat PATH | ls PATH | rm PATH | mkdir PATH | rmdir PATH
//   | mv FROM TO | ln TARGET PATH
// e.g. `files write notes.txt hello cat notes.txt`. A failing command prints
// `files: COMMAND PATH: ENAME` to standard error and exits with 1.
#include "ferry.h"

typedef unsigned long size;
typedef unsigned long long u64;
typedef struct { const char *base; size length; } ciovec;
typedef struct { char *base; size length; } iovec;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))
WASI("fd_write") int fd_write(int fd, const ciovec *iovs, int count, size *written);
WASI("fd_read") int fd_read(int fd, const iovec *iovs, int count, size *read);
WASI("fd_close") int fd_close(int fd);
WASI("fd_readdir") int fd_readdir(int fd, void *buffer, size length, u64 cookie, size *used);
WASI("path_open") int path_open(int fd, int lookup, const char *path, size length, int oflags,
                                u64 rights, u64 inheriting, int fdflags, int *opened);
WASI("path_unlink_file") int path_unlink_file(int fd, const char *path, size length);
WASI("path_create_directory") int path_create_directory(int fd, const char *path, size length);
WASI("path_remove_directory") int path_remove_directory(int fd, const char *path, size length);
WASI("path_rename") int path_rename(int fd, const char *from, size from_length, int to_fd, const char *to,
                                    size to_length);
WASI("path_symlink") int path_symlink(const char *target, size target_length, int fd, const char *path,
                                      size length);
WASI("args_sizes_get") int args_sizes_get(size *count, size *bytes);
WASI("args_get") int args_get(char **argv, char *buffer);
WASI("proc_exit") _Noreturn void proc_exit(int code);

enum { DIR_FD = 3, FOLLOW = 1, CREAT = 1, DIRECTORY = 2, TRUNC = 8, APPEND = 1 };
static const u64 READ = 1 << 1, WRITE = 1 << 6, READDIR = 1 << 14;

static void put(int fd, const char *text, int length) {
    ciovec iov = {text, (size)length};
    size written;
    fd_write(fd, &iov, 1, &written);
}
#define PUTS(fd, text) put(fd, text, ferry_strlen(text))

static const char *errno_name(int error) {
    switch (error) {
    case 2: return "EACCES";
    case 8: return "EBADF";
    case 20: return "EEXIST";
    case 28: return "EINVAL";
    case 31: return "EISDIR";
    case 32: return "ELOOP";
    case 44: return "ENOENT";
    case 54: return "ENOTDIR";
    case 55: return "ENOTEMPTY";
    case 63: return "EPERM";
    case 69: return "EROFS";
    case 75: return "EXDEV";
    case 76: return "ENOTCAPABLE";
    default: return "another error";
    }
}

static void check(int error, const char *command, const char *path) {
    if (error == 0) return;
    PUTS(2, "files: ");
    PUTS(2, command);
    PUTS(2, " ");
    PUTS(2, path);
    PUTS(2, ": ");
    PUTS(2, errno_name(error));
    PUTS(2, "\n");
    proc_exit(1);
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static char buffer[65536];

static void write_file(const char *command, const char *path, const char *text, int oflags, int fdflags) {
    int fd;
    check(path_open(DIR_FD, FOLLOW, path, ferry_strlen(path), oflags, WRITE, 0, fdflags, &fd), command, path);
    ciovec iov = {text, (size)ferry_strlen(text)};
    size written;
    check(fd_write(fd, &iov, 1, &written), command, path);
    fd_close(fd);
}

static void cat(const char *path) {
    int fd;
    check(path_open(DIR_FD, FOLLOW, path, ferry_strlen(path), 0, READ, 0, 0, &fd), "cat", path);
    for (;;) {
        iovec iov = {buffer, sizeof buffer};
        size count;
        check(fd_read(fd, &iov, 1, &count), "cat", path);
        if (count == 0) break;
        put(1, buffer, (int)count);
    }
    fd_close(fd);
}

static void ls(const char *path) {
    int fd;
    check(path_open(DIR_FD, FOLLOW, path, ferry_strlen(path), DIRECTORY, READDIR, 0, 0, &fd), "ls", path);
    u64 cookie = 0;
    for (;;) {
        size used;
        check(fd_readdir(fd, buffer, sizeof buffer, cookie, &used), "ls", path);
        size at = 0;
        int entries = 0;
        // Each entry: next cookie (8), inode (8), name length (4), type (1), padding (3), name.
        while (at + 24 <= used) {
            u64 next = *(u64 *)(buffer + at);
            unsigned int length = *(unsigned int *)(buffer + at + 16);
            if (at + 24 + length > used) break;
            const char *name = buffer + at + 24;
            if (!(length == 1 && name[0] == '.') && !(length == 2 && name[0] == '.' && name[1] == '.')) {
                put(1, name, (int)length);
                put(1, "\n", 1);
            }
            cookie = next;
            at += 24 + length;
            entries++;
        }
        if (used < sizeof buffer || entries == 0) break;
    }
    fd_close(fd);
}

static char *argv[64];
static char args[8192];

void _start(void) {
    size count, bytes;
    if (args_sizes_get(&count, &bytes) != 0 || count > 64 || bytes > sizeof args) proc_exit(2);
    args_get(argv, args);
    for (size i = 1; i < count;) {
        const char *command = argv[i], *a = i + 1 < count ? argv[i + 1] : 0, *b = i + 2 < count ? argv[i + 2] : 0;
        int two = same(command, "write") || same(command, "append") || same(command, "mv") || same(command, "ln");
        if (!a || (two && !b)) {
            PUTS(2, "files: missing arguments for ");
            PUTS(2, command);
            PUTS(2, "\n");
            proc_exit(2);
        }
        if (same(command, "write")) write_file(command, a, b, CREAT | TRUNC, 0);
        else if (same(command, "append")) write_file(command, a, b, CREAT, APPEND);
        else if (same(command, "cat")) cat(a);
        else if (same(command, "ls")) ls(a);
        else if (same(command, "rm")) check(path_unlink_file(DIR_FD, a, ferry_strlen(a)), command, a);
        else if (same(command, "mkdir")) check(path_create_directory(DIR_FD, a, ferry_strlen(a)), command, a);
        else if (same(command, "rmdir")) check(path_remove_directory(DIR_FD, a, ferry_strlen(a)), command, a);
        else if (same(command, "mv"))
            check(path_rename(DIR_FD, a, ferry_strlen(a), DIR_FD, b, ferry_strlen(b)), command, a);
        else if (same(command, "ln")) check(path_symlink(a, ferry_strlen(a), DIR_FD, b, ferry_strlen(b)), command, b);
        else {
            PUTS(2, "files: unknown command ");
            PUTS(2, command);
            PUTS(2, "\n");
            proc_exit(2);
        }
        i += two ? 3 : 2;
    }
    proc_exit(0);
}
