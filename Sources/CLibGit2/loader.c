// Loads libgit2 on first use; see include/CLibGit2.h.
#include "CLibGit2.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "mvc_git_functions.h"
#include "symbols.inc"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = 0;
static char failure[256];

static void load(void) {
#ifdef __APPLE__
    const char *soname = "libgit2." LIBGIT2_SOVERSION ".dylib";
#else
    const char *soname = "libgit2.so." LIBGIT2_SOVERSION;
#endif
    const char *chosen = getenv("MVC_LIBGIT2");   // a libgit2 of the same version elsewhere
    if (chosen != NULL && chosen[0] != 0) soname = chosen;
    void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(failure, sizeof failure, "cannot load %s (%s)", soname, dlerror());
        return;
    }
    for (int i = 0; i < MVC_GIT_SYMBOL_COUNT; i++) {
        mvc_git_symbols[i] = dlsym(lib, mvc_git_names[i]);
        if (mvc_git_symbols[i] == NULL) {
            snprintf(failure, sizeof failure, "%s lacks %s", soname, mvc_git_names[i]);
            dlclose(lib);
            return;
        }
    }
    // Not used by MVCGit, so not trampolines: called here through pointers of their own
    // (git_libgit2_opts is variadic, called with fixed arguments).
    int (*init)(void) = (int (*)(void))dlsym(lib, "git_libgit2_init");
    int (*opts)(int, ...) = (int (*)(int, ...))dlsym(lib, "git_libgit2_opts");
    if (init == NULL || opts == NULL || init() < 0) {
        snprintf(failure, sizeof failure, "%s did not initialise", soname);
        dlclose(lib);
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
