#include <git2.h>
#include "CGitShims.h"

int autoserve_git_disable_owner_validation(void) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
}
