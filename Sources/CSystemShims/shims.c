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
