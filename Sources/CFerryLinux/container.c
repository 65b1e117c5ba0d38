// The child half of `ferry container run`: everything between clone(2) and execve(2), in C
// because a forked copy of a multithreaded Swift process may only make plain system calls. The
// Swift side (FerryContainer) decides everything beforehand and hands it over in one struct;
// the child reports the first step that fails, with its errno, over a close-on-exec pipe, so
// the parent learns at once whether the program started (EOF) or why not.
#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <net/route.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct ferry_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/// Sends the failed step and errno to the parent and ends the child.
static void fail(int report, const char *step, const char *subject) {
    struct ferry_container_failure failure;
    memset(&failure, 0, sizeof failure);
    failure.error = errno;
    snprintf(failure.step, sizeof failure.step, "%s%s%s", step, subject ? " " : "", subject ? subject : "");
    ssize_t ignored = write(report, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

/// root + "/" + path, into `out`.
static const char *join(char *out, size_t size, const char *root, const char *path) {
    while (*path == '/') path++;
    snprintf(out, size, "%s/%s", root, path);
    return out;
}

/// Makes `destination` (absolute, inside the root at `rootfd`) exist, as a directory or an empty
/// file, one component at a time, refusing any symlink on the way: nothing a root file system
/// holds can point a mount outside it. Returns 0, or -1 with errno (ELOOP for a symlink).
static int make_target(int rootfd, const char *destination, int is_file) {
    char path[4096];
    snprintf(path, sizeof path, "%s", destination);
    int dir = dup(rootfd);
    if (dir < 0) return -1;
    char *saveptr = NULL;
    char *component = strtok_r(path, "/", &saveptr);
    while (component) {
        char *next = strtok_r(NULL, "/", &saveptr);
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_PATH | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        int fd = (int)syscall(SYS_openat2, dir, component, &how, sizeof how);
        if (fd < 0 && errno == ENOENT) {
            if (next == NULL && is_file) {
                int created = openat(dir, component, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (created >= 0) close(created);
            } else {
                mkdirat(dir, component, 0755);
            }
            fd = (int)syscall(SYS_openat2, dir, component, &how, sizeof how);
        }
        close(dir);
        if (fd < 0) return -1;
        dir = fd;
        component = next;
    }
    close(dir);
    return 0;
}

static int readonly_recursive(const char *path) {
    struct ferry_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr);
}

static void do_mount(int report, int rootfd, const char *root, const struct ferry_container_mount *m) {
    char target[4096];
    join(target, sizeof target, root, m->destination);
    if (make_target(rootfd, m->destination, m->source_is_file) != 0) fail(report, "prepare mount point", m->destination);
    if (m->bind) {
        if (mount(m->source, target, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL) != 0)
            fail(report, "bind mount", m->destination);
        unsigned long flags = m->flags | (m->readonly ? MS_RDONLY : 0);
        if (flags && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags, NULL) != 0)
            fail(report, "remount bind", m->destination);
        if (m->readonly && m->recursive && readonly_recursive(target) != 0)
            fail(report, "make read-only", m->destination);
    } else {
        unsigned long flags = m->flags | (m->readonly ? MS_RDONLY : 0);
        if (mount(m->source, target, m->type, flags, m->data) != 0) fail(report, "mount", m->destination);
    }
}

/// The device nodes a program expects in /dev, bound from the host's (a container may not mknod
/// them in a user namespace, and binding keeps their owner and mode), and the usual symlinks.
static void populate_dev(int report, int rootfd, const char *root) {
    static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
    char target[4096], source[64], name[64];
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        snprintf(name, sizeof name, "/dev/%s", devices[i]);
        snprintf(source, sizeof source, "/dev/%s", devices[i]);
        if (make_target(rootfd, name, 1) != 0) fail(report, "prepare device", name);
        if (mount(source, join(target, sizeof target, root, name), NULL, MS_BIND, NULL) != 0)
            fail(report, "bind device", name);
    }
    static const char *const links[][2] = {
        {"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"}, {"/proc/self/fd/1", "dev/stdout"},
        {"/proc/self/fd/2", "dev/stderr"}, {"pts/ptmx", "dev/ptmx"}, {"/proc/kcore", "dev/core"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        if (symlinkat(links[i][0], rootfd, links[i][1]) != 0 && errno != EEXIST) fail(report, "link", links[i][1]);
    }
}

static void mask_paths(int report, const char *const *paths, int count) {
    for (int i = 0; i < count; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) continue;
        int result = S_ISDIR(st.st_mode) ? mount("tmpfs", paths[i], "tmpfs", MS_RDONLY, "size=0")
                                         : mount("/dev/null", paths[i], NULL, MS_BIND, NULL);
        if (result != 0) fail(report, "mask", paths[i]);
    }
}

static void readonly_paths(int report, const char *const *paths, int count) {
    for (int i = 0; i < count; i++) {
        if (access(paths[i], F_OK) != 0) continue;
        if (mount(paths[i], paths[i], NULL, MS_BIND | MS_REC, NULL) != 0
            || mount(NULL, paths[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0
            || readonly_recursive(paths[i]) != 0)
            fail(report, "make read-only", paths[i]);
    }
}

/// Brings loopback up, and for a private network gives `interface` its address and a default
/// route through the host's end of the veth pair (classic ioctls: no netlink library needed).
static void configure_network(int report, const struct ferry_container_launch *launch) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) fail(report, "network socket", NULL);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) fail(report, "read flags of", "lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail(report, "bring up", "lo");
    if (launch->interface) {
        memset(&ifr, 0, sizeof ifr);
        strncpy(ifr.ifr_name, launch->interface, IFNAMSIZ - 1);
        struct sockaddr_in *in = (struct sockaddr_in *)&ifr.ifr_addr;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = launch->address;
        if (ioctl(s, SIOCSIFADDR, &ifr) != 0) fail(report, "set the address of", launch->interface);
        in->sin_addr.s_addr = launch->netmask;
        if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0) fail(report, "set the netmask of", launch->interface);
        if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) fail(report, "read flags of", launch->interface);
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail(report, "bring up", launch->interface);
        struct rtentry route;
        memset(&route, 0, sizeof route);
        ((struct sockaddr_in *)&route.rt_dst)->sin_family = AF_INET;
        ((struct sockaddr_in *)&route.rt_genmask)->sin_family = AF_INET;
        struct sockaddr_in *gateway = (struct sockaddr_in *)&route.rt_gateway;
        gateway->sin_family = AF_INET;
        gateway->sin_addr.s_addr = launch->gateway;
        route.rt_flags = RTF_UP | RTF_GATEWAY;
        if (ioctl(s, SIOCADDRT, &route) != 0) fail(report, "add the default route via", launch->interface);
    }
    close(s);
}

/// Ferry's seccomp filter: the calls that reach past a container fail with EPERM (Docker's
/// default profile denies the same ones). Mount calls stay allowed when the container holds
/// CAP_SYS_ADMIN (its mounts are then its own namespace's), ptrace when it holds CAP_SYS_PTRACE.
static void install_seccomp(int report, int allow_mount, int allow_ptrace) {
    static const int always[] = {
        SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module, SYS_delete_module,
        SYS_swapon, SYS_swapoff, SYS_reboot, SYS_acct, SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime,
        SYS_open_by_handle_at, SYS_bpf, SYS_perf_event_open, SYS_keyctl, SYS_add_key, SYS_request_key,
        SYS_lookup_dcookie, SYS_quotactl, SYS_iopl, SYS_ioperm, SYS_syslog, SYS_vhangup, SYS_uselib,
        SYS_userfaultfd, SYS_setns, SYS_unshare,
    };
    static const int mounts[] = {
        SYS_mount, SYS_umount2, SYS_pivot_root, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_move_mount,
        SYS_open_tree, SYS_mount_setattr,
    };
    static const int traces[] = {SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp};
    struct sock_filter filter[8 + 2 * 64];
    size_t n = 0;
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    // x32 calls (bit 30) would reach the same kernel code by other numbers.
    filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    int denied[64];
    size_t count = 0;
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) denied[count++] = always[i];
    if (!allow_mount)
        for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) denied[count++] = mounts[i];
    if (!allow_ptrace)
        for (size_t i = 0; i < sizeof traces / sizeof traces[0]; i++) denied[count++] = traces[i];
    for (size_t i = 0; i < count; i++) {
        filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], 0, 1);
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    }
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog program = {.len = (unsigned short)n, .filter = filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) fail(report, "install seccomp filter", NULL);
}

static void set_identity_and_capabilities(int report, const struct ferry_container_launch *launch) {
    for (int cap = 0; cap <= launch->cap_last; cap++) {
        if (!(launch->cap_bounding >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
            fail(report, "drop capability from the bounding set", NULL);
    }
    if (launch->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail(report, "set no_new_privs", NULL);
    if (launch->seccomp & 1) install_seccomp(report, launch->seccomp & 2, launch->seccomp & 4);
    // Keep the permitted set across a change to a non-root user: the bundle's sets say what it holds.
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail(report, "keep capabilities", NULL);
    // Raw calls: glibc's wrappers would signal every thread of the process we were cloned from,
    // threads this copy of it does not have.
    // A user namespace made without root denies setgroups: with no groups to set, that is fine.
    if (syscall(SYS_setgroups, (size_t)launch->group_count, launch->groups) != 0
        && !(errno == EPERM && launch->group_count == 0))
        fail(report, "set supplementary groups", NULL);
    if (syscall(SYS_setresgid, launch->gid, launch->gid, launch->gid) != 0) fail(report, "set group id", NULL);
    if (syscall(SYS_setresuid, launch->uid, launch->uid, launch->uid) != 0) fail(report, "set user id", NULL);
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int word = 0; word < 2; word++) {
        data[word].effective = (uint32_t)(launch->cap_effective >> (32 * word));
        data[word].permitted = (uint32_t)(launch->cap_permitted >> (32 * word));
        data[word].inheritable = (uint32_t)(launch->cap_inheritable >> (32 * word));
    }
    if (syscall(SYS_capset, &header, data) != 0) fail(report, "set capabilities", NULL);
    for (int cap = 0; cap <= launch->cap_last; cap++) {
        if ((launch->cap_ambient >> cap & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
            fail(report, "raise ambient capability", NULL);
    }
}

/// execve through the container's PATH when the program names no directory.
static void exec_program(int report, const struct ferry_container_launch *launch) {
    const char *program = launch->argv[0];
    if (strchr(program, '/')) {
        execve(program, launch->argv, launch->envp);
        fail(report, "start", program);
    }
    char candidate[4096];
    int error = ENOENT;
    for (const char *p = launch->search_path; p && *p;) {
        const char *end = strchr(p, ':');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        snprintf(candidate, sizeof candidate, "%.*s/%s", (int)length, length ? p : ".", program);
        execve(candidate, launch->argv, launch->envp);
        if (errno != ENOENT && errno != ENOTDIR) error = errno;
        p = end ? end + 1 : NULL;
    }
    errno = error;
    fail(report, "start", program);
}

/// PID 1 when the program should not be: forwards every signal to the program and reaps
/// orphans, and ends with the program's status once the program ends.
static void run_init(int report, const struct ferry_container_launch *launch) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    // A raw clone again: glibc's fork would run its handlers for threads that are not here.
    pid_t program = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0);
    if (program < 0) fail(report, "start the init's child", NULL);
    if (program == 0) {
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        exec_program(report, launch);
    }
    close(report);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(program, sig);
            continue;
        }
        int status;
        pid_t reaped;
        while ((reaped = waitpid(-1, &status, WNOHANG)) > 0) {
            if (reaped == program) _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    }
}

static void child(const struct ferry_container_launch *launch, int go, int report) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    // The container dies with the process that started it, whichever way that one ends.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail(report, "set the parent-death signal", NULL);
    char byte;
    // Wait until the parent has placed us in our cgroups, mapped our ids and given us a network.
    if (read(go, &byte, 1) != 1) _exit(127);
    close(go);
    if (launch->hostname && sethostname(launch->hostname, strlen(launch->hostname)) != 0)
        fail(report, "set hostname", launch->hostname);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(report, "make mounts private", NULL);
    const char *root = launch->root;
    if (launch->overlay_options) {
        if (mount("overlay", root, "overlay", 0, launch->overlay_options) != 0) fail(report, "mount overlay at", root);
    } else if (mount(launch->bind_root, root, NULL, MS_BIND | MS_REC, NULL) != 0) {
        fail(report, "bind root", launch->bind_root);
    }
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) fail(report, "open root", root);
    for (int i = 0; i < launch->mount_count; i++) do_mount(report, rootfd, root, &launch->mounts[i]);
    if (launch->populate_dev) populate_dev(report, rootfd, root);
    close(rootfd);
    if (chdir(root) != 0) fail(report, "enter root", root);
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) != 0) fail(report, "detach the old root", NULL);
    } else if (errno == EINVAL) {
        // The host's root is a ramfs (initramfs), which pivot_root cannot leave: move and chroot.
        if (mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0) fail(report, "move into root", root);
    } else {
        fail(report, "pivot_root into", root);
    }
    if (chdir("/") != 0) fail(report, "enter /", NULL);
    mask_paths(report, launch->masked_paths, launch->masked_count);
    readonly_paths(report, launch->readonly_paths, launch->readonly_count);
    if (launch->readonly_root && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0)
        fail(report, "make the root read-only", NULL);
    if (launch->configure_network) configure_network(report, launch);
    for (int i = 0; i < launch->rlimit_count; i++) {
        if (setrlimit((__rlimit_resource_t)launch->rlimit_resources[i], &launch->rlimits[i]) != 0)
            fail(report, "set resource limit", NULL);
    }
    if (chdir(launch->cwd) != 0) fail(report, "enter working directory", launch->cwd);
    const int stdio[3] = {launch->stdin_fd, launch->stdout_fd, launch->stderr_fd};
    for (int fd = 0; fd < 3; fd++) {
        if (stdio[fd] >= 0 && dup2(stdio[fd], fd) < 0) fail(report, "set standard input, output or error", NULL);
    }
    // Whatever this process had open must not reach the program; the report pipe closes at exec.
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    set_identity_and_capabilities(report, launch);
    if (launch->run_init) run_init(report, launch);
    exec_program(report, launch);
}

pid_t ferry_container_clone(const struct ferry_container_launch *launch, int *go_fd, int *report_fd) {
    int go[2], report[2];
    if (pipe2(go, O_CLOEXEC) != 0) return -1;
    if (pipe2(report, O_CLOEXEC) != 0) {
        close(go[0]);
        close(go[1]);
        return -1;
    }
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    // A raw clone, like fork: the child runs on a copy of this stack and only makes system calls.
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)launch->clone_flags | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) {
        close(go[1]);
        close(report[0]);
        child(launch, go[0], report[1]);
        _exit(127);
    }
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(go[0]);
    close(report[1]);
    if (pid < 0) {
        close(go[1]);
        close(report[0]);
        errno = error;
        return -1;
    }
    *go_fd = go[1];
    *report_fd = report[0];
    return pid;
}

int ferry_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
