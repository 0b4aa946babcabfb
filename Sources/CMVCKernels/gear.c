// Gear-hash cut-point search; see include/mvc_kernels.h.
#include "mvc_kernels.h"

// The masks are the top k bits of a word, so `h & mask == 0` is `h < limit` with
// limit = 2^(64-k) = ~mask + 1: four candidate hashes are then tested with one comparison of
// their minimum.
static inline size_t scan(const uint8_t *b, size_t i, size_t stop, uint64_t *hp, uint64_t limit,
                          const uint64_t *g) {
    uint64_t h = *hp;
    while (i + 4 <= stop) {
        uint64_t a = g[b[i]], c = g[b[i + 1]], d = g[b[i + 2]], e = g[b[i + 3]];
        uint64_t h1 = (h << 1) + a;
        uint64_t h2 = (h << 2) + (a << 1) + c;
        uint64_t h3 = (h << 3) + (a << 2) + (c << 1) + d;
        uint64_t h4 = (h << 4) + (a << 3) + (c << 2) + (d << 1) + e;
        uint64_t m12 = h1 < h2 ? h1 : h2, m34 = h3 < h4 ? h3 : h4;
        if (__builtin_expect((m12 < m34 ? m12 : m34) < limit, 0)) {
            if (h1 < limit) return i + 1;
            if (h2 < limit) return i + 2;
            if (h3 < limit) return i + 3;
            return i + 4;
        }
        h = h4;
        i += 4;
    }
    for (; i < stop; i++) {
        h = (h << 1) + g[b[i]];
        if (h < limit) return i + 1;
    }
    *hp = h;
    return 0;
}

size_t mvc_gear_cut(const uint8_t *bytes, size_t n, size_t min, size_t avg, size_t max,
                    uint64_t mask_s, uint64_t mask_l, const uint64_t gear[256]) {
    if (n <= min) return n;
    size_t end = n < max ? n : max;
    size_t barrier = end < avg ? end : avg;
    uint64_t h = 0;
    size_t cut = scan(bytes, min, barrier, &h, ~mask_s + 1, gear);
    if (cut) return cut;
    cut = scan(bytes, barrier, end, &h, ~mask_l + 1, gear);
    return cut ? cut : end;
}
