#ifdef __linux__
#define _GNU_SOURCE
#endif
#include "CSystemShims.h"

#include <fcntl.h>
#include <unistd.h>
int autoserve_pipe_cloexec(int descriptors[2]) {
#ifdef __linux__
    return pipe2(descriptors, O_CLOEXEC);
#else
    return pipe(descriptors);
#endif
}

#ifdef __linux__
#include <sys/prctl.h>
#include <signal.h>
int autoserve_kill_me_with_parent(void) {
    return prctl(PR_SET_PDEATHSIG, SIGKILL);
}
int autoserve_make_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0);
}
#else
int autoserve_kill_me_with_parent(void) { return 0; }
int autoserve_make_undumpable(void) { return 0; }
#endif

#ifdef __linux__
#include <sys/timerfd.h>
int autoserve_timer_create(void) {
    return timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
}
int autoserve_timer_arm(int descriptor, long long nanoseconds) {
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = nanoseconds / 1000000000LL;
    spec.it_value.tv_nsec = nanoseconds % 1000000000LL;
    return timerfd_settime(descriptor, 0, &spec, 0);
}
#else
int autoserve_timer_create(void) { return -1; }
int autoserve_timer_arm(int descriptor, long long nanoseconds) { return -1; }
#endif

#ifdef __linux__
#include <sched.h>
int autoserve_schedule_as_batch(void) {
    struct sched_param parameters = {0};
    return sched_setscheduler(0, SCHED_BATCH, &parameters);
}
#else
int autoserve_schedule_as_batch(void) { return 0; }
#endif

#include <stdio.h>
void autoserve_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

#include <sys/resource.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

int autoserve_nice_this_thread(int nice) {
#if defined(__linux__)
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
#else
    return setpriority(PRIO_PROCESS, 0, nice);
#endif
}

#include <errno.h>
int autoserve_spawn_chdir(posix_spawn_file_actions_t *actions, const char *directory) {
#ifdef __linux__
    return posix_spawn_file_actions_addchdir_np(actions, directory);
#else
    return ENOSYS;
#endif
}

int autoserve_spawn_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
#ifdef __linux__
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
#else
    return ENOSYS;
#endif
}

// The worker's sandbox (docs/operations.md, "The sandbox"). Landlock's constants are spelled out here: the build machine's
// <linux/landlock.h> may predate the ABI the kernel at run time offers, and each value is part of the kernel's ABI.
#ifdef __linux__
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

// fchmodat2 (Linux 6.6) is newer than some build machines' headers; its number is the same on every architecture.
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

#define AS_LL_CREATE_RULESET_VERSION (1U << 0)
#define AS_LL_RULE_PATH_BENEATH 1
#define AS_LL_FS_EXECUTE (1ULL << 0)
#define AS_LL_FS_WRITE_FILE (1ULL << 1)
#define AS_LL_FS_READ_FILE (1ULL << 2)
#define AS_LL_FS_READ_DIR (1ULL << 3)
#define AS_LL_FS_REFER (1ULL << 13)
#define AS_LL_FS_TRUNCATE (1ULL << 14)
#define AS_LL_FS_IOCTL_DEV (1ULL << 15)
#define AS_LL_NET_BIND_TCP (1ULL << 0)
#define AS_LL_NET_CONNECT_TCP (1ULL << 1)
#define AS_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define AS_LL_SCOPE_SIGNAL (1ULL << 1)

struct as_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct as_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int autoserve_landlock_abi(void) {
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, AS_LL_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

int autoserve_seccomp_available(void) {
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 ? 1 : 0;
}

/// Every file access right the ABI knows: what the ruleset handles, and what a writable folder is given.
static uint64_t landlock_fs_rights(int abi) {
    uint64_t rights = (1ULL << 13) - 1;
    if (abi >= 2) rights |= AS_LL_FS_REFER;
    if (abi >= 3) rights |= AS_LL_FS_TRUNCATE;
    if (abi >= 5) rights |= AS_LL_FS_IOCTL_DEV;
    return rights;
}

int autoserve_landlock_ruleset(int abi, int allow_network) {
    struct as_landlock_ruleset_attr attributes = {0};
    attributes.handled_access_fs = landlock_fs_rights(abi);
    size_t size = offsetof(struct as_landlock_ruleset_attr, handled_access_net);
    if (abi >= 4) {
        attributes.handled_access_net = allow_network ? 0 : (AS_LL_NET_BIND_TCP | AS_LL_NET_CONNECT_TCP);
        size = offsetof(struct as_landlock_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attributes.scoped = AS_LL_SCOPE_ABSTRACT_UNIX_SOCKET | AS_LL_SCOPE_SIGNAL;
        size = sizeof(attributes);
    }
    return (int)syscall(__NR_landlock_create_ruleset, &attributes, size, 0);
}

int autoserve_landlock_allow(int ruleset, int abi, const char *path, int writable) {
    int descriptor = open(path, O_PATH | O_CLOEXEC);
    if (descriptor < 0) return errno;
    struct stat status;
    if (fstat(descriptor, &status) != 0) {
        int error = errno;
        close(descriptor);
        return error;
    }
    uint64_t file_rights = AS_LL_FS_EXECUTE | AS_LL_FS_READ_FILE;
    if (writable) file_rights |= AS_LL_FS_WRITE_FILE | (abi >= 3 ? AS_LL_FS_TRUNCATE : 0);
    struct as_landlock_path_beneath_attr rule = {0};
    if (S_ISDIR(status.st_mode)) {
        rule.allowed_access = writable ? landlock_fs_rights(abi) : (file_rights | AS_LL_FS_READ_DIR);
    } else {
        rule.allowed_access = file_rights;
    }
    rule.parent_fd = descriptor;
    long added = syscall(__NR_landlock_add_rule, ruleset, AS_LL_RULE_PATH_BENEATH, &rule, 0);
    int error = added == 0 ? 0 : errno;
    close(descriptor);
    return error;
}

int autoserve_landlock_enforce(int ruleset) {
    int error = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) error = errno;
    else if (syscall(__NR_landlock_restrict_self, ruleset, 0) != 0) error = errno;
    close(ruleset);
    return error;
}

#if defined(__x86_64__)
#define AS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define AS_RET(value) BPF_STMT(BPF_RET | BPF_K, (value))
#define AS_EPERM (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define AS_LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, field))
/// args[0]'s low word (both architectures are little-endian): pids, flags and prctl options are 32-bit.
#define AS_LOAD_ARG0 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, args[0]))

int autoserve_seccomp_confine(int allow) {
#ifdef AS_AUDIT_ARCH
    static const int always[] = {
        __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_mount, __NR_umount2, __NR_unshare, __NR_setns, __NR_bpf,
        __NR_perf_event_open, __NR_keyctl, __NR_add_key, __NR_request_key, __NR_pidfd_getfd, __NR_io_uring_setup, __NR_io_uring_enter,
        __NR_io_uring_register, __NR_userfaultfd, __NR_pivot_root, __NR_chroot, __NR_open_tree, __NR_move_mount, __NR_fsopen,
        __NR_fsconfig, __NR_fsmount, __NR_fspick, __NR_mount_setattr, __NR_init_module, __NR_finit_module, __NR_delete_module,
        __NR_kexec_load, __NR_kexec_file_load, __NR_kcmp, __NR_process_madvise, __NR_open_by_handle_at, __NR_name_to_handle_at,
        // Permissions and owners: Landlock (to ABI 7) does not stand behind chmod and chown.
        __NR_fchmod, __NR_fchmodat, __NR_fchown, __NR_fchownat, __NR_fchmodat2,
#ifdef __NR_chmod
        __NR_chmod, __NR_chown, __NR_lchown,
#endif
    };
    static const int sockets[] = {__NR_socket, __NR_socketpair};
    static const int programs[] = {
        __NR_execve, __NR_execveat, __NR_tkill, __NR_pidfd_open, __NR_pidfd_send_signal,
#ifdef __NR_fork
        __NR_fork,
#endif
#ifdef __NR_vfork
        __NR_vfork,
#endif
    };
    // A signal may go to this process only (its own threads: tgkill with its own thread group id).
    static const int signalling[] = {__NR_kill, __NR_tgkill, __NR_rt_sigqueueinfo, __NR_rt_tgsigqueueinfo};
    enum {
        always_count = sizeof(always) / sizeof(always[0]),
        socket_count = sizeof(sockets) / sizeof(sockets[0]),
        program_count = sizeof(programs) / sizeof(programs[0]),
        signal_count = sizeof(signalling) / sizeof(signalling[0]),
    };
    struct sock_filter program[4 + 2 * (always_count + socket_count + program_count) + 2 + 5 + 5 * signal_count + 5 + 1];
    size_t at = 0;
    uint32_t self = (uint32_t)getpid();
    program[at++] = (struct sock_filter)AS_LOAD(arch);
    // Another architecture's calls (x86_64's int 0x80 enters as i386) are refused whole.
    program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AS_AUDIT_ARCH, 1, 0);
    program[at++] = (struct sock_filter)AS_RET(AS_EPERM);
    program[at++] = (struct sock_filter)AS_LOAD(nr);
#define AS_DENY(list, count)                                                                                  \
    for (size_t index = 0; index < (count); index++) {                                                        \
        program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(list)[index], 0, 1); \
        program[at++] = (struct sock_filter)AS_RET(AS_EPERM);                                                 \
    }
    AS_DENY(always, always_count)
    if (!(allow & AUTOSERVE_SECCOMP_ALLOW_SOCKETS)) AS_DENY(sockets, socket_count)
    if (!(allow & AUTOSERVE_SECCOMP_ALLOW_PROGRAMS)) {
        AS_DENY(programs, program_count)
        // clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc fall back to clone.
        program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
        program[at++] = (struct sock_filter)AS_RET(SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
        // clone: a thread (CLONE_THREAD) is allowed, a process is not.
        program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4);
        program[at++] = (struct sock_filter)AS_LOAD_ARG0;
        program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x00010000 /* CLONE_THREAD */, 0, 1);
        program[at++] = (struct sock_filter)AS_RET(SECCOMP_RET_ALLOW);
        program[at++] = (struct sock_filter)AS_RET(AS_EPERM);
        for (size_t index = 0; index < signal_count; index++) {
            program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)signalling[index], 0, 4);
            program[at++] = (struct sock_filter)AS_LOAD_ARG0;
            program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, self, 0, 1);
            program[at++] = (struct sock_filter)AS_RET(SECCOMP_RET_ALLOW);
            program[at++] = (struct sock_filter)AS_RET(AS_EPERM);
        }
    }
#undef AS_DENY
    // The process stays non-dumpable: no model makes its memory readable to another again.
    program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prctl, 0, 4);
    program[at++] = (struct sock_filter)AS_LOAD_ARG0;
    program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_DUMPABLE, 0, 1);
    program[at++] = (struct sock_filter)AS_RET(AS_EPERM);
    program[at++] = (struct sock_filter)AS_RET(SECCOMP_RET_ALLOW);
    program[at++] = (struct sock_filter)AS_RET(SECCOMP_RET_ALLOW);
    struct sock_fprog filter = {.len = (unsigned short)at, .filter = program};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &filter) != 0) return errno;
    return 0;
#else
    return ENOSYS;
#endif
}

#include <linux/capability.h>
int autoserve_confine_limits(long long file_size_limit) {
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) return errno;
    // Lowered only: a limit the server was started under (`ulimit -f`, `prlimit --fsize`) may already be smaller.
    struct rlimit size;
    if (getrlimit(RLIMIT_FSIZE, &size) != 0) return errno;
    if (size.rlim_max == RLIM_INFINITY || size.rlim_max > (rlim_t)file_size_limit) size.rlim_max = (rlim_t)file_size_limit;
    if (size.rlim_cur == RLIM_INFINITY || size.rlim_cur > size.rlim_max) size.rlim_cur = size.rlim_max;
    if (setrlimit(RLIMIT_FSIZE, &size) != 0) return errno;
    signal(SIGXFSZ, SIG_IGN);
    if (prctl(PR_SET_DUMPABLE, 0) != 0) return errno;
    // A worker started by root keeps no capability: root's would pass the file permissions Landlock stands behind.
    // The bounding set first: dropping from it takes CAP_SETPCAP, which the capset below gives up.
    for (int capability = 0; capability <= 63; capability++) {
        if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM) return errno;
    }
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(__NR_capset, &header, data) != 0) return errno;
    return 0;
}
#else
int autoserve_landlock_abi(void) { return 0; }
int autoserve_seccomp_available(void) { return 0; }
int autoserve_landlock_ruleset(int abi, int allow_network) { return -1; }
int autoserve_landlock_allow(int ruleset, int abi, const char *path, int writable) { return 38; }
int autoserve_landlock_enforce(int ruleset) { return 38; }
int autoserve_seccomp_confine(int allow) { return 38; }
int autoserve_confine_limits(long long file_size_limit) { return 0; }
#endif
