#ifndef MVC_CLIBGIT2_H
#define MVC_CLIBGIT2_H
// libgit2 (Debian `libgit2-dev` for this header), loaded with dlopen when the git mirror is first
// needed, not linked: linking it made every mvc command load ~15 shared libraries at start (ssh,
// TLS, Kerberos, ...), 3-4 ms of a 6 ms start, while most commands never touch git.
//
// The git_* functions MVCGit calls are trampolines (symbols.inc, written by
// Scripts/gen-libgit2-loader.py) to the library's own functions; call mvc_git_load first.
#include <git2.h>
#include <stddef.h>

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
