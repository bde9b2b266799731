#include <git2.h>
#include "CGitShims.h"

int autoserve_git_disable_owner_validation(void) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
}

#ifdef __linux__
#include <sys/prctl.h>
#include <signal.h>
int autoserve_kill_me_with_parent(void) {
    return prctl(PR_SET_PDEATHSIG, SIGKILL);
}
#else
int autoserve_kill_me_with_parent(void) { return 0; }
#endif
