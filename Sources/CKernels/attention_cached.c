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
// scores: first + rows floats at least.

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

// o[0 : 8V] = inv · Σ_j p[j] · v_j[0 : 8V], with V (a constant at each call) vectors of
// sums held in registers across all keys.
TARGET_AVX2 static inline __attribute__((always_inline)) void
weigh_values_avx2(const int V, const float *p, size_t n, const float *v, size_t kv_stride, float inv, float *o) {
    __m256 acc[8];
    for (int t = 0; t < V; t++) acc[t] = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j++) {
        const __m256 pj = _mm256_broadcast_ss(p + j);
        const float *vj = v + j * kv_stride;
        if (j + KV_AHEAD < n) prefetch_row(vj + KV_AHEAD * kv_stride, (size_t)V * 8);
        for (int t = 0; t < V; t++) acc[t] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * t), acc[t]);
    }
    const __m256 scale = _mm256_set1_ps(inv);
    for (int t = 0; t < V; t++) _mm256_storeu_ps(o + 8 * t, _mm256_mul_ps(acc[t], scale));
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
    const __m128 scale4 = _mm_set1_ps(scale);
    for (size_t i = 0; i < rows; i++) {
        const size_t pos = first + i, start = window && pos + 1 > window ? pos + 1 - window : 0, n = pos + 1 - start;
        for (size_t h = 0; h < heads; h++) {
            const float *qh = q + i * q_stride + h * hd;
            const size_t kv = (h / group) * hd;
            const float *kbase = keys + start * kv_stride + kv, *vbase = values + start * kv_stride + kv;
            __m256 qv[MAX_HD / 8];
            for (size_t t = 0; t < vecs; t++) qv[t] = _mm256_loadu_ps(qh + 8 * t);
            // Scores, four keys at a time, and their maximum.
            __m128 vbest = _mm_set1_ps(-FLT_MAX);
            size_t j = 0;
            for (; j + 4 <= n; j += 4) {
                const float *k0 = kbase + j * kv_stride, *k1 = k0 + kv_stride, *k2 = k1 + kv_stride,
                            *k3 = k2 + kv_stride;
                if (j + KV_AHEAD + 4 <= n)
                    for (size_t a = 0; a < 4; a++) prefetch_row(k0 + (KV_AHEAD + a) * kv_stride, hd);
                __m256 a0 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k0)), a1 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k1)),
                       a2 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k2)), a3 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k3));
                for (size_t t = 1; t < vecs; t++) {
                    a0 = _mm256_fmadd_ps(qv[t], _mm256_loadu_ps(k0 + 8 * t), a0);
                    a1 = _mm256_fmadd_ps(qv[t], _mm256_loadu_ps(k1 + 8 * t), a1);
                    a2 = _mm256_fmadd_ps(qv[t], _mm256_loadu_ps(k2 + 8 * t), a2);
                    a3 = _mm256_fmadd_ps(qv[t], _mm256_loadu_ps(k3 + 8 * t), a3);
                }
                const __m128 s = _mm_mul_ps(reduce4_avx2(a0, a1, a2, a3), scale4);
                _mm_storeu_ps(scores + j, s);
                vbest = _mm_max_ps(vbest, s);
            }
            vbest = _mm_max_ps(vbest, _mm_movehl_ps(vbest, vbest));
            float best = _mm_cvtss_f32(_mm_max_ss(vbest, _mm_movehdup_ps(vbest)));
            for (; j < n; j++) {
                const float *k = kbase + j * kv_stride;
                __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k));
                for (size_t t = 1; t < vecs; t++) acc = _mm256_fmadd_ps(qv[t], _mm256_loadu_ps(k + 8 * t), acc);
                const float s = hsum_avx2(acc) * scale;
                scores[j] = s;
                if (s > best) best = s;
            }
            const __m256 mx = _mm256_set1_ps(best);
            __m256 vsum = _mm256_setzero_ps();
            for (j = 0; j + 8 <= n; j += 8) {
                __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(scores + j), mx));
                _mm256_storeu_ps(scores + j, e);
                vsum = _mm256_add_ps(vsum, e);
            }
            float total = hsum_avx2(vsum);
            for (; j < n; j++) {
                scores[j] = expf(scores[j] - best);
                total += scores[j];
            }
            // Values in chunks of up to 64 floats, so each chunk's sums stay in registers.
            const float inv = 1.0f / total;
            float *o = out + i * out_stride + h * hd;
            for (size_t c = 0; c < vecs; c += 8) {
                switch (vecs - c < 8 ? vecs - c : 8) {
                case 1: weigh_values_avx2(1, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                case 2: weigh_values_avx2(2, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                case 3: weigh_values_avx2(3, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                case 4: weigh_values_avx2(4, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                case 5: weigh_values_avx2(5, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                case 6: weigh_values_avx2(6, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                case 7: weigh_values_avx2(7, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
                default: weigh_values_avx2(8, scores, n, vbase + 8 * c, kv_stride, inv, o + 8 * c); break;
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
