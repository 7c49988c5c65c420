#include "ckernels.h"
#include "vecmath.h"
#include <math.h>
#include <float.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---- scalar twins -------------------------------------------------------------

void quern_layernorm_scalar(const float *x, size_t rows, size_t n, size_t ld, const float *gamma,
                            const float *beta, float eps, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float *yr = y + r * ld;
        // Sums in double: the plain twin favours accuracy over speed.
        double sum = 0;
        for (size_t j = 0; j < n; j++) sum += xr[j];
        float mean = (float)(sum / (double)n);
        double sq = 0;
        for (size_t j = 0; j < n; j++) sq += ((double)xr[j] - mean) * ((double)xr[j] - mean);
        float var = (float)(sq / (double)n);
        float inv = 1.0f / sqrtf(var + eps);
        for (size_t j = 0; j < n; j++) yr[j] = (xr[j] - mean) * inv * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
    }
}

void quern_residual_layernorm_scalar(float *x, const float *d, size_t rows, size_t n, const float *gamma,
                                     const float *beta, float eps) {
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < n; j++) x[r * n + j] += d[r * n + j];
        quern_layernorm_scalar(x + r * n, 1, n, n, gamma, beta, eps, x + r * n);
    }
}

void quern_softmax_scalar(float *x, size_t rows, size_t n, size_t ld, const uint8_t *keep) {
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * ld;
        float mx = -FLT_MAX;
        int any = 0;
        for (size_t j = 0; j < n; j++)
            if (!keep || keep[j]) { mx = xr[j] > mx ? xr[j] : mx; any = 1; }
        if (!any) {  // every position masked: no distribution to speak of
            for (size_t j = 0; j < n; j++) xr[j] = 0;
            continue;
        }
        float sum = 0;
        for (size_t j = 0; j < n; j++) {
            float e = (!keep || keep[j]) ? expf(xr[j] - mx) : 0;
            xr[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (size_t j = 0; j < n; j++) xr[j] *= inv;
    }
}

#if defined(__x86_64__)

// ---- AVX2 ---------------------------------------------------------------------------


TARGET_AVX2 void quern_layernorm_avx2(const float *x, size_t rows, size_t n, size_t ld, const float *gamma,
                                      const float *beta, float eps, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld;
        float *yr = y + r * ld;
        __m256 s = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 8 <= n; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xr + j));
        float mean = hsum_avx2(s);
        for (; j < n; j++) mean += xr[j];
        mean /= (float)n;
        // Corrected two-pass variance (Chan, Golub, LeVeque): the second pass also sums the
        // deviations, whose mean is the first pass's rounding error, and takes it back out.
        __m256 vm = _mm256_set1_ps(mean), v = _mm256_setzero_ps(), vd = _mm256_setzero_ps();
        for (j = 0; j + 8 <= n; j += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + j), vm);
            v = _mm256_fmadd_ps(d, d, v);
            vd = _mm256_add_ps(vd, d);
        }
        float sq = hsum_avx2(v), dev = hsum_avx2(vd);
        for (; j < n; j++) {
            float d = xr[j] - mean;
            sq += d * d;
            dev += d;
        }
        float var = (sq - dev * dev / (float)n) / (float)n;
        mean += dev / (float)n;
        vm = _mm256_set1_ps(mean);
        float inv = 1.0f / sqrtf((var > 0 ? var : 0) + eps);
        __m256 vi = _mm256_set1_ps(inv);
        for (j = 0; j + 8 <= n; j += 8) {
            __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vm), vi);
            if (gamma) t = _mm256_mul_ps(t, _mm256_loadu_ps(gamma + j));
            if (beta) t = _mm256_add_ps(t, _mm256_loadu_ps(beta + j));
            _mm256_storeu_ps(yr + j, t);
        }
        for (; j < n; j++) yr[j] = (xr[j] - mean) * inv * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
    }
}

TARGET_AVX2 void quern_softmax_avx2(float *x, size_t rows, size_t n, size_t ld, const uint8_t *keep) {
    if (keep) {  // masked rows are short (attention over padded keys); the twin is fine
        quern_softmax_scalar(x, rows, n, ld, keep);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * ld;
        __m256 vmx = _mm256_set1_ps(-FLT_MAX);
        size_t j = 0;
        for (; j + 8 <= n; j += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(xr + j));
        float lanes[8], mx = -FLT_MAX;
        _mm256_storeu_ps(lanes, vmx);
        for (int l = 0; l < 8; l++) mx = lanes[l] > mx ? lanes[l] : mx;
        for (; j < n; j++) mx = xr[j] > mx ? xr[j] : mx;
        __m256 vm = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
        for (j = 0; j + 8 <= n; j += 8) {
            __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vm));
            _mm256_storeu_ps(xr + j, e);
            vs = _mm256_add_ps(vs, e);
        }
        float sum = hsum_avx2(vs);
        for (; j < n; j++) { xr[j] = expf(xr[j] - mx); sum += xr[j]; }
        __m256 vi = _mm256_set1_ps(1.0f / sum);
        float inv = 1.0f / sum;
        for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(xr + j, _mm256_mul_ps(_mm256_loadu_ps(xr + j), vi));
        for (; j < n; j++) xr[j] *= inv;
    }
}

// Row by row, so the sum is still in L1 when the norm reads it.
TARGET_AVX2 void quern_residual_layernorm_avx2(float *x, const float *d, size_t rows, size_t n, const float *gamma,
                                               const float *beta, float eps) {
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        const float *dr = d + r * n;
        size_t j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(xr + j, _mm256_add_ps(_mm256_loadu_ps(xr + j), _mm256_loadu_ps(dr + j)));
        for (; j < n; j++) xr[j] += dr[j];
        quern_layernorm_avx2(xr, 1, n, n, gamma, beta, eps, xr);
    }
}

#else

void quern_residual_layernorm_avx2(float *x, const float *d, size_t rows, size_t n, const float *gamma,
                                   const float *beta, float eps) {
    quern_residual_layernorm_scalar(x, d, rows, n, gamma, beta, eps);
}
void quern_layernorm_avx2(const float *x, size_t rows, size_t n, size_t ld, const float *gamma,
                          const float *beta, float eps, float *y) {
    quern_layernorm_scalar(x, rows, n, ld, gamma, beta, eps, y);
}
void quern_softmax_avx2(float *x, size_t rows, size_t n, size_t ld, const uint8_t *keep) {
    quern_softmax_scalar(x, rows, n, ld, keep);
}

#endif
