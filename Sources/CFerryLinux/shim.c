#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <string.h>
#include <unistd.h>

int ferry_open_beneath(int dirfd, const char *path, int flags) {
    struct open_how how = {0};
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
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
    const char *found = memmem(bytes, count, "\r\n\r\n", 4);
    return found ? (long)(found - (const char *)bytes) : -1;
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
