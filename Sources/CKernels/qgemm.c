#include "ckernels.h"
#include "activation.h"
#include "vecmath.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { MR = QUERN_QGEMM_MR, NR = QUERN_QGEMM_NR };
// How far ahead, in steps, the wide tile prefetches its two B streams: 2 KB. Decode-shaped
// products (few rows) stream weights from DRAM once per call; on Zen 5 the hardware
// prefetcher alone reached 11 GB/s of the core's 35 there, and 8, 32, 64 and 128 steps
// ahead gave 343, 436, 417 and 324 GOP/s on 16×576×49152 (no change on L2-resident shapes).
enum { QW_AHEAD = 32 };

// ---- scalar twins -------------------------------------------------------------

void quern_qgemm_tile_scalar(size_t kp, const uint32_t *a, const int16_t *b, int32_t *c, size_t ldc,
                             size_t m, size_t n, int accumulate) {
    int32_t acc[MR][NR] = {{0}};
    for (size_t p = 0; p < kp; p++)
        for (int i = 0; i < MR; i++) {
            int32_t a0 = (int32_t)(a[p * MR + i] & 0xFFFF), a1 = (int32_t)(a[p * MR + i] >> 16);
            for (int j = 0; j < NR; j++)
                acc[i][j] += a0 * b[(p * NR + j) * 2] + a1 * b[(p * NR + j) * 2 + 1];
        }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

void quern_qgemm4_tile_scalar(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                              size_t m, size_t n, int accumulate) {
    int32_t acc[MR][NR] = {{0}};
    for (size_t q = 0; q < kq; q++)
        for (int i = 0; i < MR; i++) {
            uint32_t word = a[q * MR + i];
            for (int j = 0; j < NR; j++)
                for (int t = 0; t < 4; t++)
                    acc[i][j] += (int32_t)((word >> (8 * t)) & 0xFF) * b[(q * NR + j) * 4 + t];
        }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

void quern_quantize_rows_u8_scalar(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                   float *scale, int32_t *zero_point) {
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * lda;
        float lo = 0, hi = 0;  // the range always holds 0, so zero padding is exact
        for (size_t p = 0; p < k; p++) {
            lo = row[p] < lo ? row[p] : lo;
            hi = row[p] > hi ? row[p] : hi;
        }
        float s = (hi - lo) / 255.0f;
        if (!(s > 0)) s = 1.0f;  // an all-zero row
        int32_t zp = (int32_t)lrintf(-lo / s);
        zp = zp < 0 ? 0 : (zp > 255 ? 255 : zp);
        float inv = 1.0f / s;
        for (size_t p = 0; p < k; p++) {
            int32_t v = (int32_t)lrintf(row[p] * inv) + zp;
            q[i * ldq + p] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
        scale[i] = s;
        zero_point[i] = zp;
    }
}


void quern_quantize_rows_u8_fixed_scalar(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                         const float *inv, int32_t zero_point) {
    for (size_t i = 0; i < m; i++)
        for (size_t p = 0; p < k; p++) {
            int32_t v = (int32_t)lrintf(x[i * lda + p] * inv[p]) + zero_point;
            q[i * ldq + p] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
}

void quern_dequantize_scalar(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                             const float *row_scale, const int32_t *row_zp, const float *col_scale,
                             const int32_t *colsum, const float *bias, quern_act act) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            int32_t centered = acc[i * ldacc + j] - row_zp[i] * colsum[j];
            float v = row_scale[i] * col_scale[j] * (float)centered + (bias ? bias[j] : 0);
            y[i * ldy + j] = quern_act_scalar(v, act);
        }
}

#if defined(__x86_64__)

// ---- AVX2 ---------------------------------------------------------------------------

// K pairs widened to int16: vpmaddwd sums two 16-bit products per int32 lane.
TARGET_AVX2 static inline __m256i madd_pairs(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}
#define QUADS_TARGET TARGET_AVX2
#define QUADS_ROWS pairs_rows_avx2
#define QUADS_NAME quern_qgemm_tile_avx2
#define QUADS_BTYPE int16_t
#define DPBUSD(acc, a, b) madd_pairs(acc, a, b)
#include "qgemm_tile_body.h"

// q = clamp(round(x · m) + zp, 0, 255) for one row, 32 values a step; m is column p's
// multiplier cols[p], or `inv` for every column when cols is NULL (the dynamic path,
// where the compiler folds the test away).
TARGET_AVX2 static inline void quantize_row_avx2(const float *row, size_t k, const float *cols, float inv, int32_t zp,
                                                 uint8_t *out) {
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i vzp = _mm256_set1_epi32(zp);
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        __m256i v[4];
        for (int j = 0; j < 4; j++) {
            const __m256 m = cols ? _mm256_loadu_ps(cols + p + 8 * j) : vinv;
            v[j] = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row + p + 8 * j), m)), vzp);
        }
        // Saturating packs work within 128-bit lanes; the final permute restores order.
        __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(out + p), bytes);
    }
    for (; p < k; p++) {
        int32_t v = (int32_t)lrintf(row[p] * (cols ? cols[p] : inv)) + zp;
        out[p] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
}

// Static ranges, smoothed or not: a multiplier per column.
TARGET_AVX2 void quern_quantize_rows_u8_fixed_avx2(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                                   const float *inv, int32_t zero_point) {
    for (size_t i = 0; i < m; i++) quantize_row_avx2(x + i * lda, k, inv, 0, zero_point, q + i * ldq);
}

// Same arithmetic as the scalar twin (min/max, then round-to-nearest-even through the
// default MXCSR mode, which is what lrintf does), so both give identical bytes.
TARGET_AVX2 void quern_quantize_rows_u8_avx2(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                             float *scale, int32_t *zero_point) {
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * lda;
        __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
        size_t p = 0;
        for (; p + 8 <= k; p += 8) {
            __m256 v = _mm256_loadu_ps(row + p);
            vlo = _mm256_min_ps(vlo, v);
            vhi = _mm256_max_ps(vhi, v);
        }
        float lo_lanes[8], hi_lanes[8];
        _mm256_storeu_ps(lo_lanes, vlo);
        _mm256_storeu_ps(hi_lanes, vhi);
        float lo = 0, hi = 0;
        for (int l = 0; l < 8; l++) {
            lo = lo_lanes[l] < lo ? lo_lanes[l] : lo;
            hi = hi_lanes[l] > hi ? hi_lanes[l] : hi;
        }
        for (; p < k; p++) {
            lo = row[p] < lo ? row[p] : lo;
            hi = row[p] > hi ? row[p] : hi;
        }
        float s = (hi - lo) / 255.0f;
        if (!(s > 0)) s = 1.0f;
        int32_t zp = (int32_t)lrintf(-lo / s);
        zp = zp < 0 ? 0 : (zp > 255 ? 255 : zp);
        quantize_row_avx2(row, k, NULL, 1.0f / s, zp, q + i * ldq);
        scale[i] = s;
        zero_point[i] = zp;
    }
}

// ---- VNNI: groups of four K (body in qgemm_tile_body.h) ---------------------------

#define QUADS_TARGET __attribute__((target("avx2,fma,avx512f,avx512vl,avx512vnni")))
#define QUADS_ROWS quads_rows_avx512vnni
#define QUADS_NAME quern_qgemm4_tile_avx512vnni
#define QUADS_BTYPE int8_t
#define DPBUSD(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
#include "qgemm_tile_body.h"

#define QUADS_TARGET __attribute__((target("avx2,fma,avxvnni")))
#define QUADS_ROWS quads_rows_avxvnni
#define QUADS_NAME quern_qgemm4_tile_avxvnni
#define QUADS_BTYPE int8_t
#define DPBUSD(acc, a, b) _mm256_dpbusd_avx_epi32(acc, a, b)
#include "qgemm_tile_body.h"

#define QUADS_TARGET TARGET_AVX2
#define QUADS_ROWS quads_rows_avx2
#define QUADS_NAME quern_qgemm4_tile_avx2
#define QUADS_BTYPE int8_t
#define DPBUSD(acc, a, b) dpbusd_avx2(acc, a, b)
#include "qgemm_tile_body.h"

// vpmaddubsw then vpmaddwd by ones: the four products of each 32-bit group, exact for
// pair-bounded weights (see ckernels.h). The ones are a memory operand, so the tile
// keeps its 12 accumulators, two B vectors and the broadcast A in the 16 registers.
TARGET_AVX2 static inline __m256i maddubs_quads(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
}
#define QUADS_TARGET TARGET_AVX2
#define QUADS_ROWS quads_rows_maddubs_avx2
#define QUADS_NAME quern_qgemm4_tile_maddubs_avx2
#define QUADS_BTYPE int8_t
#define DPBUSD(acc, a, b) maddubs_quads(acc, a, b)
#include "qgemm_tile_body.h"

// ---- AVX512-VNNI: 12×32 tiles over two quad panels (body in qgemm_wide_body.h) ------

#define QW_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vnni")))
#define QW_ROWS wide_quads_rows_avx512vnni
#define QW_NAME quern_qgemm4_tile2_avx512vnni
#define VI __m512i
#define VI_ZERO() _mm512_setzero_si512()
#define VI_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define VI_BCAST(p) _mm512_set1_epi32((int32_t) * (p))
#define VI_DPBUSD(acc, a, b) _mm512_dpbusd_epi32(acc, a, b)
#define VI_ADD(a, b) _mm512_add_epi32(a, b)
#define VI_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define VI_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#include "qgemm_wide_body.h"

// The same body with a zmm emulated as two ymm halves and vpdpbusd as in
// quern_qgemm4_tile_avx2, for tests on AVX2 machines.
#define QW_TARGET TARGET_AVX2
#define QW_ROWS wide_quads_rows_emulated
#define QW_NAME quern_qgemm4_tile2_avx512vnni_emulated
#define VI e16i
#define VI_ZERO() e16i_zero()
#define VI_LOAD(p) e16i_load(p)
#define VI_BCAST(p) e16i_bcast(p)
#define VI_DPBUSD(acc, a, b) e16i_dpbusd(acc, a, b)
#define VI_ADD(a, b) e16i_add(a, b)
#define VI_STORE(p, v) e16i_store(p, v)
#define VI_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#include "qgemm_wide_body.h"

#else

// Without x86 the wide tile is scalar tiles (same semantics).
static void qgemm4_tile2_scalar(size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0,
                                const int8_t *b1, int32_t *c, size_t ldc, size_t m, size_t n, int accumulate) {
    for (size_t r = 0; r < m; r += MR) {
        const uint32_t *ar = r ? a_hi : a;
        size_t rows = m - r < MR ? m - r : MR;
        quern_qgemm4_tile_scalar(kq, ar, b0, c + r * ldc, ldc, rows, n < NR ? n : NR, accumulate);
        if (n > NR) quern_qgemm4_tile_scalar(kq, ar, b1, c + r * ldc + NR, ldc, rows, n - NR, accumulate);
    }
}
void quern_qgemm4_tile2_avx512vnni(size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0,
                                   const int8_t *b1, int32_t *c, size_t ldc, size_t m, size_t n, int accumulate) {
    qgemm4_tile2_scalar(kq, a, a_hi, b0, b1, c, ldc, m, n, accumulate);
}
void quern_qgemm4_tile2_avx512vnni_emulated(size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0,
                                            const int8_t *b1, int32_t *c, size_t ldc, size_t m, size_t n,
                                            int accumulate) {
    qgemm4_tile2_scalar(kq, a, a_hi, b0, b1, c, ldc, m, n, accumulate);
}

void quern_qgemm4_tile_maddubs_avx2(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                                    size_t m, size_t n, int accumulate) {
    quern_qgemm4_tile_scalar(kq, a, b, c, ldc, m, n, accumulate);
}
void quern_qgemm_tile_avx2(size_t kp, const uint32_t *a, const int16_t *b, int32_t *c, size_t ldc,
                           size_t m, size_t n, int accumulate) {
    quern_qgemm_tile_scalar(kp, a, b, c, ldc, m, n, accumulate);
}
void quern_quantize_rows_u8_avx2(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                 float *scale, int32_t *zero_point) {
    quern_quantize_rows_u8_scalar(x, m, k, lda, q, ldq, scale, zero_point);
}
void quern_quantize_rows_u8_fixed_avx2(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                       const float *inv, int32_t zero_point) {
    quern_quantize_rows_u8_fixed_scalar(x, m, k, lda, q, ldq, inv, zero_point);
}

void quern_qgemm4_tile_avx512vnni(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                                  size_t m, size_t n, int accumulate) {
    quern_qgemm4_tile_scalar(kq, a, b, c, ldc, m, n, accumulate);
}
void quern_qgemm4_tile_avxvnni(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                               size_t m, size_t n, int accumulate) {
    quern_qgemm4_tile_scalar(kq, a, b, c, ldc, m, n, accumulate);
}
void quern_qgemm4_tile_avx2(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                            size_t m, size_t n, int accumulate) {
    quern_qgemm4_tile_scalar(kq, a, b, c, ldc, m, n, accumulate);
}

#endif
