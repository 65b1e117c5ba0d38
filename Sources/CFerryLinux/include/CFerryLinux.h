#ifndef C_FERRY_LINUX_H
#define C_FERRY_LINUX_H

#include <malloc.h>  // malloc_trim: an idle l7 switch gives its buffers back
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/resource.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC (Glibc hides accept4 from Swift without _GNU_SOURCE).
/// posix_spawn of `path`: the child's standard input, output and error are `in`, `out` and `err`
/// (-1: this process's own), every other descriptor is closed in it, its signal mask is empty and
/// SIGPIPE, SIGINT, SIGTERM and SIGHUP are back to their defaults. 0, or an errno value.
int ferry_spawn_child(const char *path, char *const argv[], char *const envp[], int in, int out, int err, pid_t *pid);

int ferry_accept_nonblocking(int fd);

/// Opens `path` relative to `dirfd` so that resolution can never leave `dirfd`: `..` past the top,
/// absolute paths and symlinks that point outside all fail (openat2 with RESOLVE_BENEATH).
/// Returns the descriptor, or -1 with errno set (EXDEV for an escape attempt).
int ferry_open_beneath(int dirfd, const char *path, int flags);
/// As ferry_open_beneath, but fails with ELOOP on any symbolic link on the way.
int ferry_open_beneath_without_links(int dirfd, const char *path, int flags);

/// Linux values Glibc shows Swift only under _GNU_SOURCE.
static const int FERRY_O_PATH = 010000000;
static const long FERRY_UTIME_NOW = (1l << 30) - 1l;
static const long FERRY_UTIME_OMIT = (1l << 30) - 2l;

/// Opens `path` in one layer of a guest's layered directory, whose symlinks Ferry has already
/// resolved itself: any symlink met on the way fails (ELOOP), as does leaving `dirfd` (EXDEV).
/// An empty path opens `dirfd`'s directory. Returns the descriptor, or -1 with errno set.
int ferry_open_in_layer(int dirfd, const char *path, int flags, unsigned int mode);

/// CRC-32 (IEEE 802.3, as zlib's crc32) of `length` bytes, continuing from `crc` (0 to start);
/// sliced by 8 bytes, some 8 times faster than a byte at a time.
uint32_t ferry_crc32(uint32_t crc, const void *data, size_t length);

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (0 to start), with SSE 4.2's
/// crc32 instruction where the CPU has it.
uint32_t ferry_crc32c(uint32_t crc, const void *data, size_t length);

/// Moves up to `length` bytes between a socket and a pipe inside the kernel, without blocking
/// (splice with SPLICE_F_NONBLOCK | SPLICE_F_MOVE). Returns the count, 0 at end of input, or -1.
ssize_t ferry_splice(int from, int to, size_t length);

/// pipe2 with O_NONBLOCK | O_CLOEXEC.
int ferry_pipe_nonblocking(int fds[2]);

/// Starts a TCP connection without blocking (TCP_NODELAY set): the descriptor, writable once the
/// connection is made or failed (then see ferry_socket_error); -1 with errno when it cannot start.
int ferry_connect_nonblocking(const struct sockaddr *address, socklen_t length);

/// The pending error of a socket (SO_ERROR): 0 when a connection was made.
int ferry_socket_error(int fd);

/// A Unix stream socket listening at `path` (created 0600; a stale socket file there is replaced):
/// the descriptor, or -1 with errno (EEXIST when `path` is something other than a socket).
int ferry_unix_listen(const char *path, int backlog);

/// A blocking Unix stream socket connected to `path`, or -1 with errno.
int ferry_unix_connect(const char *path);

/// Sends the descriptor `fd` over the Unix socket `channel` (SCM_RIGHTS, with one byte of data):
/// 0, or -1 with errno. The sender still holds its copy and closes it itself.
int ferry_send_descriptor(int channel, int fd);

/// Receives one descriptor sent by ferry_send_descriptor (close-on-exec): the descriptor, -2 when
/// the sender hung up, or -1 with errno.
int ferry_receive_descriptor(int channel);

/// A non-blocking, close-on-exec monotonic timerfd for an epoll loop, or -1 with errno.
int ferry_timer_create(void);

/// Arms `timer` to fire once, `nanoseconds` from now (0 disarms it). 0, or -1 with errno.
int ferry_timer_arm(int timer, long nanoseconds);

/// Reads like pread, but fails with EAGAIN instead of waiting when the data is not in the page
/// cache (preadv2 with RWF_NOWAIT), and starts readahead for it in that case.
ssize_t ferry_pread_nowait(int fd, void *buf, size_t len, off_t offset);

/// Whether every page of the file's bytes [offset, offset + len) is in the page cache (cachestat,
/// Linux 6.5): 1 if so; 0 if not (ferry_pread_nowait then starts readahead); -1 with errno
/// (ENOSYS on an older kernel) when it cannot tell.
int ferry_range_cached(int fd, off_t offset, size_t len);

/// Sends a response's head (when head_len > 0; with MSG_MORE, so it leaves with the body) and then
/// up to `len` bytes of `fd` from `offset` by sendfile, on a non-blocking socket. sendfile has no
/// MSG_NOSIGNAL: the process must ignore SIGPIPE, as the file server does. Returns the bytes sent,
/// head first; 0 when none (an error then shows on the caller's next write). Sets *file_ended
/// when sendfile found the file ended before `offset + len`.
ssize_t ferry_send_head_and_file(
    int sock, const void *head, size_t head_len, int fd, off_t offset, size_t len, int *file_ended);

/// Receives one byte of TCP urgent data, without blocking. Returns 1, 0 or -1 with errno.
int ferry_recv_urgent(int fd, unsigned char *byte);

/// Sends `byte` as TCP urgent data (MSG_OOB).
int ferry_send_urgent(int fd, unsigned char byte);

/// The offset of the first CR LF CR LF in `bytes`, or -1.
long ferry_find_crlfcrlf(const void *bytes, size_t count);

/// Names the calling thread (at most 15 bytes show), so `top -H` and debuggers say what it is.
void ferry_set_thread_name(const char *name);

/// The kernel id of the calling thread (gettid).
int ferry_current_thread_id(void);

/// Asks the kernel to send SIGURG for socket `fd` to thread `thread_id` (F_SETOWN_EX, F_OWNER_TID).
int ferry_route_urgent_signal(int fd, int thread_id);

/// Blocks SIGURG in the calling thread and returns a non-blocking signalfd that reads it.
int ferry_urgent_signalfd(void);

/// Reads every pending signal from a signalfd; returns how many there were.
int ferry_drain_signalfd(int fd);

/// accept4(2) with SOCK_CLOEXEC only: the connection stays blocking, as a program started on it
/// (inetd style) expects; the peer's address goes to `address`.
int ferry_accept_blocking(int fd, struct sockaddr_storage *address);

/// Starts `path` with `argv` and `envp`, its standard input, output and error all `fd` (the
/// inetd convention), every signal back to its default disposition and unblocked, and, when `uid`
/// is not -1, running as `uid`/`gid` with no supplementary groups. Every other descriptor of ours
/// is closed on exec, whether or not it was opened with O_CLOEXEC.
///
/// Returns a pidfd for the child (poll it: readable once the child exits) and stores its pid in
/// `pid`; or -1 with errno set, including the child's own errno when exec failed.
int ferry_spawn(const char *path, char *const argv[], char *const envp[], int fd, int uid, int gid, int *pid);

/// Reaps the exited child `pid`; returns its wait status, or -1.
int ferry_reap(int pid);

/// Whether Binaryen's library (libbinaryen.so, Debian's binaryen package) can be loaded: 1, or 0
/// with the loader's reason in `reason` (at least 256 bytes).
int ferry_binaryen_available(char *reason, size_t size);

/// Makes a module able to unwind and rewind its call stack at calls to the imports named in
/// `unwind_imports` (comma-separated `module.name`): Binaryen reads `module`, turns its defined
/// function `stub_index` into the import `ferry.safepoint`, runs Asyncify and optimizes (-O2).
/// Binaryen's settings are global, so calls are serialized. Binaryen exits the process on a
/// module it cannot parse: give it only modules that WasmKit validated and Ferry's instrumenter
/// screened. Returns the new module (free it with free()) and its size in `out_size`, or NULL
/// with the reason in `reason`.
unsigned char *ferry_binaryen_asyncify(
    const unsigned char *module, size_t size, unsigned int stub_index, const char *unwind_imports,
    size_t *out_size, char *reason, size_t reason_size);

/// Tracks the pages of `length` bytes at `base` (page-aligned) that are written, with
/// userfaultfd's asynchronous write-protection: no fault reaches us, the kernel only marks the
/// page. Returns the userfaultfd (close it to stop tracking), or -1 with the reason in `reason`.
/// Pages not yet write-protected count as written: the first scan reports and protects them.
int ferry_written_pages_open(void *base, size_t length, char *reason, size_t size);

/// The runs of pages in [start, end) written since they were last scanned, write-protecting them
/// again in the same step (PAGEMAP_SCAN with PM_SCAN_WP_MATCHING). Stores at most `capacity`
/// (at most 256) runs as start/end address pairs in `ranges`, and in `walk_end` where the scan
/// stopped (below `end` when `ranges` filled up: scan again from there). Returns the count of
/// runs, or -1 with errno.
int ferry_written_pages_scan(void *start, void *end, uint64_t *ranges, size_t capacity, uint64_t *walk_end);

/// Registers `length` bytes at `base` (page-aligned, never touched) for userfaultfd's missing
/// mode: a thread touching a page there waits until it is filled (ferry_missing_pages_fill).
/// Returns the userfaultfd, or -1 with the reason in `reason`.
int ferry_missing_pages_open(void *base, size_t length, char *reason, size_t size);

/// The address of the next page a thread is waiting for, -2 when none came within
/// `timeout_ms`, or -1 with errno.
int64_t ferry_missing_page_next(int fd, int timeout_ms);

/// Fills `length` bytes (whole pages) at `at` with `bytes` and wakes the threads waiting there
/// (UFFDIO_COPY), leaving any page that is there already as it is. Returns 0 when it filled every
/// page, 1 when some were there, or -1 with errno.
int ferry_missing_pages_fill(int fd, void *at, const void *bytes, size_t length);


/// One mount inside a container, at `destination` (absolute, inside its root).
struct ferry_container_mount {
    const char *type;
    const char *source;
    const char *destination;
    /// MS_NOSUID, MS_NODEV, MS_NOEXEC, ... (MS_RDONLY goes in `readonly`).
    unsigned long flags;
    /// File system data (`mode=755,size=65536k`), or NULL.
    const char *data;
    int bind;
    int recursive;
    int readonly;
    /// A bind mount of a file: its mount point is made as an empty file.
    int source_is_file;
};

/// Everything the child of `ferry container run` does between clone and exec, decided by the parent.
struct ferry_container_launch {
    /// CLONE_NEW* flags.
    int clone_flags;
    const char *hostname;
    /// The directory that becomes the container's root.
    const char *root;
    /// `lowerdir=...,upperdir=...,workdir=...` for an overlay root; NULL to bind `bind_root` there.
    const char *overlay_options;
    const char *bind_root;
    int readonly_root;
    const struct ferry_container_mount *mounts;
    int mount_count;
    /// Binds /dev/null, zero, full, random, urandom and tty, and the usual /dev symlinks.
    int populate_dev;
    const char *const *masked_paths;
    int masked_count;
    const char *const *readonly_paths;
    int readonly_count;
    const char *cwd;
    char *const *argv;
    char *const *envp;
    /// The container's PATH, for a program named without a directory.
    const char *search_path;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    /// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
    int cap_last;
    int no_new_privileges;
    /// Bit 0: install Ferry's filter; bit 1: allow mount calls; bit 2: allow ptrace.
    int seccomp;
    int run_init;
    const int *rlimit_resources;
    const struct rlimit *rlimits;
    int rlimit_count;
    /// Brings loopback up; with `interface`, also gives it `address`/`netmask` (network byte
    /// order) and a default route via `gateway`.
    int configure_network;
    const char *interface;
    uint32_t address, netmask, gateway;
    /// The program's standard input, output and error; -1 keeps ours.
    int stdin_fd, stdout_fd, stderr_fd;
};

/// Why a container's child stopped before its program started: the step and its errno.
struct ferry_container_failure {
    int error;
    char step[512];
};

/// Clones a child in new namespaces (`launch->clone_flags`) that waits for one byte on `*go_fd`
/// (the parent first places it in cgroups, maps its ids, gives it a network), then sets up its
/// root and execs the program. If a step fails the child writes a ferry_container_failure to
/// `*report_fd` and exits 127; at a successful exec `*report_fd` reads end of file. Returns the
/// child's pid, or -1 with errno.
pid_t ferry_container_clone(const struct ferry_container_launch *launch, int *go_fd, int *report_fd);

/// pidfd_open(2): a descriptor that polls readable once process `pid` has ended, or -1.
int ferry_pidfd_open(pid_t pid);

#endif
