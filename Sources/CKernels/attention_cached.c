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
        for (size_t h = 0; h < heads; h++) {
            const float *qh = q + i * q_stride + h * hd;
            const size_t kv = (h / group) * hd;
            __m256 qv[MAX_HD / 8];
            for (size_t t = 0; t < vecs; t++) qv[t] = _mm256_loadu_ps(qh + 8 * t);
            __m256 vbest = _mm256_set1_ps(-FLT_MAX);
            float best = -FLT_MAX;
            for (size_t j = 0; j < n; j++) {
                const float *k = keys + (start + j) * kv_stride + kv;
                __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(k));
                for (size_t t = 1; t < vecs; t++) acc = _mm256_fmadd_ps(qv[t], _mm256_loadu_ps(k + 8 * t), acc);
                const float s = hsum_avx2(acc) * scale;
                scores[j] = s;
                if (s > best) best = s;
            }
            (void)vbest;
            const __m256 mx = _mm256_set1_ps(best);
            __m256 vsum = _mm256_setzero_ps();
            size_t j = 0;
            for (; j + 8 <= n; j += 8) {
                __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(scores + j), mx));
                _mm256_storeu_ps(scores + j, e);
                vsum = _mm256_add_ps(vsum, e);
            }
            float total = hsum_avx2(vsum);
            for (; j < n; j++) {
                scores[j] = expf(scores[j] - best);
                total += scores[j];
            }
            __m256 acc[MAX_HD / 8];
            for (size_t t = 0; t < vecs; t++) acc[t] = _mm256_setzero_ps();
            for (j = 0; j < n; j++) {
                const __m256 p = _mm256_broadcast_ss(scores + j);
                const float *v = values + (start + j) * kv_stride + kv;
                for (size_t t = 0; t < vecs; t++) acc[t] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * t), acc[t]);
            }
            const __m256 inv = _mm256_set1_ps(1.0f / total);
            float *o = out + i * out_stride + h * hd;
            for (size_t t = 0; t < vecs; t++) _mm256_storeu_ps(o + 8 * t, _mm256_mul_ps(acc[t], inv));
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
