// Self-attention of one unpadded sequence, head by head. Sequences are short (10–250
// tokens) and heads narrow (32–64), so Q·Kᵀ and P·V are too small for the GEMM driver's
// packing to pay: the AVX2 body works on the qkv rows in place, with only Kᵀ of the head
// copied, and register-tiles both products (4 queries × 16 keys, 2 queries × 32
// dimensions) so each loaded vector feeds several FMAs.
#include "ckernels.h"
#include "vecmath.h"
#include <math.h>
#include <float.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

// Enough for every body here: at most (2·hd + 12) floats a key padded to whole 16-float
// vectors (the bf16 body's operands and scores).
size_t quern_attention_scratch(size_t seq, size_t hd) { return (2 * hd + 16) * round16(seq); }

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

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

// Scores of four query rows against sixteen keys, d over the head: eight accumulators,
// two loads of Kᵀ and four broadcasts of Q per step, so FMAs, not loads, set the pace.
// Rows past the sequence repeat its last row (computed, never stored).
TARGET_AVX2 static void scores_4rows(const float *const q[4], const float *kt, size_t sp, size_t hd, float scale,
                                     size_t seq, float *s, size_t lds) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 vscale = _mm256_set1_ps(scale), lowest = _mm256_set1_ps(-FLT_MAX);
    for (size_t j = 0; j < sp; j += 16) {
        const int two = j + 8 < sp;  // sp is a multiple of 8: one or two vectors of keys
        __m256 acc[4][2];
        for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (size_t d = 0; d < hd; d++) {
            const float *row = kt + d * sp + j;
            __m256 k0 = _mm256_loadu_ps(row), k1 = two ? _mm256_loadu_ps(row + 8) : _mm256_setzero_ps();
            for (int r = 0; r < 4; r++) {
                __m256 qb = _mm256_broadcast_ss(q[r] + d);
                acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
            }
        }
        for (int half = 0; half < 1 + two; half++) {
            size_t jj = j + 8 * half;
            // Keys past the sequence (Kᵀ's zero padding) take no part.
            __m256 real = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(seq - jj)), lane));
            for (int r = 0; r < 4; r++)
                _mm256_storeu_ps(s + r * lds + jj, _mm256_blendv_ps(lowest, _mm256_mul_ps(acc[r][half], vscale), real));
        }
    }
}

// Row softmax in place over sp scores (padded ones are −FLT_MAX and become 0); returns
// 1 / the sum, left for the context to apply.
TARGET_AVX2 static float softmax_row(float *s, size_t sp) {
    __m256 vmax = _mm256_set1_ps(-FLT_MAX);
    for (size_t j = 0; j < sp; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
    __m256 mx = _mm256_set1_ps(hmax_avx2(vmax)), vsum = _mm256_setzero_ps();
    for (size_t j = 0; j < sp; j += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), mx));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    return 1.0f / hsum_avx2(vsum);
}

TARGET_AVX2 void quern_attention_seq_avx2(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                          float *scratch, float *out) {
    if (hd % 8 != 0) {
        quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
        return;
    }
    const size_t hidden = heads * hd, row = 3 * hidden, sp = round8(seq);
    float *kt = scratch, *s = scratch + hd * sp;  // s: four rows of sp scores
    for (size_t h = 0; h < heads; h++) {
        // Kᵀ of this head, padded to whole vectors of keys with zeros.
        quern_transpose_f32_avx2(qkv + hidden + h * hd, row, seq, hd, kt, sp);
        for (size_t d = 0; d < hd; d++)
            for (size_t j = seq; j < sp; j++) kt[d * sp + j] = 0;
        const float *v = qkv + 2 * hidden + h * hd;
        for (size_t i0 = 0; i0 < seq; i0 += 4) {
            const size_t rows = seq - i0 < 4 ? seq - i0 : 4;
            const float *q[4];
            for (size_t r = 0; r < 4; r++) q[r] = qkv + (i0 + (r < rows ? r : rows - 1)) * row + h * hd;
            scores_4rows(q, kt, sp, hd, scale, seq, s, sp);
            float inv[4];
            for (size_t r = 0; r < rows; r++) inv[r] = softmax_row(s + r * sp, sp);
            // Context, two rows at a time: Σ_j p_j · v_j, 32 dimensions (or 8) a pass.
            for (size_t r = 0; r < rows; r += 2) {
                const int pair = r + 1 < rows;
                const float *p0 = s + r * sp, *p1 = s + (pair ? r + 1 : r) * sp;
                float *o0 = out + (i0 + r) * hidden + h * hd, *o1 = out + (i0 + r + pair) * hidden + h * hd;
                size_t c = 0;
                for (; c + 32 <= hd; c += 32) {
                    __m256 a[2][4];
                    for (int t = 0; t < 4; t++) a[0][t] = a[1][t] = _mm256_setzero_ps();
                    for (size_t j = 0; j < seq; j++) {
                        const float *vj = v + j * row + c;
                        __m256 b0 = _mm256_broadcast_ss(p0 + j), b1 = _mm256_broadcast_ss(p1 + j);
                        for (int t = 0; t < 4; t++) {
                            __m256 vv = _mm256_loadu_ps(vj + 8 * t);
                            a[0][t] = _mm256_fmadd_ps(b0, vv, a[0][t]);
                            a[1][t] = _mm256_fmadd_ps(b1, vv, a[1][t]);
                        }
                    }
                    for (int t = 0; t < 4; t++) {
                        _mm256_storeu_ps(o1 + c + 8 * t, _mm256_mul_ps(a[1][t], _mm256_set1_ps(inv[pair ? r + 1 : r])));
                        _mm256_storeu_ps(o0 + c + 8 * t, _mm256_mul_ps(a[0][t], _mm256_set1_ps(inv[r])));
                    }
                }
                for (; c < hd; c += 8) {
                    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                    for (size_t j = 0; j < seq; j++) {
                        __m256 vv = _mm256_loadu_ps(v + j * row + c);
                        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p0 + j), vv, a0);
                        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(p1 + j), vv, a1);
                    }
                    _mm256_storeu_ps(o1 + c, _mm256_mul_ps(a1, _mm256_set1_ps(inv[pair ? r + 1 : r])));
                    _mm256_storeu_ps(o0 + c, _mm256_mul_ps(a0, _mm256_set1_ps(inv[r])));
                }
            }
        }
    }
}

// ---- 16-float bodies, fp32 and bf16 (attention_wide_body.h) ------------------------

// Eight query rows a pass: 16 accumulators, and each 64-byte load of Kᵀ or V feeds
// eight FMAs through broadcasts folded into the FMAs.
enum { AW_ROWS = 8 };

#define AW_TARGET TARGET_AVX512
#define AW_NAME attention_wide_avx512
#define AW_BF16 0
#define VF z16
#define V(op) z16_##op
#include "attention_wide_body.h"

#define AW_TARGET TARGET_AVX2
#define AW_NAME attention_wide_emulated
#define AW_BF16 0
#define VF e16
#define V(op) e16_##op
#include "attention_wide_body.h"

#define AW_TARGET TARGET_AVX512BF16
#define AW_NAME attention_bf16_avx512
#define AW_BF16 1
#define VF z16
#define V(op) z16_##op
#include "attention_wide_body.h"

#define AW_TARGET TARGET_AVX2
#define AW_NAME attention_bf16_emulated
#define AW_BF16 1
#define VF e16
#define V(op) e16_##op
#include "attention_wide_body.h"

// Below this many tokens the fp32 body runs: converting Q, K and V to bf16 costs more
// than the halved products save on short texts (Zen 5: attention took 7.6 % of an int8
// embed job over 12-token lines in bf16, 6.5 % in fp32; on 155-token texts bf16 wins).
// The crossover was not measured finely; 32 lies between the two.
enum { BF16_MIN_SEQ = 32 };

void quern_attention_seq_bf16_avx512(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                     float *scratch, float *out) {
    if (hd % 16 != 0) quern_attention_seq_avx2(qkv, seq, heads, hd, scale, scratch, out);
    else if (seq < BF16_MIN_SEQ) attention_wide_avx512(qkv, seq, heads, hd, scale, scratch, out);
    else attention_bf16_avx512(qkv, seq, heads, hd, scale, scratch, out);
}

void quern_attention_seq_bf16_emulated(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                       float *scratch, float *out) {
    if (hd % 16 != 0) quern_attention_seq_avx2(qkv, seq, heads, hd, scale, scratch, out);
    else if (seq < BF16_MIN_SEQ) attention_wide_emulated(qkv, seq, heads, hd, scale, scratch, out);
    else attention_bf16_emulated(qkv, seq, heads, hd, scale, scratch, out);
}

void quern_attention_seq_avx512(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                float *scratch, float *out) {
    if (hd % 16 == 0) attention_wide_avx512(qkv, seq, heads, hd, scale, scratch, out);
    else quern_attention_seq_avx2(qkv, seq, heads, hd, scale, scratch, out);
}

void quern_attention_seq_avx512_emulated(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                         float *scratch, float *out) {
    if (hd % 16 == 0) attention_wide_emulated(qkv, seq, heads, hd, scale, scratch, out);
    else quern_attention_seq_avx2(qkv, seq, heads, hd, scale, scratch, out);
}

#else

void quern_attention_seq_avx512(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                float *scratch, float *out) {
    quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
}
void quern_attention_seq_avx512_emulated(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                         float *scratch, float *out) {
    quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
}
void quern_attention_seq_bf16_avx512(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                     float *scratch, float *out) {
    quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
}
void quern_attention_seq_bf16_emulated(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                       float *scratch, float *out) {
    quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
}
void quern_attention_seq_avx2(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                              float *scratch, float *out) {
    quern_attention_seq_scalar(qkv, seq, heads, hd, scale, scratch, out);
}

#endif
