// SHA-256 with interleaved streams; see include/mvc_kernels.h.
#include "mvc_kernels.h"
#include <string.h>
// SHA256_Transform is deprecated in OpenSSL 3 but kept; it is the only way to run OpenSSL's block
// function on a state of our own.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>

#if defined(__x86_64__)
#define MVC_SHA_X86 1
#include <immintrin.h>
#include <cpuid.h>
#endif


static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

// MARK: fallback

// OpenSSL's block function (assembly with the CPU's SHA instructions where it has them, on x86 and
// ARM alike): used where the interleaved code below is not compiled or not supported, and in
// unoptimised (debug) builds, where the intrinsics code would run at a tenth of its speed.
static void compress_openssl(uint32_t s[8], const uint8_t *p, size_t blocks) {
    SHA256_CTX c;
    memset(&c, 0, sizeof c);
    memcpy(c.h, s, 32);
    while (blocks--) { SHA256_Transform(&c, p); p += 64; }
    memcpy(s, c.h, 32);
}

// MARK: x86 SHA extensions

#ifdef MVC_SHA_X86

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define NI __attribute__((target("sha,sse4.1,ssse3")))

// The SHA instructions keep the state as ABEF and CDGH.
NI static inline void ni_load(const uint32_t s[8], __m128i *abef, __m128i *cdgh) {
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[0]), 0xB1);
    __m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[4]), 0x1B);
    *abef = _mm_alignr_epi8(t, u, 8);
    *cdgh = _mm_blend_epi16(u, t, 0xF0);
}

NI static inline void ni_store(uint32_t s[8], __m128i abef, __m128i cdgh) {
    __m128i t = _mm_shuffle_epi32(abef, 0x1B);
    __m128i u = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&s[0], _mm_blend_epi16(t, u, 0xF0));
    _mm_storeu_si128((__m128i *)&s[4], _mm_alignr_epi8(u, t, 8));
}

#define BSWAP_MASK _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL)
#define LOADW(p, i) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((p) + 16 * (i))), BSWAP_MASK)
// Four rounds with message words M (rounds 4g .. 4g+3).
#define ROUNDS4(S0, S1, M, g)                                                        \
    do {                                                                             \
        __m128i k_ = _mm_add_epi32((M), _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        S1 = _mm_sha256rnds2_epu32(S1, S0, k_);                                      \
        S0 = _mm_sha256rnds2_epu32(S0, S1, _mm_shuffle_epi32(k_, 0x0E));             \
    } while (0)
// The next four message words from the previous sixteen (M0 oldest).
#define SCHEDULE(M0, M1, M2, M3) \
    _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(M0, M1), _mm_alignr_epi8(M3, M2, 4)), M3)

// One block of rounds for lane L (arrays S0[], S1[], m0[]..m3[] in scope), group g >= 4.
#define LANE_GROUPS(L, g)                                                      \
    do {                                                                       \
        m0[L] = SCHEDULE(m0[L], m1[L], m2[L], m3[L]); ROUNDS4(S0[L], S1[L], m0[L], g);     \
        m1[L] = SCHEDULE(m1[L], m2[L], m3[L], m0[L]); ROUNDS4(S0[L], S1[L], m1[L], g + 1); \
        m2[L] = SCHEDULE(m2[L], m3[L], m0[L], m1[L]); ROUNDS4(S0[L], S1[L], m2[L], g + 2); \
        m3[L] = SCHEDULE(m3[L], m0[L], m1[L], m2[L]); ROUNDS4(S0[L], S1[L], m3[L], g + 3); \
    } while (0)

// Compresses `blocks` blocks of each of LANES streams; the per-lane statements are written out
// so that the compiler interleaves independent lanes.
#define DEFINE_NI(NAME, LANES)                                                                  \
    NI static void NAME(uint32_t *const s[], const uint8_t *const pin[], size_t blocks) {       \
        __m128i S0[LANES], S1[LANES];                                                           \
        const uint8_t *p[LANES];                                                                \
        for (int l = 0; l < LANES; l++) { ni_load(s[l], &S0[l], &S1[l]); p[l] = pin[l]; }       \
        while (blocks--) {                                                                      \
            __m128i A0[LANES], A1[LANES], m0[LANES], m1[LANES], m2[LANES], m3[LANES];           \
            for (int l = 0; l < LANES; l++) {                                                   \
                A0[l] = S0[l]; A1[l] = S1[l];                                                   \
                m0[l] = LOADW(p[l], 0); ROUNDS4(S0[l], S1[l], m0[l], 0);                        \
                m1[l] = LOADW(p[l], 1); ROUNDS4(S0[l], S1[l], m1[l], 1);                        \
                m2[l] = LOADW(p[l], 2); ROUNDS4(S0[l], S1[l], m2[l], 2);                        \
                m3[l] = LOADW(p[l], 3); ROUNDS4(S0[l], S1[l], m3[l], 3);                        \
            }                                                                                   \
            for (int g = 4; g < 16; g += 4) {                                                   \
                for (int l = 0; l < LANES; l++) LANE_GROUPS(l, g);                              \
            }                                                                                   \
            for (int l = 0; l < LANES; l++) {                                                   \
                S0[l] = _mm_add_epi32(S0[l], A0[l]); S1[l] = _mm_add_epi32(S1[l], A1[l]);       \
                p[l] += 64;                                                                     \
            }                                                                                   \
        }                                                                                       \
        for (int l = 0; l < LANES; l++) ni_store(s[l], S0[l], S1[l]);                           \
    }

DEFINE_NI(compress_ni1, 1)
DEFINE_NI(compress_ni2, 2)
DEFINE_NI(compress_ni4, 4)

static int detect_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return ssse3 && sse41 && ((b >> 29) & 1);
}
#endif

// MVC_SHA256_AUTO, MVC_SHA256_FALLBACK or MVC_SHA256_INTERLEAVED (see the header).
static int requested = MVC_SHA256_AUTO;

#ifdef MVC_SHA_X86
// -1: not yet detected; else whether the CPU has the SHA extensions. Racing first calls store the
// same value.
static int cpu_has_sha = -1;
#endif

static int use_ni(void) {
#ifdef MVC_SHA_X86
    int r = __atomic_load_n(&requested, __ATOMIC_RELAXED);
    if (r == MVC_SHA256_FALLBACK) return 0;
#ifndef __OPTIMIZE__
    // Unoptimised, the intrinsics keep every value on the stack: OpenSSL is 6x faster.
    if (r == MVC_SHA256_AUTO) return 0;
#endif
    int m = __atomic_load_n(&cpu_has_sha, __ATOMIC_RELAXED);
    if (m < 0) { m = detect_ni(); __atomic_store_n(&cpu_has_sha, m, __ATOMIC_RELAXED); }
    return m;
#else
    return 0;
#endif
}

int mvc_sha256_accelerated(void) { return use_ni(); }
void mvc_sha256_set_mode(int mode) { __atomic_store_n(&requested, mode, __ATOMIC_RELAXED); }

static void compress1(uint32_t s[8], const uint8_t *p, size_t blocks) {
    if (blocks == 0) return;
#ifdef MVC_SHA_X86
    if (use_ni()) { uint32_t *ss[1] = {s}; const uint8_t *pp[1] = {p}; compress_ni1(ss, pp, blocks); return; }
#endif
    compress_openssl(s, p, blocks);
}

static void compress2(uint32_t a[8], const uint8_t *pa, uint32_t b[8], const uint8_t *pb, size_t blocks) {
    if (blocks == 0) return;
#ifdef MVC_SHA_X86
    if (use_ni()) { uint32_t *ss[2] = {a, b}; const uint8_t *pp[2] = {pa, pb}; compress_ni2(ss, pp, blocks); return; }
#endif
    compress_openssl(a, pa, blocks);
    compress_openssl(b, pb, blocks);
}

static void compress4(uint32_t *const s[4], const uint8_t *const p[4], size_t blocks) {
    if (blocks == 0) return;
#ifdef MVC_SHA_X86
    if (use_ni()) { compress_ni4(s, p, blocks); return; }
#endif
    for (int l = 0; l < 4; l++) compress_openssl(s[l], p[l], blocks);
}

// MARK: streaming

void mvc_sha256_init(mvc_sha256 *ctx) {
    memcpy(ctx->state, IV, sizeof IV);
    ctx->length = 0;
    ctx->used = 0;
}

// Tops up a partial block from (*p, *n); compresses it when full.
static void fill(mvc_sha256 *ctx, const uint8_t **p, size_t *n) {
    if (ctx->used == 0 || *n == 0) return;
    size_t k = 64 - ctx->used;
    if (k > *n) k = *n;
    memcpy(ctx->buffer + ctx->used, *p, k);
    ctx->used += (uint32_t)k;
    *p += k;
    *n -= k;
    if (ctx->used == 64) { compress1(ctx->state, ctx->buffer, 1); ctx->used = 0; }
}

// Compresses the whole blocks of (p, n) and keeps the tail; ctx->used is 0 or n is 0.
static void rest(mvc_sha256 *ctx, const uint8_t *p, size_t n) {
    if (n == 0) return;
    size_t blocks = n / 64;
    compress1(ctx->state, p, blocks);
    p += 64 * blocks;
    n -= 64 * blocks;
    if (n) { memcpy(ctx->buffer, p, n); ctx->used = (uint32_t)n; }
}

void mvc_sha256_update(mvc_sha256 *ctx, const void *data, size_t length) {
    const uint8_t *p = data;
    ctx->length += length;
    fill(ctx, &p, &length);
    rest(ctx, p, length);
}

void mvc_sha256_update2(mvc_sha256 *a, mvc_sha256 *b, const void *data, size_t length) {
    const uint8_t *pa = data, *pb = data;
    size_t na = length, nb = length;
    a->length += length;
    b->length += length;
    fill(a, &pa, &na);
    fill(b, &pb, &nb);
    if (na && nb) {  // both are now at a block boundary of their own stream
        size_t blocks = (na < nb ? na : nb) / 64;
        compress2(a->state, pa, b->state, pb, blocks);
        pa += 64 * blocks; na -= 64 * blocks;
        pb += 64 * blocks; nb -= 64 * blocks;
    }
    rest(a, pa, na);
    rest(b, pb, nb);
}

void mvc_sha256_final(mvc_sha256 *ctx, uint8_t digest[32]) {
    uint64_t bits = ctx->length * 8;
    uint8_t pad[72] = {0x80};
    size_t padLength = (ctx->used < 56 ? 56 : 120) - ctx->used;
    for (int i = 0; i < 8; i++) pad[padLength + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t length = ctx->length;
    mvc_sha256_update(ctx, pad, padLength + 8);
    ctx->length = length;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)ctx->state[i];
    }
}

// MARK: many messages

typedef struct lane {
    size_t message;        // index into the inputs
    const uint8_t *p;      // next whole block
    size_t blocks;         // whole blocks left
    mvc_sha256 ctx;
} lane;

static void finish(lane *l, const size_t *lengths, uint8_t *digests) {
    size_t whole = lengths[l->message] / 64 * 64;
    l->ctx.length = whole;
    mvc_sha256_update(&l->ctx, l->p, lengths[l->message] - whole);
    mvc_sha256_final(&l->ctx, digests + 32 * l->message);
}

void mvc_sha256_many(size_t count, const void *const *data, const size_t *lengths, uint8_t *digests) {
    lane lanes[4];
    int active = 0;
    size_t next = 0;
    for (;;) {
        // Refill empty lanes; a message with no whole block left is finished at once.
        while (active < 4 && next < count) {
            lane *l = &lanes[active];
            l->message = next++;
            l->p = data[l->message];
            l->blocks = lengths[l->message] / 64;
            mvc_sha256_init(&l->ctx);
            if (l->blocks == 0) finish(l, lengths, digests); else active++;
        }
        if (active == 0) return;
        size_t run = lanes[0].blocks;
        for (int i = 1; i < active; i++) if (lanes[i].blocks < run) run = lanes[i].blocks;
        if (active == 4) {
            uint32_t *s[4] = {lanes[0].ctx.state, lanes[1].ctx.state, lanes[2].ctx.state, lanes[3].ctx.state};
            const uint8_t *p[4] = {lanes[0].p, lanes[1].p, lanes[2].p, lanes[3].p};
            compress4(s, p, run);
        } else if (active >= 2) {
            run = lanes[0].blocks < lanes[1].blocks ? lanes[0].blocks : lanes[1].blocks;
            compress2(lanes[0].ctx.state, lanes[0].p, lanes[1].ctx.state, lanes[1].p, run);
        } else {
            compress1(lanes[0].ctx.state, lanes[0].p, run);
        }
        int lanesRun = active == 4 ? 4 : (active >= 2 ? 2 : 1);
        for (int i = 0; i < lanesRun; i++) { lanes[i].p += 64 * run; lanes[i].blocks -= run; }
        // Finish lanes that ran out, keeping the others packed at the front.
        int kept = 0;
        for (int i = 0; i < active; i++) {
            if (lanes[i].blocks == 0) finish(&lanes[i], lengths, digests);
            else lanes[kept++] = lanes[i];
        }
        active = kept;
    }
}
