#ifndef AUTOSERVE_CSYSTEM_SHIMS_H
#define AUTOSERVE_CSYSTEM_SHIMS_H

#include <spawn.h>

/// The C calls of the worker process and the server that Swift cannot make: prctl is variadic, and Glibc's Swift module does not
/// export timerfd or SCHED_BATCH.

/// Asks the kernel to SIGKILL this process when its parent dies (Linux; a no-op returning 0 elsewhere).
int autoserve_kill_me_with_parent(void);

/// Makes this process non-dumpable: no core dump, and its /proc files (environ, mem) belong to root, so a
/// process of the same user (a model's worker) cannot read the server's secrets there (Linux; 0 elsewhere).
int autoserve_make_undumpable(void);

/// A monotonic one-shot timer read as a descriptor: the descriptor, or -1 (and -1 off Linux).
int autoserve_timer_create(void);

/// Arms the timer to expire once after `nanoseconds`, or disarms it with 0. Returns 0 or -1.
int autoserve_timer_arm(int descriptor, long long nanoseconds);

/// Schedules the calling thread, and the threads it starts later, as SCHED_BATCH: woken, it waits for the
/// running thread's turn to end instead of preempting it (Linux; a no-op returning 0 elsewhere). Returns 0 or -1.
int autoserve_schedule_as_batch(void);

/// Gives the calling thread alone the nice value `nice` (Linux applies nice per thread; elsewhere the whole
/// process). Returns 0 or -1.
int autoserve_nice_this_thread(int nice);

/// A pipe whose two ends close on exec, created atomically (no other thread's child can inherit it). 0 or -1.
int autoserve_pipe_cloexec(int descriptors[2]);

/// Makes a spawned child start in `directory`: glibc's posix_spawn_file_actions_addchdir_np, which Glibc's Swift module
/// does not export. 0, or an error number (ENOSYS off Linux).
int autoserve_spawn_chdir(posix_spawn_file_actions_t *actions, const char *directory);

/// Makes a spawned child close every descriptor from `lowest` up before it runs: glibc's
/// posix_spawn_file_actions_addclosefrom_np. The server's sockets (NIO opens them without close-on-exec) must not
/// live on in a compiler that outlives the server. 0, or an error number (ENOSYS off Linux).
int autoserve_spawn_closefrom(posix_spawn_file_actions_t *actions, int lowest);

/// Makes the C standard output (which Swift's `print` writes to) line-buffered, as on a terminal.
void autoserve_line_buffer_stdout(void);

/// The sandbox of a model's worker (docs/operations.md, "The sandbox"): Landlock, a seccomp filter and resource limits, applied
/// by the worker itself after it loaded its libraries and before the model's code runs. Each returns 0, or an error
/// number saying why the layer could not be applied.

/// The highest Landlock ABI this kernel offers (1 files, 4 TCP, 6 signals and abstract Unix sockets), or 0 when
/// Landlock is missing, disabled at boot, or refused by a container runtime's seccomp profile.
int autoserve_landlock_abi(void);

/// Whether this process may install a seccomp filter: 1, or 0 (no CONFIG_SECCOMP_FILTER).
int autoserve_seccomp_available(void);

/// A Landlock ruleset that handles every file access the ABI knows, TCP bind and connect (ABI >= 4) unless
/// `allow_network`, and scopes signals and abstract Unix sockets to the domain (ABI >= 6): its descriptor, or
/// -1 with errno set.
int autoserve_landlock_ruleset(int abi, int allow_network);

/// Allows reading (and mapping for execution) what lies beneath `path` (or the file itself), or, when `writable`,
/// every file access there. 0, or an error number (ENOENT for a path that does not exist).
int autoserve_landlock_allow(int ruleset, int abi, const char *path, int writable);

/// Sets no_new_privs and enforces the ruleset on the calling thread and the threads it starts later; closes it.
/// 0 or an error number.
int autoserve_landlock_enforce(int ruleset);

/// `autoserve_seccomp_confine`'s exceptions: new sockets (a model granted the network), and running programs and
/// starting processes, which may then be signalled (the compiler's driver runs the frontend and the linker; Landlock
/// keeps its signals inside its domain).
enum { AUTOSERVE_SECCOMP_ALLOW_SOCKETS = 1, AUTOSERVE_SECCOMP_ALLOW_PROGRAMS = 2 };

/// Installs the sandbox's seccomp filter (no_new_privs set first) on every thread of the process: a new process,
/// a program run, a new socket, a signal to another process, tracing or reading another process, mount and
/// namespace calls, BPF, perf events, keyrings, io_uring, chmod and chown, and making the process dumpable again
/// fail with EPERM, less the exceptions of `allow` (AUTOSERVE_SECCOMP_ALLOW_*). 0 or an error number.
int autoserve_seccomp_confine(int allow);

/// No core files, no file written larger than `file_size_limit` bytes (or the smaller limit it was started under;
/// EFBIG, SIGXFSZ ignored), the process non-dumpable, and no capability. 0 or an error number.
int autoserve_confine_limits(long long file_size_limit);

#endif
