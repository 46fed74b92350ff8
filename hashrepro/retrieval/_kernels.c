/* Fused Hamming-ranking kernels for hashrepro.retrieval (built by native.py, called via ctypes).
 *
 * Codes are rows of `nw` 64-bit words (packed bits, zero padding). Relevance comes as database
 * label bitsets: `db_bits` is (L, ceil(n / 64)) words, bit x of row l set when item x has label
 * l; a query's labels are a multi-hot row of `lw` words over the same L labels, and an item is
 * relevant when it shares a label with the query. Single-label data are the case of one label
 * per item: the query's relevance words are then one bitset row, used in place.
 *
 * With K + 1 distinct distances, no kernel sorts:
 *
 *   hr_bucket_counts  items and relevant items per (query, distance): all that ties="average",
 *                     precision-recall and Hamming-ball metrics need. One pass counts every item
 *                     (four interleaved histograms, no store-to-load chains); relevant items are
 *                     visited a second time through their set bits.
 *   hr_ap_index       AP@depth with tied items in database order. The database is scanned in
 *                     blocks of 64; each relevant item records its distance d, its position p
 *                     among the earlier items at distance d (the histogram so far, minus the
 *                     block's items at d from it onwards, found with one byte comparison over
 *                     the block) and its position among earlier relevant items at d. A second
 *                     pass over the relevant items alone sums precision = found / rank.
 *   hr_topk           the k nearest items by (distance, id): one pass keeps a threshold t
 *                     (accept only d < t once k items lie at d <= t) and a small buffer; a
 *                     counting sort orders the survivors. Ties at the cut keep the smallest ids.
 *
 * Every function returns 0, or -1 when its scratch memory cannot be allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))
#define BLOCK 64

INLINE uint32_t distance(const uint64_t *a, const uint64_t *b, const int nw) {
    uint32_t d = 0;
    for (int w = 0; w < nw; w++) d += (uint32_t)__builtin_popcountll(a[w] ^ b[w]);
    return d;
}

/* The relevance bitset (ceil(n / 64) words) of a query with label words `labels`: a row of
 * db_bits when the query has exactly one label, else the OR of its rows in `scratch`. */
static const uint64_t *relevance(const uint64_t *labels, int lw, const uint64_t *db_bits,
                                 int64_t nwd, uint64_t *scratch) {
    int64_t count = 0, only = 0;
    for (int w = 0; w < lw; w++) {
        count += __builtin_popcountll(labels[w]);
        if (labels[w]) only = 64 * (int64_t)w + __builtin_ctzll(labels[w]);
    }
    if (count == 1) return db_bits + only * nwd;
    memset(scratch, 0, nwd * sizeof(uint64_t));
    for (int w = 0; w < lw; w++)
        for (uint64_t bits = labels[w]; bits; bits &= bits - 1) {
            const uint64_t *row = db_bits + (64 * (int64_t)w + __builtin_ctzll(bits)) * nwd;
            for (int64_t j = 0; j < nwd; j++) scratch[j] |= row[j];
        }
    return scratch;
}

/* ------------------------------------------------------------------------- bucket counts */

INLINE void counts_one(const uint64_t *q, const uint64_t *db, int64_t n, const uint64_t *rel,
                       int bins, uint32_t *h, int64_t *out_n, int64_t *out_r, const int nw) {
    memset(h, 0, 5 * (size_t)bins * sizeof(uint32_t)); /* 4 interleaved + 1 relevant */
    uint32_t *restrict h0 = h, *restrict h1 = h + bins, *restrict h2 = h + 2 * bins;
    uint32_t *restrict h3 = h + 3 * bins, *restrict r = h + 4 * bins;
    int64_t x = 0;
    for (; x + 4 <= n; x += 4) {
        h0[distance(q, db + x * nw, nw)]++;
        h1[distance(q, db + (x + 1) * nw, nw)]++;
        h2[distance(q, db + (x + 2) * nw, nw)]++;
        h3[distance(q, db + (x + 3) * nw, nw)]++;
    }
    for (; x < n; x++) h0[distance(q, db + x * nw, nw)]++;
    for (int64_t b = 0; b < (n + 63) / 64; b++)
        for (uint64_t w = rel[b]; w; w &= w - 1)
            r[distance(q, db + (64 * b + __builtin_ctzll(w)) * nw, nw)]++;
    for (int d = 0; d < bins; d++) {
        out_n[d] = (int64_t)h0[d] + h1[d] + h2[d] + h3[d];
        out_r[d] = r[d];
    }
}

/* out_n, out_r: (nq, nbits + 1) int64 items and relevant items per distance. */
int hr_bucket_counts(const uint64_t *q, const uint64_t *db, int64_t nq, int64_t n, int nw,
                     int nbits, const uint64_t *q_labels, int lw, const uint64_t *db_bits,
                     int64_t *out_n, int64_t *out_r) {
    const int bins = nbits + 1;
    const int64_t nwd = (n + 63) / 64;
    uint32_t *h = malloc(5 * (size_t)bins * sizeof(uint32_t));
    uint64_t *scratch = malloc((size_t)(nwd + 1) * sizeof(uint64_t));
    if (!h || !scratch) {
        free(h);
        free(scratch);
        return -1;
    }
    for (int64_t i = 0; i < nq; i++) {
        const uint64_t *rel = relevance(q_labels + i * lw, lw, db_bits, nwd, scratch);
        if (nw == 1) counts_one(q + i, db, n, rel, bins, h, out_n + i * bins, out_r + i * bins, 1);
        else counts_one(q + i * nw, db, n, rel, bins, h, out_n + i * bins, out_r + i * bins, nw);
    }
    free(h);
    free(scratch);
    return 0;
}

/* ------------------------------------------------------------------------- AP, ties="index" */

/* How many of blk[u..BLOCK) equal d (blk holds one byte per item of a block). */
INLINE uint32_t same_from(const uint8_t *blk, int u, uint8_t d) {
#if defined(__SSE2__)
    const __m128i s = _mm_set1_epi8((char)d);
    uint64_t eq = 0;
    for (int v = 0; v < BLOCK / 16; v++) {
        __m128i bytes = _mm_load_si128((const __m128i *)(blk + 16 * v));
        eq |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, s)) << (16 * v);
    }
    return (uint32_t)__builtin_popcountll(eq >> u);
#else
    uint32_t c = 0;
    for (int v = u; v < BLOCK; v++) c += blk[v] == d;
    return c;
#endif
}

INLINE uint32_t same_from_wide(const uint32_t *blk, int u, uint32_t d) {
    uint32_t c = 0;
    for (int v = u; v < BLOCK; v++) c += blk[v] == d;
    return c;
}

#if defined(__AVX2__)
/* One-word codes with AVX2: the 64 distances of a block by nibble lookups, stored lane-major
 * (item u = 32h + 4k + L at byte 32h + 8L + k); AFTER[u] marks the bytes of items v >= u. */
#define POS(u) (((u) & 32) + 8 * ((u) & 3) + (((u) & 31) >> 2))
static uint64_t AFTER[BLOCK];

__attribute__((constructor)) static void init_after(void) {
    for (int u = 0; u < BLOCK; u++)
        for (int v = u; v < BLOCK; v++) AFTER[u] |= UINT64_C(1) << POS(v);
}

static inline void block_distances(uint64_t q, const uint64_t *row, uint8_t *out) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0F), qv = _mm256_set1_epi64x((long long)q);
    const __m256i zero = _mm256_setzero_si256();
    for (int half = 0; half < 2; half++) {
        __m256i acc = zero;
        for (int k = 0; k < 8; k++) { /* items 32 half + 4k + (0..3) */
            const __m256i x = _mm256_xor_si256(
                _mm256_loadu_si256((const __m256i *)(row + 32 * half + 4 * k)), qv);
            const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
            const __m256i x_hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
            const __m256i hi = _mm256_shuffle_epi8(lut, x_hi);
            const __m256i count = _mm256_sad_epu8(_mm256_add_epi8(lo, hi), zero); /* per word */
            acc = _mm256_or_si256(acc, _mm256_slli_epi64(count, 8 * k));
        }
        _mm256_store_si256((__m256i *)(out + 32 * half), acc);
    }
}

static inline uint64_t equal_bytes(const uint8_t *blk, uint8_t d) {
    const __m256i s = _mm256_set1_epi8((char)d);
    const __m256i a = _mm256_load_si256((const __m256i *)blk);
    const __m256i b = _mm256_load_si256((const __m256i *)(blk + 32));
    return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, s)) |
           (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, s)) << 32;
}
#endif

typedef struct { /* per relevant item: distance, position at d, relevant items before it at d */
    uint32_t *restrict d, *restrict p, *restrict j;
} Records;

/* One query: returns AP@depth. `h` holds 4 * bins histogram counters plus bins relevant ones. */
INLINE double ap_one(const uint64_t *q, const uint64_t *db, int64_t n, const uint64_t *rel,
                     int bins, int64_t depth, const double *inv, uint32_t *h, int64_t *before,
                     Records rec, const int nw) {
    memset(h, 0, 5 * (size_t)bins * sizeof(uint32_t));
    uint32_t *restrict h0 = h, *restrict h1 = h + bins, *restrict h2 = h + 2 * bins;
    uint32_t *restrict h3 = h + 3 * bins, *restrict rc = h + 4 * bins;
    const int narrow = bins <= 255; /* distances fit a byte (255 pads partial blocks) */
    uint64_t blk8[BLOCK / 8] __attribute__((aligned(32))); /* byte u of the block: item u's d */
    uint32_t blk32[BLOCK];
    int64_t m = 0;
    for (int64_t x0 = 0; x0 < n; x0 += BLOCK) {
        const int len = n - x0 < BLOCK ? (int)(n - x0) : BLOCK;
        const uint64_t *row = db + x0 * nw;
#if defined(__AVX2__)
        if (nw == 1 && len == BLOCK) {
            const uint8_t *bytes = (const uint8_t *)blk8;
            block_distances(q[0], row, (uint8_t *)blk8);
            for (int u = 0; u < BLOCK; u += 4)
                h0[bytes[u]]++, h1[bytes[u + 1]]++, h2[bytes[u + 2]]++, h3[bytes[u + 3]]++;
            for (uint64_t w = rel[x0 / BLOCK]; w; w &= w - 1) {
                const int u = __builtin_ctzll(w);
                const uint8_t d = bytes[POS(u)];
                const uint64_t same = equal_bytes(bytes, d) & AFTER[u]; /* items v >= u at d */
                const uint32_t later = (uint32_t)__builtin_popcountll(same);
                rec.d[m] = d;
                rec.p[m] = h0[d] + h1[d] + h2[d] + h3[d] - later;
                rec.j[m++] = rc[d]++;
            }
            continue;
        }
#endif
        if (narrow && len == BLOCK) {
            for (int u = 0; u < BLOCK; u += 8) { /* eight distances per word: one store */
                uint64_t packed = 0;
                for (int v = 0; v < 8; v += 4) {
                    const uint32_t d0 = distance(q, row + (u + v) * nw, nw);
                    const uint32_t d1 = distance(q, row + (u + v + 1) * nw, nw);
                    const uint32_t d2 = distance(q, row + (u + v + 2) * nw, nw);
                    const uint32_t d3 = distance(q, row + (u + v + 3) * nw, nw);
                    packed |= ((uint64_t)d0 | (uint64_t)d1 << 8 | (uint64_t)d2 << 16 |
                               (uint64_t)d3 << 24) << (8 * v);
                    h0[d0]++, h1[d1]++, h2[d2]++, h3[d3]++;
                }
                blk8[u / 8] = packed;
            }
        } else if (narrow) {
            uint8_t *bytes = (uint8_t *)blk8;
            for (int u = 0; u < BLOCK; u++)
                bytes[u] = u < len ? (uint8_t)distance(q, row + u * nw, nw) : 255;
            for (int u = 0; u < len; u++) h0[bytes[u]]++;
        } else {
            for (int u = 0; u < BLOCK; u++) {
                blk32[u] = u < len ? distance(q, row + u * nw, nw) : UINT32_MAX;
                if (u < len) h0[blk32[u]]++;
            }
        }
        for (uint64_t w = rel[x0 / BLOCK]; w; w &= w - 1) {
            const int u = __builtin_ctzll(w);
            uint32_t d, later;
            if (narrow) {
                d = (uint32_t)(blk8[u / 8] >> (8 * (u % 8))) & 0xFF;
                later = same_from((const uint8_t *)blk8, u, (uint8_t)d);
            } else {
                d = blk32[u];
                later = same_from_wide(blk32, u, d);
            }
            rec.d[m] = d;
            rec.p[m] = h0[d] + h1[d] + h2[d] + h3[d] - later;
            rec.j[m++] = rc[d]++;
        }
    }
    int64_t *rel_before = before + bins, items = 1, relevant = 1; /* both 1-based */
    for (int d = 0; d < bins; d++) {
        before[d] = items;
        rel_before[d] = relevant;
        items += (int64_t)h0[d] + h1[d] + h2[d] + h3[d];
        relevant += rc[d];
    }
    double sum0 = 0.0, sum1 = 0.0; /* two chains of additions */
    int64_t hits = 0;
    if (depth >= n) { /* every relevant item counts */
        int64_t i = 0;
        for (; i + 2 <= m; i += 2) {
            const uint32_t d0 = rec.d[i], d1 = rec.d[i + 1];
            sum0 += (double)(rel_before[d0] + rec.j[i]) * inv[before[d0] + rec.p[i]];
            sum1 += (double)(rel_before[d1] + rec.j[i + 1]) * inv[before[d1] + rec.p[i + 1]];
        }
        if (i < m) {
            const uint32_t d = rec.d[i];
            sum0 += (double)(rel_before[d] + rec.j[i]) * inv[before[d] + rec.p[i]];
        }
        hits = m;
    } else { /* only the relevant items ranked within depth */
        for (int64_t i = 0; i < m; i++) {
            const uint32_t d = rec.d[i];
            const int64_t rank = before[d] + rec.p[i];
            if (rank <= depth) {
                sum0 += (double)(rel_before[d] + rec.j[i]) * inv[rank];
                hits++;
            }
        }
    }
    return hits ? (sum0 + sum1) / (double)hits : 0.0;
}

/* inv: (n + 1,) with inv[r] = 1 / r. out: (nq,) AP@depth per query. */
int hr_ap_index(const uint64_t *q, const uint64_t *db, int64_t nq, int64_t n, int nw, int nbits,
                const uint64_t *q_labels, int lw, const uint64_t *db_bits, int64_t depth,
                const double *inv, double *out) {
    const int bins = nbits + 1;
    const int64_t nwd = (n + 63) / 64;
    uint32_t *h = malloc(5 * (size_t)bins * sizeof(uint32_t));
    int64_t *before = malloc(2 * (size_t)bins * sizeof(int64_t));
    uint32_t *rec = malloc(3 * (size_t)(n + 1) * sizeof(uint32_t));
    uint64_t *scratch = malloc((size_t)(nwd + 1) * sizeof(uint64_t));
    if (!h || !before || !rec || !scratch) {
        free(h);
        free(before);
        free(rec);
        free(scratch);
        return -1;
    }
    Records r = {rec, rec + n + 1, rec + 2 * (n + 1)};
    for (int64_t i = 0; i < nq; i++) {
        const uint64_t *rel = relevance(q_labels + i * lw, lw, db_bits, nwd, scratch);
        if (nw == 1) out[i] = ap_one(q + i, db, n, rel, bins, depth, inv, h, before, r, 1);
        else out[i] = ap_one(q + i * nw, db, n, rel, bins, depth, inv, h, before, r, nw);
    }
    free(h);
    free(before);
    free(rec);
    free(scratch);
    return 0;
}

/* ------------------------------------------------------------------------- top-k by (d, id) */

typedef struct {
    uint32_t t;     /* accept an item only when d < t */
    int64_t below;  /* buffered items with d < t */
    int64_t m;      /* buffered items */
    uint32_t *hist; /* buffered items per distance, nbits + 2 bins */
    uint32_t *buf_d;
    int64_t *buf_i;
} TopState;

/* Keep the items with d < t and the first (k - below) with d == t; drop the rest. */
static void compact(TopState *s, int64_t k, int nbits) {
    const int64_t quota = k - s->below;
    int64_t kept = 0, at_t = 0;
    for (int64_t j = 0; j < s->m; j++) {
        const uint32_t d = s->buf_d[j];
        if (d < s->t || (d == s->t && at_t++ < quota)) {
            s->buf_d[kept] = d;
            s->buf_i[kept++] = s->buf_i[j];
        }
    }
    for (int b = (int)s->t + 1; b <= nbits + 1; b++) s->hist[b] = 0;
    if (s->t <= (uint32_t)nbits && s->hist[s->t] > quota) s->hist[s->t] = (uint32_t)quota;
    s->m = kept;
}

INLINE void scan_block(TopState *s, const uint64_t *q, const uint64_t *db, int64_t x0, int64_t x1,
                       int64_t k, int64_t cap, int nbits, const int nw) {
    for (int64_t x = x0; x < x1; x++) {
        const uint32_t d = distance(q, db + x * nw, nw);
        if (d < s->t) {
            if (s->m == cap) compact(s, k, nbits);
            s->buf_d[s->m] = d;
            s->buf_i[s->m++] = x;
            s->hist[d]++;
            s->below++;
            while (s->below >= k) s->below -= s->hist[--s->t];
        }
    }
}

/* Ranked output of one query: counting sort of the survivors, padded with -1. */
static void finish(TopState *s, int64_t k, int nbits, int64_t *start, int32_t *out_d,
                   int64_t *out_i) {
    const int64_t quota = k - s->below;
    int64_t at_t = 0, total = 0;
    for (int b = 0; b <= nbits + 1; b++) {
        start[b] = total;
        if ((uint32_t)b < s->t) total += s->hist[b];
        else if ((uint32_t)b == s->t) total += s->hist[b] < quota ? s->hist[b] : quota;
    }
    for (int64_t j = 0; j < s->m; j++) {
        const uint32_t d = s->buf_d[j];
        if (d < s->t || (d == s->t && at_t++ < quota)) {
            const int64_t slot = start[d]++;
            out_d[slot] = (int32_t)d;
            out_i[slot] = s->buf_i[j];
        }
    }
    for (int64_t j = total; j < k; j++) {
        out_d[j] = -1;
        out_i[j] = -1;
    }
}

/* out_d: (nq, k) int32, out_i: (nq, k) int64, rows ranked by (distance, id). The database is
 * scanned in blocks of `block` items that stay in cache while every query of the chunk visits
 * them. */
int hr_topk(const uint64_t *q, const uint64_t *db, int64_t nq, int64_t n, int nw, int nbits,
            int64_t k, int64_t block, int32_t *out_d, int64_t *out_i) {
    const int bins = nbits + 2;
    int64_t cap = 2 * k + 64 < n ? 2 * k + 64 : n;
    if (cap < 1) cap = 1;
    TopState *st = calloc((size_t)nq, sizeof(TopState));
    uint32_t *hist = calloc((size_t)nq * bins, sizeof(uint32_t));
    uint32_t *buf_d = malloc((size_t)nq * cap * sizeof(uint32_t));
    int64_t *buf_i = malloc((size_t)nq * cap * sizeof(int64_t));
    int64_t *start = malloc((size_t)bins * sizeof(int64_t));
    if (!st || !hist || !buf_d || !buf_i || !start) {
        free(st);
        free(hist);
        free(buf_d);
        free(buf_i);
        free(start);
        return -1;
    }
    for (int64_t i = 0; i < nq; i++) {
        st[i].t = (uint32_t)nbits + 1;
        st[i].hist = hist + i * bins;
        st[i].buf_d = buf_d + i * cap;
        st[i].buf_i = buf_i + i * cap;
    }
    if (block < 1) block = n;
    for (int64_t x0 = 0; x0 < n; x0 += block) {
        const int64_t x1 = x0 + block < n ? x0 + block : n;
        for (int64_t i = 0; i < nq; i++) {
            if (nw == 1) scan_block(st + i, q + i, db, x0, x1, k, cap, nbits, 1);
            else scan_block(st + i, q + i * nw, db, x0, x1, k, cap, nbits, nw);
        }
    }
    for (int64_t i = 0; i < nq; i++) finish(st + i, k, nbits, start, out_d + i * k, out_i + i * k);
    free(st);
    free(hist);
    free(buf_d);
    free(buf_i);
    free(start);
    return 0;
}
