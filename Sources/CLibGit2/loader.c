// Loads libgit2 on first use; see include/CLibGit2.h.
#include "CLibGit2.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// The trampolines keep the headers' declarations (GIT_EXTERN: default visibility). Called by
// MVCGit; libgit2 itself, loaded RTLD_LOCAL, binds its calls to its own functions.
#define HIDDEN
#include "symbols.inc"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = 0;
static char failure[256];

static void load(void) {
    const char *soname = "libgit2.so." LIBGIT2_SOVERSION;
    void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(failure, sizeof failure, "cannot load %s (%s)", soname, dlerror());
        return;
    }
    for (int i = 0; i < MVC_GIT_SYMBOL_COUNT; i++) {
        mvc_git_symbols[i] = dlsym(lib, mvc_git_names[i]);
        if (mvc_git_symbols[i] == NULL) {
            snprintf(failure, sizeof failure, "%s lacks %s", soname, mvc_git_names[i]);
            return;
        }
    }
    // Variadic, so not a trampoline: called through its own pointer with fixed arguments.
    int (*opts)(int, ...) = (int (*)(int, ...))dlsym(lib, "git_libgit2_opts");
    if (opts == NULL) {
        snprintf(failure, sizeof failure, "%s lacks git_libgit2_opts", soname);
        return;
    }
    if (git_libgit2_init() < 0) {
        snprintf(failure, sizeof failure, "%s did not initialise", soname);
        return;
    }
    // fsync objects and refs (libgit2 does not by default), so a mirrored ref never names an
    // object a crash could lose; verify that every object a new object refers to exists.
    opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
    opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
    loaded = 1;
}

int mvc_git_load(char *error, size_t error_size) {
    pthread_once(&once, load);
    if (loaded) return 0;
    if (error != NULL && error_size > 0) snprintf(error, error_size, "%s", failure);
    return -1;
}
