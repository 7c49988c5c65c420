// AArch64 check of CKernels: on a non-x86 target every _avx2/_avx512/_vnni entry point
// must be a plain call to its scalar twin, and the scalar twins must be right. Built
// statically for aarch64 and run under qemu by scripts/check-aarch64.sh.
#include "ckernels.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#if !defined(__aarch64__)
#error "built for AArch64 only: on x86 the _avx* entry points need the CPU features they name"
#endif

enum { MR = QUERN_SGEMM_MR, NR = QUERN_SGEMM_NR, KMAX = 255, LD_PAD = 3 };
// fp32 sums of k products: each term of the error bound grows by one rounding per step,
// so (k + 2)·FLT_EPSILON times the sum of magnitudes (plus |C| when accumulating) bounds it.
#define SGEMM_EPS_PER_TERM FLT_EPSILON
#define NORM_TOL 1e-5       // layernorm and softmax vs double, relative to 1 + |ref|
#define GELU_REL_TOL 1e-6   // float erfc-based GELU vs double erfc
#define GELU_ABS_TOL 1e-9   // negative tail (|result| < ~1e-3): rounding the argument to
                            // float alone costs more than 1e-6 relative there
#define QUANT_STEP_SLACK 1e-3  // float rounding on top of the half step, in steps
static const int KS[] = {1, 3, 17, 255};
static const float SENTINEL = 1234.5f;  // outside the m×n corner C must stay untouched

static int passed, failed;
// at: (m, n, k) for the GEMM tiles and the GELU block; (row, column, length) elsewhere.
static void report(int ok, const char *what, size_t m, size_t n, size_t k, double got, double want) {
    if (ok) { passed++; return; }
    if (failed++ < 10) printf("FAIL %s at (%zu, %zu, %zu): got %.9g want %.9g\n", what, m, n, k, got, want);
}

// Fixed-seed xorshift: the runs are reproducible and need nothing from the host.
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f; }

// ---- fp32 GEMM tiles ----------------------------------------------------------------
typedef void (*sgemm_fn)(size_t, const float *, const float *, float *, size_t, size_t, size_t, int);
typedef void (*sgemm2_fn)(size_t, const float *, const float *, const float *, float *, size_t, size_t, size_t, int);

// One of tile/tile2 is set; tile2 spans two B panels (n up to 2·NR, b1 NULL if n ≤ NR).
static void check_sgemm(const char *name, sgemm_fn tile, sgemm2_fn tile2) {
    static float a[KMAX * MR], b[2][KMAX * NR], c[MR * (2 * NR + LD_PAD)], c0[MR * (2 * NR + LD_PAD)];
    size_t nmax = tile2 ? 2 * NR : NR;
    for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
        size_t k = (size_t)KS[ki];
        // Full panels: a kernel writing rows past m or columns past n clobbers the sentinels.
        for (size_t i = 0; i < k * MR; i++) a[i] = rndf(-1, 1);
        for (size_t i = 0; i < k * NR; i++) { b[0][i] = rndf(-1, 1); b[1][i] = rndf(-1, 1); }
        for (size_t m = 1; m <= MR; m++)
            for (size_t n = 1; n <= nmax; n++)
                for (int acc = 0; acc <= 1; acc++) {
                    size_t ldc = n + LD_PAD;
                    for (size_t i = 0; i < MR * ldc; i++) c0[i] = c[i] = (i / ldc < m && i % ldc < n) ? rndf(-2, 2) : SENTINEL;
                    if (tile) tile(k, a, b[0], c, ldc, m, n, acc);
                    else tile2(k, a, b[0], n > NR ? b[1] : NULL, c, ldc, m, n, acc);
                    int ok = 1;
                    double got = 0, want = 0;
                    for (size_t i = 0; i < MR && ok; i++)
                        for (size_t j = 0; j < ldc && ok; j++) {
                            got = c[i * ldc + j];
                            if (i >= m || j >= n) { want = SENTINEL; ok = got == want; continue; }
                            double s = acc ? c0[i * ldc + j] : 0, mag = fabs(s);
                            const float *bp = b[j / NR];
                            for (size_t p = 0; p < k; p++) {
                                double t = (double)a[p * MR + i] * bp[p * NR + j % NR];
                                s += t; mag += fabs(t);
                            }
                            want = s;
                            ok = fabs(got - want) <= (double)(k + 2) * SGEMM_EPS_PER_TERM * mag;
                        }
                    report(ok, name, m, n, k, got, want);
                }
    }
}

// ---- int8 GEMM tiles -----------------------------------------------------------------
typedef void (*qpairs_fn)(size_t, const uint32_t *, const int16_t *, int32_t *, size_t, size_t, size_t, int);
typedef void (*qquads_fn)(size_t, const uint32_t *, const int8_t *, int32_t *, size_t, size_t, size_t, int);

// Logical u8 A (MR×k) and s8 W (NR×k) are packed here from the layouts in ckernels.h; the
// reference sums the logical matrices, so a packing misreading shows up as a mismatch.
// extreme: every product is 255 × -127, the largest magnitude either layout can meet.
static void check_qgemm(const char *name, qpairs_fn pairs, qquads_fn quads, int extreme) {
    static uint8_t A[MR][KMAX + 3];
    static int8_t W[NR][KMAX + 3];
    static uint32_t ap[(KMAX + 3) / 2 * MR];
    static int16_t bp[(KMAX + 3) / 2 * NR * 2];
    static int8_t bq[(KMAX + 3) / 4 * NR * 4];
    static int32_t c[MR * (NR + LD_PAD)], c0[MR * (NR + LD_PAD)];
    for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
        size_t k = (size_t)KS[ki], kp = (k + 1) / 2, kq = (k + 3) / 4;
        memset(A, 0, sizeof A); memset(W, 0, sizeof W);  // zero past k, as packing requires
        for (size_t i = 0; i < MR; i++)
            for (size_t p = 0; p < k; p++) A[i][p] = extreme ? 255 : (uint8_t)rnd();
        for (size_t j = 0; j < NR; j++)
            for (size_t p = 0; p < k; p++) W[j][p] = extreme ? -127 : (int8_t)((int)(rnd() % 256) - 128);
        for (size_t p = 0; p < kp; p++) {
            for (size_t i = 0; i < MR; i++) ap[p * MR + i] = A[i][2 * p] | (uint32_t)A[i][2 * p + 1] << 16;
            for (size_t j = 0; j < NR; j++) { bp[(p * NR + j) * 2] = W[j][2 * p]; bp[(p * NR + j) * 2 + 1] = W[j][2 * p + 1]; }
        }
        if (quads)
            for (size_t q = 0; q < kq; q++) {
                for (size_t i = 0; i < MR; i++) {
                    uint32_t w = 0;
                    for (int t = 0; t < 4; t++) w |= (uint32_t)A[i][4 * q + t] << (8 * t);
                    ap[q * MR + i] = w;
                }
                for (size_t j = 0; j < NR; j++)
                    for (int t = 0; t < 4; t++) bq[(q * NR + j) * 4 + t] = W[j][4 * q + t];
            }
        for (size_t m = 1; m <= MR; m++)
            for (size_t n = 1; n <= NR; n++)
                for (int acc = 0; acc <= 1; acc++) {
                    size_t ldc = n + LD_PAD;
                    for (size_t i = 0; i < MR * ldc; i++)
                        c0[i] = c[i] = (i / ldc < m && i % ldc < n) ? (int32_t)(rnd() % 2001) - 1000 : -777;
                    if (pairs) pairs(kp, ap, bp, c, ldc, m, n, acc);
                    else quads(kq, ap, bq, c, ldc, m, n, acc);
                    int ok = 1;
                    int32_t got = 0, want = 0;
                    for (size_t i = 0; i < MR && ok; i++)
                        for (size_t j = 0; j < ldc && ok; j++) {
                            got = c[i * ldc + j];
                            want = c0[i * ldc + j];  // untouched outside the corner
                            if (i < m && j < n) {
                                if (!acc) want = 0;
                                for (size_t p = 0; p < k; p++) want += (int32_t)A[i][p] * W[j][p];
                            }
                            ok = got == want;
                        }
                    report(ok, name, m, n, k, got, want);
                }
    }
}

// ---- quantization round trip ------------------------------------------------------------
static void check_quantize(void) {
    enum { M = 4 };
    static float x[M * (KMAX + LD_PAD)];
    static uint8_t q[M * KMAX], q2[M * KMAX];
    float s[M], s2[M];
    int32_t zp[M], zp2[M];
    for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
        size_t k = (size_t)KS[ki], lda = k + LD_PAD;
        for (size_t i = 0; i < M; i++)  // mixed, all-positive, all-negative, all-zero rows
            for (size_t p = 0; p < k; p++)
                x[i * lda + p] = i == 0 ? rndf(-3, 2) : i == 1 ? rndf(0, 5) : i == 2 ? rndf(-4, 0) : 0;
        x[0] = 0;  // 0.0 must come back exactly
        quern_quantize_rows_u8_scalar(x, M, k, lda, q, KMAX, s, zp);
        quern_quantize_rows_u8_avx2(x, M, k, lda, q2, KMAX, s2, zp2);
        report(!memcmp(q, q2, sizeof q) && !memcmp(s, s2, sizeof s) && !memcmp(zp, zp2, sizeof zp),
               "quantize_rows_u8_avx2 == scalar", M, k, k, 0, 0);
        for (size_t i = 0; i < M; i++)
            for (size_t p = 0; p < k; p++) {
                double back = ((double)q[i * KMAX + p] - zp[i]) * s[i], want = x[i * lda + p];
                int ok = (i == 0 && p == 0) ? back == 0 : fabs(back - want) <= (0.5 + QUANT_STEP_SLACK) * s[i];
                report(ok, "quantize_rows_u8_scalar", i, p, k, back, want);
            }
    }
}

// ---- layer norm, softmax, GELU epilogue -----------------------------------------------
static void check_norms(void) {
    enum { ROWS = 3 };
    static float x[ROWS * (KMAX + LD_PAD)], y[ROWS * (KMAX + LD_PAD)], y2[ROWS * (KMAX + LD_PAD)], g[KMAX], be[KMAX];
    static uint8_t keep[KMAX];
    for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
        size_t n = (size_t)KS[ki], ld = n + LD_PAD;
        for (size_t i = 0; i < ROWS * ld; i++) x[i] = rndf(-3, 3);
        for (size_t j = 0; j < n; j++) { g[j] = rndf(0.5f, 1.5f); be[j] = rndf(-1, 1); keep[j] = rnd() % 4 != 0; }
        keep[0] = 1;  // at least one live position per row
        for (int affine = 0; affine <= 1; affine++) {  // with gamma/beta and with NULLs
            const float *gp = affine ? g : NULL, *bp = affine ? be : NULL;
            memcpy(y, x, sizeof x); memcpy(y2, x, sizeof x);  // same padding in both for memcmp
            quern_layernorm_scalar(x, ROWS, n, ld, gp, bp, 1e-5f, y);
            quern_layernorm_avx2(x, ROWS, n, ld, gp, bp, 1e-5f, y2);
            report(!memcmp(y, y2, sizeof y), "layernorm_avx2 == scalar", ROWS, n, n, 0, 0);
            for (size_t r = 0; r < ROWS; r++) {
                const float *xr = x + r * ld;
                double mean = 0, var = 0;
                for (size_t j = 0; j < n; j++) mean += xr[j];
                mean /= (double)n;
                for (size_t j = 0; j < n; j++) var += (xr[j] - mean) * (xr[j] - mean);
                var /= (double)n;
                for (size_t j = 0; j < n; j++) {
                    double want = (xr[j] - mean) / sqrt(var + 1e-5) * (gp ? gp[j] : 1) + (bp ? bp[j] : 0);
                    report(fabs(y[r * ld + j] - want) <= NORM_TOL * (1 + fabs(want)), "layernorm_scalar", r, j, n, y[r * ld + j], want);
                }
            }
        }
        for (int masked = 0; masked <= 1; masked++) {
            const uint8_t *kp = masked ? keep : NULL;
            memcpy(y, x, sizeof x); memcpy(y2, x, sizeof x);
            quern_softmax_scalar(y, ROWS, n, ld, kp);
            quern_softmax_avx2(y2, ROWS, n, ld, kp);
            report(!memcmp(y, y2, sizeof y), "softmax_avx2 == scalar", ROWS, n, n, 0, 0);
            for (size_t r = 0; r < ROWS; r++) {
                const float *xr = x + r * ld;
                double mx = -INFINITY, sum = 0;
                for (size_t j = 0; j < n; j++) if (!kp || kp[j]) mx = fmax(mx, xr[j]);
                for (size_t j = 0; j < n; j++) if (!kp || kp[j]) sum += exp(xr[j] - mx);
                for (size_t j = 0; j < n; j++) {
                    double want = (!kp || kp[j]) ? exp(xr[j] - mx) / sum : 0;
                    report(fabs(y[r * ld + j] - want) <= NORM_TOL * (1 + want), "softmax_scalar", r, j, n, y[r * ld + j], want);
                }
            }
        }
        memset(keep, 0, n);  // a fully masked row comes out as zeros
        memcpy(y, x, sizeof x);
        quern_softmax_scalar(y, 1, n, ld, keep);
        int zeros = 1;
        for (size_t j = 0; j < n; j++) zeros &= y[j] == 0;
        report(zeros, "softmax_scalar all masked", 1, n, n, 0, 0);
    }
    // GELU over [-8, 8] (deep into both tails) with a bias; the reference takes the float
    // sum c + bias as the kernel does, so only the activation itself is compared.
    for (size_t m = 1; m <= MR; m++)
        for (size_t n = 1; n <= NR; n++) {
            size_t ldc = n + LD_PAD;
            for (size_t i = 0; i < m * ldc; i++) x[i] = rndf(-6, 6);
            for (size_t j = 0; j < n; j++) g[j] = rndf(-2, 2);
            memcpy(y, x, sizeof x); memcpy(y2, x, sizeof x);
            quern_bias_act_scalar(y, ldc, m, n, g, QUERN_ACT_GELU);
            quern_bias_act_avx2(y2, ldc, m, n, g, QUERN_ACT_GELU);
            report(!memcmp(y, y2, sizeof y), "bias_act_avx2 == scalar", m, n, 0, 0, 0);
            int ok = 1;
            double got = 0, want = 0;
            for (size_t i = 0; i < m * ldc && ok; i++) {
                got = y[i];
                if (i % ldc >= n) { want = x[i]; ok = got == want; continue; }
                double v = (float)(x[i] + g[i % ldc]);
                want = 0.5 * v * erfc(-v / sqrt(2.0));
                ok = fabs(got - want) <= GELU_REL_TOL * fabs(want) + GELU_ABS_TOL;
            }
            report(ok, "bias_act_scalar gelu", m, n, 0, got, want);
        }
}

int main(void) {
    report(quern_cpu_features() == 0, "quern_cpu_features() == 0", 0, 0, 0, quern_cpu_features(), 0);
    check_sgemm("sgemm_tile_scalar", quern_sgemm_tile_scalar, NULL);
    check_sgemm("sgemm_tile_avx2", quern_sgemm_tile_avx2, NULL);
    check_sgemm("sgemm_tile2_avx512", NULL, quern_sgemm_tile2_avx512);
    check_sgemm("sgemm_tile2_avx512_emulated", NULL, quern_sgemm_tile2_avx512_emulated);
    for (int extreme = 0; extreme <= 1; extreme++) {
        check_qgemm("qgemm_tile_scalar", quern_qgemm_tile_scalar, NULL, extreme);
        check_qgemm("qgemm_tile_avx2", quern_qgemm_tile_avx2, NULL, extreme);
        check_qgemm("qgemm4_tile_scalar", NULL, quern_qgemm4_tile_scalar, extreme);
        check_qgemm("qgemm4_tile_avx512vnni", NULL, quern_qgemm4_tile_avx512vnni, extreme);
        check_qgemm("qgemm4_tile_avxvnni", NULL, quern_qgemm4_tile_avxvnni, extreme);
        check_qgemm("qgemm4_tile_avx2", NULL, quern_qgemm4_tile_avx2, extreme);
    }
    check_quantize();
    check_norms();
    printf("aarch64 kernels: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
