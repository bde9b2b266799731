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

#endif
