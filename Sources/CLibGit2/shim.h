#ifndef MVC_LIBGIT2_SHIM_H
#define MVC_LIBGIT2_SHIM_H
#include <git2.h>

// git_libgit2_opts is variadic, which Swift cannot call: one fixed-arity wrapper per option used.

/// Makes libgit2 fsync the objects and refs it writes (it does not by default), so a mirrored ref
/// never names an object that a crash could lose.
static inline int mvc_git_enable_fsync(void) {
    return git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
}

/// Verifies that every object a new object refers to exists (libgit2's default, made explicit).
static inline int mvc_git_enable_strict_creation(void) {
    return git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
}
#endif
