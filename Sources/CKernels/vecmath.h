// Vector math for the AVX2 kernels (internal to CKernels): exp and the activations
// (exact GELU, tanh, sigmoid), each checked against libm by the tests.
#ifndef QUERN_VECMATH_H
#define QUERN_VECMATH_H
#include "ckernels.h"
#if defined(__x86_64__)
#include <immintrin.h>

// The attribute every AVX2 function in CKernels carries (one definition for all files).
#define TARGET_AVX2 __attribute__((target("avx2,fma")))

// Horizontal sum and maximum of the eight lanes.
TARGET_AVX2 static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET_AVX2 static inline float hmax_avx2(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// exp(x) for a vector: x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for exactness),
// e^r by a degree-6 polynomial (Cephes' expf coefficients), 2^k through the exponent
// bits. About 1 ulp on [-87, 88]; below that it flushes to 0, which softmax wants.
TARGET_AVX2 static inline __m256 exp_avx2(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447505531f);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// GELU(x) = x·Φ(x) = x · erfc(−x/√2) / 2. With a = |x|/√2, erfc(a) = e^{−a²} · t · S(t),
// t = 1/(1 + a/2) and S a degree-10 polynomial fitted to erfcx(a)/t over a in [0, 12]
// (about 2e-7 relative in float), so negative inputs keep their small values accurately
// instead of suffering 1 − erf cancellation. e^{−a²} and t·S(t) are independent chains:
// the single chain e^{−a² + P(t)} is about twice as deep and leaves the epilogues that
// run this latency-bound.
TARGET_AVX2 static inline __m256 gelu_avx2(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256 w = _mm256_mul_ps(x, _mm256_set1_ps(-0.70710678118654752f));     // w = −x/√2
    __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), w);                   // |w|
    __m256 gauss = exp_avx2(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), a), a));
    // t = 1/d by the reciprocal estimate and one Newton step (d in [1, ∞): no
    // special cases; about 23 bits, next to a division's 7-cycle throughput).
    __m256 d = _mm256_fmadd_ps(half, a, one);
    __m256 t = _mm256_rcp_ps(d);
    t = _mm256_mul_ps(t, _mm256_fnmadd_ps(d, t, _mm256_set1_ps(2.0f)));
    __m256 p = _mm256_set1_ps(4.248227552e-02f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-2.314950675e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(4.875133932e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-4.485304356e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.281889081e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-5.771970004e-02f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(9.313459694e-02f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.753549129e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.468825281e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.820937634e-01f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.820948064e-01f));
    __m256 erfc_a = _mm256_mul_ps(gauss, _mm256_mul_ps(t, p));               // erfc(|w|)
    // erfc(w) = erfc(|w|) for w ≥ 0, 2 − erfc(|w|) for w < 0.
    __m256 negative = _mm256_cmp_ps(w, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 erfc_w = _mm256_blendv_ps(erfc_a, _mm256_sub_ps(_mm256_set1_ps(2.0f), erfc_a), negative);
    return _mm256_mul_ps(_mm256_mul_ps(half, x), erfc_w);
}

// tanh(x): for |x| < 0.625 the odd polynomial x + x³·P(x²) (Cephes' tanhf), which keeps
// full relative accuracy near 0; above, 1 − 2/(e^{2|x|} + 1) with the sign restored.
TARGET_AVX2 static inline __m256 tanh_avx2(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-5.70498872745E-3f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954E-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531E-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036E-1f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422E-1f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
    __m256 e = exp_avx2(_mm256_add_ps(a, a));
    __m256 large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    large = _mm256_or_ps(large, _mm256_and_ps(sign, x));
    __m256 use_small = _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm256_blendv_ps(large, small, use_small);
}

// sigmoid(x) = 1 / (1 + e^{−x}); exp_avx2's clamping gives 0 and 1 at the far ends.
TARGET_AVX2 static inline __m256 sigmoid_avx2(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// The activations of ckernels.h (quern_act), eight lanes at a time.
TARGET_AVX2 static inline __m256 act_avx2(__m256 v, quern_act act) {
    switch (act) {
    case QUERN_ACT_RELU: return _mm256_max_ps(v, _mm256_setzero_ps());
    case QUERN_ACT_GELU: return gelu_avx2(v);
    case QUERN_ACT_TANH: return tanh_avx2(v);
    case QUERN_ACT_SIGMOID: return sigmoid_avx2(v);
    default: return v;
    }
}

#endif
#endif
