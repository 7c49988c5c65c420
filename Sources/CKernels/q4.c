#include "ckernels.h"
#include "vecmath.h"
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { NR = QUERN_SGEMM_NR, G = QUERN_Q4_GROUP };

// params holds, per group, NR scales then NR offsets. The product q·scale is exact (a
// 4-bit integer times a scale of at most 17 significant bits, what GGUF's fp16 scales
// and K-quant sub-scales give), so fused and unfused forms round the same way and the
// result equals the reference dequantization bit for bit.
void quern_q4_dequant_panel_scalar(const uint8_t *nibbles, const float *params, size_t k0, size_t kcur, float *dst) {
    for (size_t p = 0; p < kcur; p++) {
        size_t k = k0 + p;
        const uint8_t *q = nibbles + k * (NR / 2);
        const float *scale = params + (k / G) * 2 * NR, *offset = scale + NR;
        for (int j = 0; j < NR / 2; j++) {
            dst[p * NR + j] = fmaf((float)(q[j] & 15), scale[j], offset[j]);
            dst[p * NR + j + 8] = fmaf((float)(q[j] >> 4), scale[j + 8], offset[j + 8]);
        }
    }
}

#if defined(__x86_64__)
TARGET_AVX2 void quern_q4_dequant_panel_avx2(const uint8_t *nibbles, const float *params, size_t k0, size_t kcur,
                                             float *dst) {
    const __m128i low = _mm_set1_epi8(15);
    size_t p = 0;
    while (p < kcur) {
        size_t k = k0 + p, g = k / G, end = (g + 1) * G - k0;
        if (end > kcur) end = kcur;
        const float *scale = params + g * 2 * NR;
        __m256 s0 = _mm256_loadu_ps(scale), s1 = _mm256_loadu_ps(scale + 8);
        __m256 o0 = _mm256_loadu_ps(scale + NR), o1 = _mm256_loadu_ps(scale + NR + 8);
        for (; p < end; p++) {
            __m128i b = _mm_loadl_epi64((const __m128i *)(nibbles + (k0 + p) * (NR / 2)));
            __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_and_si128(b, low)));
            __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(b, 4), low)));
            _mm256_storeu_ps(dst + p * NR, _mm256_fmadd_ps(lo, s0, o0));
            _mm256_storeu_ps(dst + p * NR + 8, _mm256_fmadd_ps(hi, s1, o1));
        }
    }
}
#else
void quern_q4_dequant_panel_avx2(const uint8_t *nibbles, const float *params, size_t k0, size_t kcur, float *dst) {
    quern_q4_dequant_panel_scalar(nibbles, params, k0, kcur, dst);
}
#endif
