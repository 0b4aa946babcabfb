#ifndef MVC_CLIBGIT2_H
#define MVC_CLIBGIT2_H
// libgit2 (Debian `libgit2-dev` for this header), loaded with dlopen when the git mirror is first
// needed, not linked: linking it made every mvc command load ~15 shared libraries at start (ssh,
// TLS, Kerberos, ...), 3-4 ms of a 6 ms start, while most commands never touch git.
//
// MVCGit calls libgit2's git_X as mvc_git_X (mvc_git_functions.h, symbols.inc, written by
// Scripts/gen-libgit2-loader.py): a trampoline to the library's own function, under a name of its
// own so that a program linking the MVC library and libgit2 both keeps libgit2's names to libgit2.
// Call mvc_git_load first.
#include <git2.h>
#include <stddef.h>
#include "mvc_git_functions.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Loads libgit2 (the soname of the headers it was built against), binds every function MVCGit
/// uses and initialises the library once, with fsync of objects and refs on and strict object
/// creation. Thread-safe. 0 on success; else -1 and a one-line reason in `error`.
int mvc_git_load(char *error, size_t error_size);

#ifdef __cplusplus
}
#endif
#endif
