#ifndef AUTOSERVE_CGITSHIMS_H
#define AUTOSERVE_CGITSHIMS_H

/// git_libgit2_opts is variadic, which Swift cannot call: these are its non-variadic uses.

/// Turns off the check that the repository folder is owned by the current user (STATE_DIR is ours,
/// but a volume may be mounted with another owner). Returns libgit2's error code.
int autoserve_git_disable_owner_validation(void);

#endif
