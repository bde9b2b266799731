#ifndef AUTOSERVE_CGITSHIMS_H
#define AUTOSERVE_CGITSHIMS_H

/// git_libgit2_opts is variadic, which Swift cannot call: these are its non-variadic uses.

/// Turns off the check that the repository folder is owned by the current user (STATE_DIR is ours,
/// but a volume may be mounted with another owner). Returns libgit2's error code.
int autoserve_git_disable_owner_validation(void);

#endif

#ifndef AUTOSERVE_CSYSTEM_SHIMS
#define AUTOSERVE_CSYSTEM_SHIMS
/// prctl is variadic too: asks the kernel to SIGKILL this process when its parent dies (Linux; no-op elsewhere).
int autoserve_kill_me_with_parent(void);
#endif

#ifndef AUTOSERVE_CTIMER_SHIMS
#define AUTOSERVE_CTIMER_SHIMS
/// timerfd, which Glibc's Swift module does not export: a monotonic one-shot timer read as a descriptor.
/// Returns the descriptor, or -1 (Linux only; -1 elsewhere).
int autoserve_timer_create(void);
/// Arms the timer to expire once after `nanoseconds`, or disarms it with 0. Returns 0 or -1.
int autoserve_timer_arm(int descriptor, long long nanoseconds);
#endif
