#include "ckernels.h"
#include "vecmath.h"
#include <float.h>
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Causal attention of new query rows against one sequence's key/value cache (decoding
// and chunked prefill). Query row i sits at position first + i and attends keys
// max(0, first + i − window + 1) … first + i (all of them when window is 0); query head h
// reads key/value head h / (heads / kv_heads). Each (row, head) is computed alone, in a
// fixed order, so a row's output does not depend on which rows share the call.
// scores: 4 · (first + rows) floats at least (quern_attention_cached_scratch).

size_t quern_attention_cached_scratch(size_t positions) { return 4 * (positions ? positions : 1); }

void quern_attention_cached_scalar(const float *q, size_t q_stride, size_t rows, size_t first, const float *keys,
                                   const float *values, size_t heads, size_t kv_heads, size_t hd, size_t window,
                                   float scale, float *out, size_t out_stride, float *scores) {
    const size_t group = heads / kv_heads, kv_stride = kv_heads * hd;
    for (size_t i = 0; i < rows; i++) {
        const size_t pos = first + i, start = window && pos + 1 > window ? pos + 1 - window : 0;
        for (size_t h = 0; h < heads; h++) {
            const float *qh = q + i * q_stride + h * hd;
            const size_t kv = (h / group) * hd;
            float best = -FLT_MAX;
            for (size_t j = start; j <= pos; j++) {
                const float *k = keys + j * kv_stride + kv;
                float s = 0;
                for (size_t d = 0; d < hd; d++) s += qh[d] * k[d];
                s *= scale;
                scores[j - start] = s;
                if (s > best) best = s;
            }
            float total = 0;
            for (size_t j = 0; j <= pos - start; j++) {
                scores[j] = expf(scores[j] - best);
                total += scores[j];
            }
            float *o = out + i * out_stride + h * hd;
            for (size_t d = 0; d < hd; d++) o[d] = 0;
            const float inv = 1.0f / total;
            for (size_t j = start; j <= pos; j++) {
                const float p = scores[j - start] * inv;
                const float *v = values + j * kv_stride + kv;
                for (size_t d = 0; d < hd; d++) o[d] += p * v[d];
            }
        }
    }
}

#if defined(__x86_64__)

// Head sizes up to this many floats keep the output in registers (SmolLM2, Llama: 64,
// 128); larger or ragged ones take the scalar twin.
enum { MAX_HD = 128 };

// Four keys' dot products reduced together: 8 partial sums per key become one vector of
// four scores with three horizontal adds, instead of a full reduction per key.
TARGET_AVX2 static inline __m128 reduce4_avx2(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Keys (and values) this many positions ahead are prefetched: a sequence's cache for one
// layer is read once per step and is rarely still in L2, and a head reads a 256-byte
// slice of each 768-byte position (SmolLM2), a stride the hardware prefetcher follows late.
enum { KV_AHEAD = 8 };

TARGET_AVX2 static inline void prefetch_row(const float *p, size_t hd) {
    for (size_t d = 0; d < hd; d += 16) _mm_prefetch((const char *)(p + d), _MM_HINT_T0);
}

// Query heads of one key/value head handled together (grouped-query attention): each key
// and value row is read once for all of them instead of once per head. With single-head
// passes the rows of a long cache came from L2 or memory once per head.
enum { HB = 4 };

// The scores of B heads (B ≤ HB, a constant at each call) against keys j and j + 1:
// lane b of *s0 (*s1) is head b's score for key j (j + 1). Each lane is reduced by the same
// horizontal adds whichever heads share it, so a score does not depend on B.
TARGET_AVX2 static inline __attribute__((always_inline)) void
score_pair_avx2(const int B, const float *const *qh, const float *k0, const float *k1, size_t vecs, __m128 scale4,
                __m128 *s0, __m128 *s1) {
    __m256 a0[HB], a1[HB];
    for (int b = 0; b < HB; b++) a0[b] = a1[b] = _mm256_setzero_ps();
    for (size_t t = 0; t < vecs; t++) {
        const __m256 x0 = _mm256_loadu_ps(k0 + 8 * t), x1 = _mm256_loadu_ps(k1 + 8 * t);
        for (int b = 0; b < B; b++) {
            const __m256 qb = _mm256_loadu_ps(qh[b] + 8 * t);
            a0[b] = _mm256_fmadd_ps(qb, x0, a0[b]);
            a1[b] = _mm256_fmadd_ps(qb, x1, a1[b]);
        }
    }
    *s0 = _mm_mul_ps(reduce4_avx2(a0[0], a0[1], a0[2], a0[3]), scale4);
    *s1 = _mm_mul_ps(reduce4_avx2(a1[0], a1[1], a1[2], a1[3]), scale4);
}

// o_b[0 : 8V] = inv_b · Σ_j p_b[j] · v_j[0 : 8V] for B heads (p_b = p + b·n), the B × V
// vectors of sums held in registers across all keys; each value row is loaded once for
// all B heads. The first pass prefetches `prefetch` floats of the rows ahead (the whole
// head), the others none (0).
TARGET_AVX2 static inline __attribute__((always_inline)) void
weigh_values_avx2(const int B, const int V, const float *p, size_t n, const float *v, size_t kv_stride,
                  const float *inv, float *const *o, size_t offset, size_t prefetch) {
    __m256 acc[HB][8];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < V; t++) acc[b][t] = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j++) {
        const float *vj = v + j * kv_stride;
        if (prefetch && j + KV_AHEAD < n) prefetch_row(vj + KV_AHEAD * kv_stride, prefetch);
        __m256 x[8];
        for (int t = 0; t < V; t++) x[t] = _mm256_loadu_ps(vj + 8 * t);
        for (int b = 0; b < B; b++) {
            const __m256 pb = _mm256_broadcast_ss(p + b * n + j);
            for (int t = 0; t < V; t++) acc[b][t] = _mm256_fmadd_ps(pb, x[t], acc[b][t]);
        }
    }
    for (int b = 0; b < B; b++) {
        const __m256 scale = _mm256_set1_ps(inv[b]);
        for (int t = 0; t < V; t++) _mm256_storeu_ps(o[b] + offset + 8 * t, _mm256_mul_ps(acc[b][t], scale));
    }
}

// Value vectors per pass for B heads: B · V sums plus V value vectors and a broadcast fit
// the 16 ymm registers.
#define VALUES_PER_PASS(B) ((B) == 1 ? 8 : (B) == 2 ? 6 : (B) == 3 ? 4 : 3)

// All passes over the values for B heads, each pass as wide as the registers allow.
#define WEIGH_CASE(B, W)                                                                                            \
    case W: weigh_values_avx2(B, W, scores, n, vbase + 8 * c, kv_stride, inv, o, 8 * c, c == 0 ? 8 * vecs : 0); break;
TARGET_AVX2 static inline __attribute__((always_inline)) void
weigh_all_avx2(const int B, const float *scores, size_t n, const float *vbase, size_t kv_stride, size_t vecs,
               const float *inv, float *const *o) {
    const size_t per = VALUES_PER_PASS(B);
    for (size_t c = 0; c < vecs; c += per) {
        switch (vecs - c < per ? vecs - c : per) {
            WEIGH_CASE(B, 1)
            WEIGH_CASE(B, 2)
            WEIGH_CASE(B, 3)
            WEIGH_CASE(B, 4)
            WEIGH_CASE(B, 5)
            WEIGH_CASE(B, 6)
            WEIGH_CASE(B, 7)
        default: weigh_values_avx2(B, 8, scores, n, vbase + 8 * c, kv_stride, inv, o, 8 * c, c == 0 ? 8 * vecs : 0); break;
        }
    }
}
#undef WEIGH_CASE

// One query row against the cache for B heads of one key/value head.
TARGET_AVX2 static inline __attribute__((always_inline)) void
attend_heads_avx2(const int B, const float *const *qh, const float *kbase, const float *vbase, size_t n,
                  size_t kv_stride, size_t vecs, float scale, float *const *o, float *scores) {
    const __m128 scale4 = _mm_set1_ps(scale);
    __m128 best4 = _mm_set1_ps(-FLT_MAX);  // lane b: head b's largest score
    for (size_t j = 0; j < n; j += 2) {
        const int two = j + 1 < n;
        const float *k0 = kbase + j * kv_stride, *k1 = two ? k0 + kv_stride : k0;
        if (j + KV_AHEAD + 2 <= n) {
            prefetch_row(k0 + KV_AHEAD * kv_stride, vecs * 8);
            prefetch_row(k0 + (KV_AHEAD + 1) * kv_stride, vecs * 8);
        }
        __m128 s0, s1;
        score_pair_avx2(B, qh, k0, k1, vecs, scale4, &s0, &s1);
        float t0[4], t1[4];
        _mm_storeu_ps(t0, s0);
        _mm_storeu_ps(t1, s1);
        for (int b = 0; b < B; b++) scores[b * n + j] = t0[b];
        best4 = _mm_max_ps(best4, s0);
        if (two) {
            for (int b = 0; b < B; b++) scores[b * n + j + 1] = t1[b];
            best4 = _mm_max_ps(best4, s1);
        }
    }
    float best[4], inv[HB];
    _mm_storeu_ps(best, best4);
    for (int b = 0; b < B; b++) {
        float *sb = scores + b * n;
        const __m256 mx = _mm256_set1_ps(best[b]);
        __m256 vsum = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(sb + j), mx));
            _mm256_storeu_ps(sb + j, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        float total = hsum_avx2(vsum);
        for (; j < n; j++) {
            sb[j] = expf(sb[j] - best[b]);
            total += sb[j];
        }
        inv[b] = 1.0f / total;
    }
    weigh_all_avx2(B, scores, n, vbase, kv_stride, vecs, inv, o);
}

TARGET_AVX2 void quern_attention_cached_avx2(const float *q, size_t q_stride, size_t rows, size_t first,
                                             const float *keys, const float *values, size_t heads, size_t kv_heads,
                                             size_t hd, size_t window, float scale, float *out, size_t out_stride,
                                             float *scores) {
    if (hd % 8 != 0 || hd > MAX_HD) {
        quern_attention_cached_scalar(q, q_stride, rows, first, keys, values, heads, kv_heads, hd, window, scale, out,
                                      out_stride, scores);
        return;
    }
    const size_t group = heads / kv_heads, kv_stride = kv_heads * hd, vecs = hd / 8;
    for (size_t i = 0; i < rows; i++) {
        const size_t pos = first + i, start = window && pos + 1 > window ? pos + 1 - window : 0, n = pos + 1 - start;
        for (size_t g = 0; g < kv_heads; g++) {
            const float *kbase = keys + start * kv_stride + g * hd, *vbase = values + start * kv_stride + g * hd;
            for (size_t h0 = g * group; h0 < (g + 1) * group; h0 += HB) {
                const size_t count = (g + 1) * group - h0 < HB ? (g + 1) * group - h0 : HB;
                const float *qh[HB];
                float *o[HB];
                for (size_t b = 0; b < count; b++) {
                    qh[b] = q + i * q_stride + (h0 + b) * hd;
                    o[b] = out + i * out_stride + (h0 + b) * hd;
                }
                switch (count) {
                case 1: attend_heads_avx2(1, qh, kbase, vbase, n, kv_stride, vecs, scale, o, scores); break;
                case 2: attend_heads_avx2(2, qh, kbase, vbase, n, kv_stride, vecs, scale, o, scores); break;
                case 3: attend_heads_avx2(3, qh, kbase, vbase, n, kv_stride, vecs, scale, o, scores); break;
                default: attend_heads_avx2(4, qh, kbase, vbase, n, kv_stride, vecs, scale, o, scores); break;
                }
            }
        }
    }
}

#else

void quern_attention_cached_avx2(const float *q, size_t q_stride, size_t rows, size_t first, const float *keys,
                                 const float *values, size_t heads, size_t kv_heads, size_t hd, size_t window,
                                 float scale, float *out, size_t out_stride, float *scores) {
    quern_attention_cached_scalar(q, q_stride, rows, first, keys, values, heads, kv_heads, hd, window, scale, out,
                                  out_stride, scores);
}

#endif
