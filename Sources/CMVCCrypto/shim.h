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
#endif
#endif
