// Guest memory pages, tracked and filled by the kernel: userfaultfd's asynchronous
// write-protection with PAGEMAP_SCAN (Linux 6.7) for the pages a running guest writes, and
// userfaultfd's missing mode with UFFDIO_COPY for pages that arrive after the guest resumed.
//
// The C library's headers may predate these, so the kernel's values are written out here;
// they are part of the kernel's stable interface (include/uapi/linux/userfaultfd.h, fs.h).

#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FERRY_UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define FERRY_UFFD_FEATURE_WP_ASYNC (1ULL << 15)

struct ferry_page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};

struct ferry_pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};

#define FERRY_PAGEMAP_SCAN _IOWR('f', 16, struct ferry_pm_scan_arg)
#define FERRY_PM_SCAN_WP_MATCHING (1ULL << 0)
#define FERRY_PM_SCAN_CHECK_WPASYNC (1ULL << 1)
#define FERRY_PAGE_IS_WRITTEN (1ULL << 1)

static void say(char *reason, size_t size, const char *what) {
    if (reason && size) snprintf(reason, size, "%s: %s", what, strerror(errno));
}

static int open_userfaultfd(uint64_t features, char *reason, size_t size) {
    // Kernel-mode faults too where we may (a read(2) into a missing page of the guest must wait
    // for it, not fail with EFAULT); else user-mode faults only, which an unprivileged process
    // may ask for where vm.unprivileged_userfaultfd is 0.
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0) {
        say(reason, size, "userfaultfd");
        return -1;
    }
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        say(reason, size, "userfaultfd's UFFDIO_API");
        close(fd);
        return -1;
    }
    if ((api.features & features) != features) {
        snprintf(reason, size, "this kernel's userfaultfd lacks features %#llx",
                 (unsigned long long)(features & ~api.features));
        close(fd);
        return -1;
    }
    return fd;
}

int ferry_written_pages_open(void *base, size_t length, char *reason, size_t size) {
    int fd = open_userfaultfd(FERRY_UFFD_FEATURE_WP_ASYNC | FERRY_UFFD_FEATURE_WP_UNPOPULATED, reason, size);
    if (fd < 0) return -1;
    struct uffdio_register registration = {
        .range = {.start = (uint64_t)base, .len = length},
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &registration) != 0) {
        say(reason, size, "registering the guest's memory for write-protection");
        close(fd);
        return -1;
    }
    return fd;
}

int ferry_written_pages_scan(void *start, void *end, uint64_t *ranges, size_t capacity, uint64_t *walk_end) {
    static int pagemap = -1;
    if (pagemap < 0) {
        int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        // Another thread may have opened it meanwhile: keep one.
        if (!__sync_bool_compare_and_swap(&pagemap, -1, fd)) close(fd);
    }
    struct ferry_page_region regions[256];
    size_t count = capacity < 256 ? capacity : 256;
    struct ferry_pm_scan_arg arg = {
        .size = sizeof(arg),
        .flags = FERRY_PM_SCAN_WP_MATCHING | FERRY_PM_SCAN_CHECK_WPASYNC,
        .start = (uint64_t)start,
        .end = (uint64_t)end,
        .vec = (uint64_t)regions,
        .vec_len = count,
        .category_mask = FERRY_PAGE_IS_WRITTEN,
        .return_mask = FERRY_PAGE_IS_WRITTEN,
    };
    long found = ioctl(pagemap, FERRY_PAGEMAP_SCAN, &arg);
    if (found < 0) return -1;
    for (long index = 0; index < found; index++) {
        ranges[2 * index] = regions[index].start;
        ranges[2 * index + 1] = regions[index].end;
    }
    *walk_end = arg.walk_end;
    return (int)found;
}

int ferry_missing_pages_open(void *base, size_t length, char *reason, size_t size) {
    int fd = open_userfaultfd(0, reason, size);
    if (fd < 0) return -1;
    struct uffdio_register registration = {
        .range = {.start = (uint64_t)base, .len = length},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &registration) != 0) {
        say(reason, size, "registering the guest's memory for missing pages");
        close(fd);
        return -1;
    }
    return fd;
}

int64_t ferry_missing_page_next(int fd, int timeout_ms) {
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    int polled = poll(&ready, 1, timeout_ms);
    if (polled <= 0) return polled == 0 ? -2 : -1;
    struct uffd_msg message;
    ssize_t got = read(fd, &message, sizeof(message));
    if (got != sizeof(message)) return (got < 0 && errno == EAGAIN) ? -2 : -1;
    if (message.event != UFFD_EVENT_PAGEFAULT) return -2;
    return (int64_t)message.arg.pagefault.address;
}

int ferry_missing_pages_fill(int fd, void *at, const void *bytes, size_t length) {
    size_t done = 0;
    int existed = 0;
    while (done < length) {
        struct uffdio_copy copy = {
            .dst = (uint64_t)at + done, .src = (uint64_t)bytes + done, .len = length - done, .mode = 0};
        if (ioctl(fd, UFFDIO_COPY, &copy) == 0) return existed;
        if (copy.copy > 0) {
            // Part of it went in before the kernel stopped (EAGAIN): go on from there.
            done += (size_t)copy.copy;
        } else if (errno == EEXIST) {
            // This page is there already: it stays as it is.
            existed = 1;
            done += 4096;
        } else if (errno != EAGAIN) {
            return -1;
        }
    }
    return existed;
}
