#include "ckernels.h"
#include "activation.h"
#include "vecmath.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { MR = QUERN_SGEMM_MR, NR = QUERN_SGEMM_NR };

// ---- scalar twins -------------------------------------------------------------

void quern_sgemm_tile_scalar(size_t k, const float *a, const float *b, float *c, size_t ldc,
                             size_t m, size_t n, int accumulate) {
    float acc[MR][NR] = {{0}};
    for (size_t p = 0; p < k; p++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] += a[p * MR + i] * b[p * NR + j];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}


void quern_bias_act_scalar(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = quern_act_scalar(c[i * ldc + j] + (bias ? bias[j] : 0), act);
}

#if defined(__x86_64__)

// ---- AVX2 + FMA -----------------------------------------------------------------

// The full 6×16 tile: 12 accumulators (6 rows × 2 vectors of 8), per step two B loads,
// six A broadcasts and twelve FMAs, which keeps both FMA pipes busy past their 4-cycle
// latency. k is unrolled by 4 to amortise loop overhead.
TARGET_AVX2 static void tile_6x16(size_t k, const float *a, const float *b, float *c, size_t ldc,
                                  int accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define STEP(P)                                                                 \
    do {                                                                        \
        __m256 b0 = _mm256_loadu_ps(b + (P) * NR), b1 = _mm256_loadu_ps(b + (P) * NR + 8); \
        __m256 a0 = _mm256_broadcast_ss(a + (P) * MR + 0);                      \
        __m256 a1 = _mm256_broadcast_ss(a + (P) * MR + 1);                      \
        c00 = _mm256_fmadd_ps(a0, b0, c00); c01 = _mm256_fmadd_ps(a0, b1, c01); \
        c10 = _mm256_fmadd_ps(a1, b0, c10); c11 = _mm256_fmadd_ps(a1, b1, c11); \
        a0 = _mm256_broadcast_ss(a + (P) * MR + 2);                             \
        a1 = _mm256_broadcast_ss(a + (P) * MR + 3);                             \
        c20 = _mm256_fmadd_ps(a0, b0, c20); c21 = _mm256_fmadd_ps(a0, b1, c21); \
        c30 = _mm256_fmadd_ps(a1, b0, c30); c31 = _mm256_fmadd_ps(a1, b1, c31); \
        a0 = _mm256_broadcast_ss(a + (P) * MR + 4);                             \
        a1 = _mm256_broadcast_ss(a + (P) * MR + 5);                             \
        c40 = _mm256_fmadd_ps(a0, b0, c40); c41 = _mm256_fmadd_ps(a0, b1, c41); \
        c50 = _mm256_fmadd_ps(a1, b0, c50); c51 = _mm256_fmadd_ps(a1, b1, c51); \
    } while (0)
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
        STEP(0); STEP(1); STEP(2); STEP(3);
        a += 4 * MR;
        b += 4 * NR;
    }
    for (; p < k; p++) {
        STEP(0);
        a += MR;
        b += NR;
    }
#undef STEP
    __m256 rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        if (accumulate) {
            rows[i][0] = _mm256_add_ps(rows[i][0], _mm256_loadu_ps(ci));
            rows[i][1] = _mm256_add_ps(rows[i][1], _mm256_loadu_ps(ci + 8));
        }
        _mm256_storeu_ps(ci, rows[i][0]);
        _mm256_storeu_ps(ci + 8, rows[i][1]);
    }
}

// A tile of only M (< 6) rows: the same loop with M×2 accumulators, so one- to
// five-row products (single records, the last rows of a batch) do no wasted FMAs.
// Always inlined with a constant M, which keeps the accumulators in registers.
TARGET_AVX2 static inline __attribute__((always_inline)) void
tile_rows(const int M, size_t k, const float *a, const float *b, float *c, size_t ldc, int accumulate) {
    __m256 acc[MR][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (size_t p = 0; p < k; p++) {
        __m256 b0 = _mm256_loadu_ps(b + p * NR), b1 = _mm256_loadu_ps(b + p * NR + 8);
        for (int i = 0; i < M; i++) {
            __m256 ai = _mm256_broadcast_ss(a + p * MR + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    for (int i = 0; i < M; i++) {
        float *ci = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(ci));
            acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(ci + 8));
        }
        _mm256_storeu_ps(ci, acc[i][0]);
        _mm256_storeu_ps(ci + 8, acc[i][1]);
    }
}

TARGET_AVX2 static void tile_any(size_t m, size_t k, const float *a, const float *b, float *c, size_t ldc,
                                 int accumulate) {
    switch (m) {
    case 1: tile_rows(1, k, a, b, c, ldc, accumulate); break;
    case 2: tile_rows(2, k, a, b, c, ldc, accumulate); break;
    case 3: tile_rows(3, k, a, b, c, ldc, accumulate); break;
    case 4: tile_rows(4, k, a, b, c, ldc, accumulate); break;
    case 5: tile_rows(5, k, a, b, c, ldc, accumulate); break;
    default: tile_6x16(k, a, b, c, ldc, accumulate); break;
    }
}

TARGET_AVX2 void quern_sgemm_tile_avx2(size_t k, const float *a, const float *b, float *c, size_t ldc,
                                       size_t m, size_t n, int accumulate) {
    if (n == NR) {
        tile_any(m, k, a, b, c, ldc, accumulate);
        return;
    }
    // Narrow edge tile: compute full-width rows into a buffer, then move the valid columns.
    float tmp[MR * NR];
    if (accumulate)
        for (size_t i = 0; i < m; i++) memcpy(tmp + i * NR, c + i * ldc, n * sizeof(float));
    tile_any(m, k, a, b, tmp, NR, accumulate);
    for (size_t i = 0; i < m; i++) memcpy(c + i * ldc, tmp + i * NR, n * sizeof(float));
}

// ---- AVX-512: 6×32 tiles over two panels (body in sgemm_wide_body.h) ----------------

#define WIDE_TARGET __attribute__((target("avx2,fma,avx512f")))
#define WIDE_ROWS wide_rows_avx512
#define WIDE_NAME quern_sgemm_tile2_avx512
#define VF __m512
#define VF_ZERO() _mm512_setzero_ps()
#define VF_LOAD(p) _mm512_loadu_ps(p)
#define VF_BCAST(p) _mm512_set1_ps(*(p))
#define VF_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VF_ADD(a, b) _mm512_add_ps(a, b)
#define VF_STORE(p, v) _mm512_storeu_ps(p, v)
#include "sgemm_wide_body.h"

// The same body with a zmm emulated as two ymm halves, for tests on AVX2 machines.
#define WIDE_TARGET TARGET_AVX2
#define WIDE_ROWS wide_rows_emulated
#define WIDE_NAME quern_sgemm_tile2_avx512_emulated
#define VF e16
#define VF_ZERO() e16_zero()
#define VF_LOAD(p) e16_load(p)
#define VF_BCAST(p) e16_bcast(p)
#define VF_FMA(a, b, c) e16_fma(a, b, c)
#define VF_ADD(a, b) e16_add(a, b)
#define VF_STORE(p, v) e16_store(p, v)
#include "sgemm_wide_body.h"

#else

void quern_sgemm_tile_avx2(size_t k, const float *a, const float *b, float *c, size_t ldc,
                           size_t m, size_t n, int accumulate) {
    quern_sgemm_tile_scalar(k, a, b, c, ldc, m, n, accumulate);
}

// Without x86 the wide tile is two scalar tiles (same semantics).
static void tile2_scalar(size_t k, const float *a, const float *b0, const float *b1, float *c, size_t ldc,
                         size_t m, size_t n, int accumulate) {
    quern_sgemm_tile_scalar(k, a, b0, c, ldc, m, n < NR ? n : NR, accumulate);
    if (n > NR) quern_sgemm_tile_scalar(k, a, b1, c + NR, ldc, m, n - NR, accumulate);
}
void quern_sgemm_tile2_avx512(size_t k, const float *a, const float *b0, const float *b1, float *c, size_t ldc,
                              size_t m, size_t n, int accumulate) {
    tile2_scalar(k, a, b0, b1, c, ldc, m, n, accumulate);
}
void quern_sgemm_tile2_avx512_emulated(size_t k, const float *a, const float *b0, const float *b1, float *c,
                                       size_t ldc, size_t m, size_t n, int accumulate) {
    tile2_scalar(k, a, b0, b1, c, ldc, m, n, accumulate);
}

#endif
