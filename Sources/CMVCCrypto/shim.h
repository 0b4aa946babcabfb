#ifndef CMVC_CRYPTO_SHIM_H
#define CMVC_CRYPTO_SHIM_H
// Only the EVP digest interface: the low-level SHA256_* functions are deprecated in OpenSSL 3 and
// would make Swift warn at every call.
#include <openssl/evp.h>

#ifdef __linux__
// sync_file_range(2) is declared by <fcntl.h> only under _GNU_SOURCE, which Swift's Glibc module
// is not built with. Bind the libc symbol under another name (an asm label) so this declaration
// cannot clash with <fcntl.h>'s. Used to start writeback of a pack early, without waiting.
extern int mvc_sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags) __asm__("sync_file_range");
#define MVC_SYNC_FILE_RANGE_WRITE 2
// fallocate(2) is also GNU-only in <fcntl.h>; bound the same way. Used to reserve a pack's blocks
// ahead of the writes.
extern int mvc_fallocate(int fd, int mode, long long offset, long long len) __asm__("fallocate");
#define MVC_FALLOC_FL_KEEP_SIZE 1
// renameat2(2) (glibc 2.28), bound the same way: checkout swaps a new file with the one it replaces
// (RENAME_EXCHANGE), which ext4 does not make wait for the new file's writeback.
extern int mvc_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) __asm__("renameat2");
#define MVC_RENAME_EXCHANGE 2

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
// cachestat(2) (Linux 6.5): how many pages of a file are cached, and how many of those are dirty or
// under writeback. No libc wraps it yet, and Swift cannot call the variadic syscall(2).
struct mvc_cachestat {
    unsigned long long nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
static inline int mvc_cachestat(int fd, struct mvc_cachestat *out) {
#if defined(__x86_64__) || defined(__aarch64__)
    struct { unsigned long long off, len; } whole = { 0, 0 };   // len 0: to the end of the file
    return (int)syscall(451, fd, &whole, out, 0);
#else
    (void)fd; (void)out;
    errno = ENOSYS;
    return -1;
#endif
}
#endif
#endif
