#include "ckernels.h"
#include "vecmath.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

void quern_spmm_csr_scalar(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                           const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate) {
    for (size_t n = n0; n < n1; n++) {
        float *y = yt + n * ldy;
        if (!accumulate)
            for (size_t i = 0; i < mb; i++) y[i] = 0;
        for (int32_t e = rowptr[n]; e < rowptr[n + 1]; e++) {
            const float *x = xt + (size_t)cols[e] * ldx;
            for (size_t i = 0; i < mb; i++) y[i] += vals[e] * x[i];
        }
    }
}

static inline int32_t dot_pair(uint32_t x, uint32_t w) {
    return (int32_t)(x & 0xFFFF) * (int16_t)(w & 0xFFFF) + (int32_t)(x >> 16) * (int16_t)(w >> 16);
}

void quern_spmm_q1x4_scalar(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *groups,
                            const uint32_t *lo, const uint32_t *hi, size_t n0, size_t n1, int32_t *yt, size_t ldy) {
    for (size_t n = n0; n < n1; n++) {
        int32_t *y = yt + n * ldy;
        for (size_t r = 0; r < mb; r++) y[r] = 0;
        for (int32_t e = rowptr[n]; e < rowptr[n + 1]; e++) {
            const uint32_t *x0 = xt + (size_t)(2 * groups[e]) * ldx, *x1 = x0 + ldx;
            for (size_t r = 0; r < mb; r++) y[r] += dot_pair(x0[r], lo[e]) + dot_pair(x1[r], hi[e]);
        }
    }
}

void quern_spmm_q1x4_quads_scalar(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                  const int32_t *groups, const uint32_t *quads, size_t n0, size_t n1, int32_t *yt,
                                  size_t ldy) {
    for (size_t n = n0; n < n1; n++) {
        int32_t *y = yt + n * ldy;
        for (size_t r = 0; r < mb; r++) y[r] = 0;
        for (int32_t e = rowptr[n]; e < rowptr[n + 1]; e++) {
            const uint32_t *x = xt + (size_t)groups[e] * ldx;
            for (size_t r = 0; r < mb; r++)
                for (int t = 0; t < 4; t++)
                    y[r] += (int32_t)((x[r] >> (8 * t)) & 0xFF) * (int8_t)((quads[e] >> (8 * t)) & 0xFF);
        }
    }
}

void quern_spmm_qcsr_scalar(const int16_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                            const uint32_t *w, size_t n0, size_t n1, int32_t *yt, size_t ldy) {
    for (size_t n = n0; n < n1; n++) {
        int32_t *y = yt + n * ldy;
        for (size_t r = 0; r < mb; r++) y[r] = 0;
        for (int32_t e = rowptr[n]; e < rowptr[n + 1]; e++) {
            const int16_t *x0 = xt + (size_t)cols[2 * e] * ldx, *x1 = xt + (size_t)cols[2 * e + 1] * ldx;
            int32_t w0 = (int16_t)(w[e] & 0xFFFF), w1 = (int16_t)(w[e] >> 16);
            for (size_t r = 0; r < mb; r++) y[r] += x0[r] * w0 + x1[r] * w1;
        }
    }
}

#if defined(__x86_64__)

_Static_assert(QUERN_SPMM_BLOCK == 8 * 8, "the AVX2 kernels hold a block in eight accumulators of eight lanes");

// Per pair of nonzeros, the two input columns' 64 rows are interleaved 16 at a time
// (vpunpcklwd/hi) so one vpmaddwd against the broadcast weight pair does two MACs per
// row. The interleave works within 128-bit lanes, so accumulator 2c holds rows
// 16c+{0..3, 8..11} and 2c+1 rows 16c+{4..7, 12..15}; a lane permute restores order.
TARGET_AVX2 void quern_spmm_qcsr_avx2(const int16_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                      const int32_t *cols, const uint32_t *w, size_t n0, size_t n1, int32_t *yt,
                                      size_t ldy) {
    if (mb != QUERN_SPMM_BLOCK) {
        quern_spmm_qcsr_scalar(xt, ldx, mb, rowptr, cols, w, n0, n1, yt, ldy);
        return;
    }
    for (size_t n = n0; n < n1; n++) {
        __m256i acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_si256();
        for (int32_t e = rowptr[n]; e < rowptr[n + 1]; e++) {
            const int16_t *x0 = xt + (size_t)cols[2 * e] * ldx, *x1 = xt + (size_t)cols[2 * e + 1] * ldx;
            __m256i wv = _mm256_set1_epi32((int32_t)w[e]);
            for (int c = 0; c < 4; c++) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(x0 + 16 * c));
                __m256i b = _mm256_loadu_si256((const __m256i *)(x1 + 16 * c));
                acc[2 * c] = _mm256_add_epi32(acc[2 * c], _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wv));
                acc[2 * c + 1] = _mm256_add_epi32(acc[2 * c + 1], _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wv));
            }
        }
        int32_t *y = yt + n * ldy;
        for (int c = 0; c < 4; c++) {
            _mm256_storeu_si256((__m256i *)(y + 16 * c), _mm256_permute2x128_si256(acc[2 * c], acc[2 * c + 1], 0x20));
            _mm256_storeu_si256((__m256i *)(y + 16 * c + 8), _mm256_permute2x128_si256(acc[2 * c], acc[2 * c + 1], 0x31));
        }
    }
}

// A 64-row block in eight int32 accumulators; per nonzero 1×4 block, two broadcasts of
// the weight pairs and sixteen vpmaddwd over the two K pairs' transposed activations.
TARGET_AVX2 void quern_spmm_q1x4_avx2(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                      const int32_t *groups, const uint32_t *lo, const uint32_t *hi, size_t n0,
                                      size_t n1, int32_t *yt, size_t ldy) {
    if (mb != QUERN_SPMM_BLOCK) {
        quern_spmm_q1x4_scalar(xt, ldx, mb, rowptr, groups, lo, hi, n0, n1, yt, ldy);
        return;
    }
    for (size_t n = n0; n < n1; n++) {
        __m256i acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_si256();
        for (int32_t e = rowptr[n]; e < rowptr[n + 1]; e++) {
            const uint32_t *x0 = xt + (size_t)(2 * groups[e]) * ldx, *x1 = x0 + ldx;
            __m256i wl = _mm256_set1_epi32((int32_t)lo[e]), wh = _mm256_set1_epi32((int32_t)hi[e]);
            for (int c = 0; c < 8; c++) {
                __m256i a = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x0 + 8 * c)), wl);
                __m256i b = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x1 + 8 * c)), wh);
                acc[c] = _mm256_add_epi32(acc[c], _mm256_add_epi32(a, b));
            }
        }
        int32_t *y = yt + n * ldy;
        for (int c = 0; c < 8; c++) _mm256_storeu_si256((__m256i *)(y + 8 * c), acc[c]);
    }
}

// Eight accumulators cover a 64-row block; each nonzero costs eight loads and eight
// FMAs. The loads are the bound, so the caller keeps the rows of xt a panel touches in
// L1 (64 K-rows × 64 floats = 16 KB) and accumulates panel after panel into yt.
TARGET_AVX2 void quern_spmm_csr_avx2(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                     const int32_t *cols, const float *vals, size_t n0, size_t n1, float *yt,
                                     size_t ldy, int accumulate) {
    if (mb != QUERN_SPMM_BLOCK) {  // small or ragged blocks: the caller pads the usual ones
        quern_spmm_csr_scalar(xt, ldx, mb, rowptr, cols, vals, n0, n1, yt, ldy, accumulate);
        return;
    }
    for (size_t n = n0; n < n1; n++) {
        int32_t e = rowptr[n], end = rowptr[n + 1];
        float *y = yt + n * ldy;
        if (e == end) {
            if (!accumulate)
                for (int c = 0; c < QUERN_SPMM_BLOCK; c += 8) _mm256_storeu_ps(y + c, _mm256_setzero_ps());
            continue;
        }
        __m256 a0, a1, a2, a3, a4, a5, a6, a7;
        if (accumulate) {
            a0 = _mm256_loadu_ps(y + 0); a1 = _mm256_loadu_ps(y + 8);
            a2 = _mm256_loadu_ps(y + 16); a3 = _mm256_loadu_ps(y + 24);
            a4 = _mm256_loadu_ps(y + 32); a5 = _mm256_loadu_ps(y + 40);
            a6 = _mm256_loadu_ps(y + 48); a7 = _mm256_loadu_ps(y + 56);
        } else {
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _mm256_setzero_ps();
        }
        for (; e < end; e++) {
            const float *x = xt + (size_t)cols[e] * ldx;
            __m256 v = _mm256_broadcast_ss(vals + e);
            a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 0), a0);
            a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 8), a1);
            a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 16), a2);
            a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 24), a3);
            a4 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 32), a4);
            a5 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 40), a5);
            a6 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 48), a6);
            a7 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 56), a7);
        }
        _mm256_storeu_ps(y + 0, a0); _mm256_storeu_ps(y + 8, a1);
        _mm256_storeu_ps(y + 16, a2); _mm256_storeu_ps(y + 24, a3);
        _mm256_storeu_ps(y + 32, a4); _mm256_storeu_ps(y + 40, a5);
        _mm256_storeu_ps(y + 48, a6); _mm256_storeu_ps(y + 56, a7);
    }
}

// ---- 16-lane bodies (spmm_wide_body.h) -------------------------------------------

_Static_assert(QUERN_SPMM_BLOCK == 4 * 16, "the 16-lane kernels hold a block in four vectors");

#define SW_TARGET_F TARGET_AVX512
#define SW_TARGET_I TARGET_AVX512VNNI
#define SW_CSR_NAME quern_spmm_csr_avx512
#define SW_Q1X4_NAME quern_spmm_q1x4_avx512vnni
#define V(op) z16_##op
#define VI(op) z16i_##op
#define VF z16
#define VI_T z16i
#include "spmm_wide_body.h"

#define SW_TARGET_F TARGET_AVX2
#define SW_TARGET_I TARGET_AVX2
#define SW_CSR_NAME quern_spmm_csr_avx512_emulated
#define SW_Q1X4_NAME quern_spmm_q1x4_avx512vnni_emulated
#define V(op) e16_##op
#define VI(op) e16i_##op
#define VF e16
#define VI_T e16i
#include "spmm_wide_body.h"

#else

#define SPMM_PLAIN(csr, q1x4)                                                                                    \
    void csr(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,                 \
             const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate) {                  \
        quern_spmm_csr_scalar(xt, ldx, mb, rowptr, cols, vals, n0, n1, yt, ldy, accumulate);                     \
    }                                                                                                            \
    void q1x4(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *groups,           \
              const uint32_t *quads, size_t n0, size_t n1, int32_t *yt, size_t ldy) {                            \
        quern_spmm_q1x4_quads_scalar(xt, ldx, mb, rowptr, groups, quads, n0, n1, yt, ldy);                       \
    }
SPMM_PLAIN(quern_spmm_csr_avx512, quern_spmm_q1x4_avx512vnni)
SPMM_PLAIN(quern_spmm_csr_avx512_emulated, quern_spmm_q1x4_avx512vnni_emulated)

void quern_spmm_qcsr_avx2(const int16_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                          const uint32_t *w, size_t n0, size_t n1, int32_t *yt, size_t ldy) {
    quern_spmm_qcsr_scalar(xt, ldx, mb, rowptr, cols, w, n0, n1, yt, ldy);
}

void quern_spmm_q1x4_avx2(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *groups,
                          const uint32_t *lo, const uint32_t *hi, size_t n0, size_t n1, int32_t *yt, size_t ldy) {
    quern_spmm_q1x4_scalar(xt, ldx, mb, rowptr, groups, lo, hi, n0, n1, yt, ldy);
}

void quern_spmm_csr_avx2(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                         const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate) {
    quern_spmm_csr_scalar(xt, ldx, mb, rowptr, cols, vals, n0, n1, yt, ldy, accumulate);
}

#endif
