#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>
#include <arpa/inet.h>
#include <linux/close_range.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/un.h>

int ferry_open_beneath(int dirfd, const char *path, int flags) {
    struct open_how how = {0};
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int ferry_open_beneath_without_links(int dirfd, const char *path, int flags) {
    struct open_how how = {0};
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int ferry_open_in_layer(int dirfd, const char *path, int flags, unsigned int mode) {
    struct open_how how = {0};
    how.flags = (unsigned long long)(flags | O_CLOEXEC | O_NOFOLLOW);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path[0] ? path : ".", &how, sizeof(how));
}

int ferry_timer_create(void) {
    return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
}

int ferry_timer_arm(int timer, long nanoseconds) {
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = nanoseconds / 1000000000L;
    spec.it_value.tv_nsec = nanoseconds % 1000000000L;
    return timerfd_settime(timer, 0, &spec, NULL);
}

ssize_t ferry_pread_nowait(int fd, void *buf, size_t len, off_t offset) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    ssize_t n = preadv2(fd, &iov, 1, offset, RWF_NOWAIT);
    if (n < 0 && errno == EAGAIN) {
        // Ask the kernel to start reading without waiting for it; the caller retries later.
        posix_fadvise(fd, offset, (off_t)len, POSIX_FADV_WILLNEED);
        errno = EAGAIN;
    }
    return n;
}

#ifndef __NR_cachestat
#define __NR_cachestat 451  /* the same on every architecture */
#endif

struct ferry_cachestat_range { uint64_t off, len; };
struct ferry_cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

int ferry_range_cached(int fd, off_t offset, size_t len) {
    static long page;
    if (page == 0) page = sysconf(_SC_PAGESIZE);
    if (len == 0) return 1;
    struct ferry_cachestat_range range = {.off = (uint64_t)offset, .len = len};
    struct ferry_cachestat stat = {0};
    if (syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) return -1;
    uint64_t pages = ((uint64_t)offset + len - 1) / page - (uint64_t)offset / page + 1;
    return stat.nr_cache >= pages;
}

ssize_t ferry_send_head_and_file(
    int sock, const void *head, size_t head_len, int fd, off_t offset, size_t len, int *file_ended) {
    *file_ended = 0;
    ssize_t sent = 0;
    if (head_len > 0) {
        sent = send(sock, head, head_len, MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) return 0;
        if ((size_t)sent < head_len) return sent;
    }
    off_t position = offset;
    ssize_t body = sendfile(sock, fd, &position, len);
    if (body == 0 && len > 0) *file_ended = 1;
    return body < 0 ? sent : sent + body;
}

int ferry_recv_urgent(int fd, unsigned char *byte) {
    return (int)recv(fd, byte, 1, MSG_OOB | MSG_DONTWAIT);
}

int ferry_send_urgent(int fd, unsigned char byte) {
    return (int)send(fd, &byte, 1, MSG_OOB | MSG_NOSIGNAL);
}

int ferry_accept_nonblocking(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

long ferry_find_crlfcrlf(const void *bytes, size_t count) {
    // From one LF to the next, looking back from each: a head is a dozen short lines, and
    // memchr's vector search of each beats memmem's set-up for a general search (a third of
    // the instructions, measured under callgrind).
    const unsigned char *start = bytes, *at = start, *end = start + count;
    while (at < end) {
        const unsigned char *lf = memchr(at, '\n', (size_t)(end - at));
        if (lf == NULL) return -1;
        if (lf - start >= 3 && lf[-1] == '\r' && lf[-2] == '\n' && lf[-3] == '\r') return (long)(lf - 3 - start);
        at = lf + 1;
    }
    return -1;
}

void ferry_set_thread_name(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

int ferry_current_thread_id(void) {
    return (int)syscall(SYS_gettid);
}

int ferry_route_urgent_signal(int fd, int thread_id) {
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = thread_id};
    return fcntl(fd, F_SETOWN_EX, &owner);
}

int ferry_urgent_signalfd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGURG);
    // Blocked in this thread only: SIGURG is routed here, and read from the signalfd instead.
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int ferry_drain_signalfd(int fd) {
    struct signalfd_siginfo info;
    int count = 0;
    while (read(fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) count++;
    return count;
}

int ferry_spawn(const char *path, char *const argv[], char *const envp[], int fd, int uid, int gid, int *pid) {
    // vfork, as posix_spawn does: the child borrows our memory until it execs, so starting a
    // program does not copy the page tables of a large multithreaded server (fork's cost grows
    // with them). Signals stay blocked until the child has reset every handler to its default,
    // so none of ours can run in the child.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    volatile int childError = 0;
    pid_t child = vfork();
    if (child == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) goto failed;
        // Whatever else this process has open (a library's descriptor opened without O_CLOEXEC,
        // another client's socket) must not leak into the program: mark it all close-on-exec.
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        if (uid != -1) {
            gid_t group = (gid_t)gid;
            if (setgroups(1, &group) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0) goto failed;
        }
        execve(path, argv, envp);
    failed:
        childError = errno;
        _exit(127);
    }
    int forkError = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (child < 0) {
        errno = forkError;
        return -1;
    }
    if (childError != 0) {
        waitpid(child, NULL, 0);
        errno = childError;
        return -1;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (pidfd < 0) {
        int error = errno;
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        errno = error;
        return -1;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    *pid = (int)child;
    return pidfd;
}

int ferry_reap(int pid) {
    int status = 0;
    pid_t got;
    do {
        got = waitpid(pid, &status, WNOHANG);
    } while (got < 0 && errno == EINTR);
    return got == pid ? status : -1;
}

int ferry_accept_blocking(int fd, struct sockaddr_storage *address) {
    socklen_t length = sizeof *address;
    return accept4(fd, (struct sockaddr *)address, &length, SOCK_CLOEXEC);
}

/// CRC-32 tables for slicing by 8: table[k][b] is the CRC of byte b followed by k zero bytes.
static uint32_t crc32_tables[8][256];
static pthread_once_t crc32_once = PTHREAD_ONCE_INIT;

static void crc32_make_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t value = b;
        for (int i = 0; i < 8; i++) value = (value & 1) ? 0xEDB88320u ^ (value >> 1) : value >> 1;
        crc32_tables[0][b] = value;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            crc32_tables[k][b] = crc32_tables[0][crc32_tables[k - 1][b] & 0xFF] ^ (crc32_tables[k - 1][b] >> 8);
}

uint32_t ferry_crc32(uint32_t crc, const void *data, size_t length) {
    pthread_once(&crc32_once, crc32_make_tables);
    const unsigned char *bytes = data;
    crc = ~crc;
    while (length >= 8) {
        uint32_t low, high;
        memcpy(&low, bytes, 4);
        memcpy(&high, bytes + 4, 4);
        low ^= crc;  // little-endian hosts only, as every Linux Ferry runs on
        crc = crc32_tables[7][low & 0xFF] ^ crc32_tables[6][(low >> 8) & 0xFF] ^ crc32_tables[5][(low >> 16) & 0xFF] ^
              crc32_tables[4][low >> 24] ^ crc32_tables[3][high & 0xFF] ^ crc32_tables[2][(high >> 8) & 0xFF] ^
              crc32_tables[1][(high >> 16) & 0xFF] ^ crc32_tables[0][high >> 24];
        bytes += 8;
        length -= 8;
    }
    while (length--) crc = crc32_tables[0][(crc ^ *bytes++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

ssize_t ferry_splice(int from, int to, size_t length) {
    return splice(from, NULL, to, NULL, length, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
}

int ferry_pipe_nonblocking(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

int ferry_connect_nonblocking(const struct sockaddr *address, socklen_t length) {
    int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, address, length) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int ferry_socket_error(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return errno;
    return error;
}

static int ferry_unix_address(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(address->sun_path, path);
    return 0;
}

int ferry_unix_listen(const char *path, int backlog) {
    struct sockaddr_un address;
    if (ferry_unix_address(path, &address) < 0) return -1;
    struct stat existing;
    if (lstat(path, &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) { errno = EEXIST; return -1; }
        unlink(path);
    }
    // Bound inside a directory only the owner can enter, made 0600 there, then moved into place:
    // no moment when another user could connect, and the process's umask is left alone (setting
    // it, even for a moment, sets it for every thread: a file another thread made meanwhile got
    // mode 0600).
    char directory[sizeof address.sun_path];
    const char *slash = strrchr(path, '/');
    size_t prefix = slash ? (size_t)(slash - path + 1) : 0;
    if (prefix + sizeof ".ferry-XXXXXX/s" > sizeof directory) { errno = ENAMETOOLONG; return -1; }
    memcpy(directory, path, prefix);
    strcpy(directory + prefix, ".ferry-XXXXXX");
    if (mkdtemp(directory) == NULL) return -1;
    struct sockaddr_un temporary = {.sun_family = AF_UNIX};
    snprintf(temporary.sun_path, sizeof temporary.sun_path, "%s/s", directory);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int failed = fd < 0 || bind(fd, (struct sockaddr *)&temporary, sizeof temporary) < 0 ||
                 chmod(temporary.sun_path, 0600) < 0 || rename(temporary.sun_path, path) < 0 ||
                 listen(fd, backlog) < 0;
    int saved = errno;
    unlink(temporary.sun_path);
    rmdir(directory);
    if (failed) {
        if (fd >= 0) close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int ferry_unix_connect(const char *path) {
    struct sockaddr_un address;
    if (ferry_unix_address(path, &address) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int ferry_send_descriptor(int channel, int fd) {
    char byte = 'F';
    struct iovec data = {.iov_base = &byte, .iov_len = 1};
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {0};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    ssize_t sent;
    do { sent = sendmsg(channel, &message, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    return sent == 1 ? 0 : -1;
}

int ferry_receive_descriptor(int channel) {
    char byte;
    struct iovec data = {.iov_base = &byte, .iov_len = 1};
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr message = {0};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    ssize_t received;
    do { received = recvmsg(channel, &message, MSG_CMSG_CLOEXEC); } while (received < 0 && errno == EINTR);
    if (received == 0) return -2;
    if (received < 0) return -1;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (header == NULL || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS
        || header->cmsg_len != CMSG_LEN(sizeof(int))) {
        errno = EPROTO;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof(int));
    return fd;
}
