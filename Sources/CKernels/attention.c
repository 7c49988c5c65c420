// Self-attention of one unpadded sequence, head by head. Sequences are short (10–250
// tokens) and heads narrow (32–64), so Q·Kᵀ and P·V are too small for the GEMM driver's
// packing to pay: the AVX2 body works on the qkv rows in place, with only Kᵀ of the head
// copied so eight keys' scores come out of one FMA chain.
#include "ckernels.h"
#include "vecmath.h"
#include <math.h>
#include <float.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t quern_attention_scratch(size_t seq, size_t hd) { return hd * round8(seq) + round8(seq); }

void quern_attention_seq_scalar(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                float *scratch, float *out) {
    const size_t hidden = heads * hd, row = 3 * hidden;
    float *scores = scratch;
    for (size_t h = 0; h < heads; h++) {
        for (size_t i = 0; i < seq; i++) {
            const float *q = qkv + i * row + h * hd;
            float mx = -FLT_MAX;
            for (size_t j = 0; j < seq; j++) {
                const float *k = qkv + j * row + hidden + h * hd;
                float s = 0;
                for (size_t d = 0; d < hd; d++) s += q[d] * k[d];
                scores[j] = s * scale;
                mx = scores[j] > mx ? scores[j] : mx;
            }
            float sum = 0;
            for (size_t j = 0; j < seq; j++) { scores[j] = expf(scores[j] - mx); sum += scores[j]; }
            float *o = out + i * hidden + h * hd;
            for (size_t d = 0; d < hd; d++) o[d] = 0;
            for (size_t j = 0; j < seq; j++) {
                const float *v = qkv + j * row + 2 * hidden + h * hd;
                float p = scores[j] / sum;
                for (size_t d = 0; d < hd; d++) o[d] += p * v[d];
            }
        }
    }
}

#if defined(__x86_64__)

TARGET_AVX2 static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

TARGET_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET_AVX2 void quern_attention_seq_avx2(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                          float *scratch, float *out) {
    if (hd % 8 != 0) {
        quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
        return;
    }
    const size_t hidden = heads * hd, row = 3 * hidden, sp = round8(seq);
    float *kt = scratch, *scores = scratch + hd * sp;
    for (size_t h = 0; h < heads; h++) {
        // Kᵀ of this head, padded to whole vectors of keys with zeros.
        for (size_t d = 0; d < hd; d++) {
            float *dst = kt + d * sp;
            for (size_t j = 0; j < seq; j++) dst[j] = qkv[j * row + hidden + h * hd + d];
            for (size_t j = seq; j < sp; j++) dst[j] = 0;
        }
        for (size_t i = 0; i < seq; i++) {
            const float *q = qkv + i * row + h * hd;
            // Scores, eight keys at a time; d split over two chains to hide FMA latency.
            __m256 vmax = _mm256_set1_ps(-FLT_MAX);
            for (size_t j = 0; j < sp; j += 8) {
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                for (size_t d = 0; d < hd; d += 2) {
                    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d), _mm256_loadu_ps(kt + d * sp + j), a0);
                    a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d + 1), _mm256_loadu_ps(kt + (d + 1) * sp + j), a1);
                }
                __m256 s = _mm256_mul_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(scale));
                if (j + 8 > seq) {  // the padded keys take no part
                    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                    __m256 real = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(seq - j)), lane));
                    s = _mm256_blendv_ps(_mm256_set1_ps(-FLT_MAX), s, real);
                }
                _mm256_storeu_ps(scores + j, s);
                vmax = _mm256_max_ps(vmax, s);
            }
            __m256 mx = _mm256_set1_ps(hmax8(vmax)), vsum = _mm256_setzero_ps();
            for (size_t j = 0; j < sp; j += 8) {
                __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(scores + j), mx));
                if (j + 8 > seq) {
                    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                    __m256 real = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(seq - j)), lane));
                    e = _mm256_and_ps(e, real);
                }
                _mm256_storeu_ps(scores + j, e);
                vsum = _mm256_add_ps(vsum, e);
            }
            const __m256 inv = _mm256_set1_ps(1.0f / hsum8(vsum));
            // Context: Σ_j p_j · v_j, eight dimensions at a time, j split over two chains.
            float *o = out + i * hidden + h * hd;
            const float *v = qkv + 2 * hidden + h * hd;
            for (size_t c = 0; c < hd; c += 8) {
                __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
                size_t j = 0;
                for (; j + 2 <= seq; j += 2) {
                    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + j), _mm256_loadu_ps(v + j * row + c), c0);
                    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + j + 1), _mm256_loadu_ps(v + (j + 1) * row + c), c1);
                }
                if (j < seq) c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + j), _mm256_loadu_ps(v + j * row + c), c0);
                _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_add_ps(c0, c1), inv));
            }
        }
    }
}

#else

void quern_attention_seq_avx2(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                              float *scratch, float *out) {
    quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
}

#endif
