#include "ckernels.h"
#include "vecmath.h"
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The element-wise steps of decoder blocks that no GEMM epilogue holds: SwiGLU's gate
// and GPT-2's tanh GELU. Rows are independent, so a row's result never depends on
// which rows share the call.

// √(2/π), GPT-2's "gelu_new" constant.
static const float GELU_TANH_C = 0.7978845608028654f;

void quern_gated_silu_scalar(const float *gate_up, size_t rows, size_t n, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *g = gate_up + r * 2 * n, *u = g + n;
        float *o = out + r * n;
        for (size_t i = 0; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

void quern_gelu_tanh_scalar(float *x, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(GELU_TANH_C * (v + 0.044715f * v * v * v)));
    }
}

#if defined(__x86_64__)

TARGET_AVX2 void quern_gated_silu_avx2(const float *gate_up, size_t rows, size_t n, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *g = gate_up + r * 2 * n, *u = g + n;
        float *o = out + r * n;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 gv = _mm256_loadu_ps(g + i);
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid_avx2(gv)), _mm256_loadu_ps(u + i)));
        }
        for (; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

TARGET_AVX2 void quern_gelu_tanh_avx2(float *x, size_t count) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), c = _mm256_set1_ps(GELU_TANH_C),
                 cubic = _mm256_set1_ps(0.044715f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 inner = _mm256_mul_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(cubic, v), _mm256_mul_ps(v, v), v));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, tanh_avx2(inner))));
    }
    quern_gelu_tanh_scalar(x + i, count - i);
}

#else

void quern_gated_silu_avx2(const float *gate_up, size_t rows, size_t n, float *out) {
    quern_gated_silu_scalar(gate_up, rows, n, out);
}
void quern_gelu_tanh_avx2(float *x, size_t count) { quern_gelu_tanh_scalar(x, count); }

#endif
