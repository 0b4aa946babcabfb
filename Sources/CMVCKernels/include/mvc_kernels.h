#ifndef MVC_KERNELS_H
#define MVC_KERNELS_H
// The two loops every byte of a commit goes through, in C for control over the machine code.

// SHA-256 (FIPS 180-4) for the commit pipeline: one file's bytes feed two streams at once, the
// whole-file hash (the blob id) and the hash of the chunk being cut, and several chunks can be
// hashed side by side. On x86-64 with the SHA extensions the streams are interleaved in one
// instruction stream: a single SHA-256 stream is bound by the latency of SHA256RNDS2, so a second
// or fourth independent stream runs in the gaps (measured: 2.0 GB/s for one stream, 3.1 GB/s for
// two, 3.7 GB/s for four, on one core). Elsewhere (other CPUs, unoptimised builds) every stream
// runs through OpenSSL's block function in turn. The tests check both paths against OpenSSL's digests.
#include <stddef.h>
#include <stdint.h>

typedef struct mvc_sha256 {
    uint32_t state[8];
    uint64_t length;       // bytes consumed so far
    uint8_t buffer[64];    // partial block
    uint32_t used;         // bytes in buffer
} mvc_sha256;

void mvc_sha256_init(mvc_sha256 *ctx);
void mvc_sha256_update(mvc_sha256 *ctx, const void *data, size_t length);
/// Feeds the same bytes to two streams (for example a whole file and the chunk being hashed).
void mvc_sha256_update2(mvc_sha256 *a, mvc_sha256 *b, const void *data, size_t length);
void mvc_sha256_final(mvc_sha256 *ctx, uint8_t digest[32]);
/// Hashes `count` independent messages (count <= 64), four at a time where the CPU allows.
void mvc_sha256_many(size_t count, const void *const *data, const size_t *lengths, uint8_t *digests);
/// 1 when the interleaved SHA-extensions code is in use, 0 for the OpenSSL fallback.
int mvc_sha256_accelerated(void);
enum {
    MVC_SHA256_AUTO = 0,         ///< interleaved where the CPU has it, in optimised builds
    MVC_SHA256_FALLBACK = 1,     ///< OpenSSL's block function only
    MVC_SHA256_INTERLEAVED = 2,  ///< interleaved where the CPU has it, even unoptimised (tests)
};
/// Chooses the implementation (tests compare them); process-wide.
void mvc_sha256_set_mode(int mode);

/// The length of the chunk starting at `bytes[0]` by the gear cut-point rule of docs/FORMAT.md
/// section 4 (`Chunker.nextCut` states it), given `n > min` bytes of which all are available or
/// the input ends: bytes `min ..< min(n, max)` are searched, with `mask_s` before `avg` and
/// `mask_l` from there. Four positions are tested per step, each from the hash four bytes back,
/// so the loop is not bound by the one-cycle-per-byte dependency chain of the plain recurrence
/// (3.4 GB/s against 2.5 here); the cut points are the same.
size_t mvc_gear_cut(const uint8_t *bytes, size_t n, size_t min, size_t avg, size_t max,
                    uint64_t mask_s, uint64_t mask_l, const uint64_t gear[256]);
#endif
