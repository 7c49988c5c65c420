// Vector math for the SIMD kernels (internal to CKernels): the attributes, three 16- or
// 8-float vector vocabularies, and exp and the activations for each width
// (vecmath_body.h).
//
//   v8_*   one ymm register (AVX2 + FMA)
//   z16_*  one zmm register (AVX-512)
//   e16_*  a zmm emulated by two ymm halves: bodies written against the 16-lane
//          vocabulary compile as both z16 and e16, and the e16 copy runs on any AVX2
//          machine, so their indexing and edge handling are tested where AVX-512 is absent.
//   z16i_* / e16i_*  the same for 16 int32 lanes, with vpdpbusd (emulated exactly).
#ifndef QUERN_VECMATH_H
#define QUERN_VECMATH_H
#include "ckernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

// The attributes every AVX2 and AVX-512 function in CKernels carries (one definition
// for all files).
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")))
#define TARGET_AVX512VNNI __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

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

// ---- the ops each width provides ----------------------------------------------------
// set1, add, sub, mul, div, min, max, abs; fma(a, b, c) = a·b + c, fnma(a, b, c) = c − a·b
// (one rounding); round (to nearest even); pow2(k) = 2^k for integral k in float
// [−127, 128]; rcp (an estimate of at least 11 bits); copysign(magnitude, sign);
// select_negative(w, x, y) = w < 0 ? x : y; select_less(a, b, x, y) = a < b ? x : y.
#define VEC_OPS(P, T, TARGET, W, CMPLT, SELECT, RCP)                                                        \
    TARGET static inline T P##set1(float x) { return _mm##W##_set1_ps(x); }                                \
    TARGET static inline T P##add(T a, T b) { return _mm##W##_add_ps(a, b); }                               \
    TARGET static inline T P##sub(T a, T b) { return _mm##W##_sub_ps(a, b); }                               \
    TARGET static inline T P##mul(T a, T b) { return _mm##W##_mul_ps(a, b); }                               \
    TARGET static inline T P##div(T a, T b) { return _mm##W##_div_ps(a, b); }                               \
    TARGET static inline T P##min(T a, T b) { return _mm##W##_min_ps(a, b); }                               \
    TARGET static inline T P##max(T a, T b) { return _mm##W##_max_ps(a, b); }                               \
    TARGET static inline T P##fma(T a, T b, T c) { return _mm##W##_fmadd_ps(a, b, c); }                     \
    TARGET static inline T P##fnma(T a, T b, T c) { return _mm##W##_fnmadd_ps(a, b, c); }                   \
    TARGET static inline T P##abs(T a) { return _mm##W##_andnot_ps(_mm##W##_set1_ps(-0.0f), a); }           \
    TARGET static inline T P##copysign(T m, T s) {                                                          \
        const T sign = _mm##W##_set1_ps(-0.0f);                                                             \
        return _mm##W##_or_ps(_mm##W##_andnot_ps(sign, m), _mm##W##_and_ps(sign, s));                       \
    }                                                                                                       \
    TARGET static inline T P##pow2(T k) {                                                                   \
        return _mm##W##_castsi##W##_ps(                                                                     \
            _mm##W##_slli_epi32(_mm##W##_add_epi32(_mm##W##_cvtps_epi32(k), _mm##W##_set1_epi32(127)), 23)); \
    }                                                                                                       \
    TARGET static inline T P##rcp(T a) { return RCP(a); }                                                   \
    TARGET static inline T P##select_less(T a, T b, T x, T y) { return SELECT(CMPLT(a, b), x, y); }         \
    TARGET static inline T P##select_negative(T w, T x, T y) {                                              \
        return P##select_less(w, _mm##W##_setzero_ps(), x, y);                                              \
    }

#define V8_CMPLT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V8_SELECT(m, x, y) _mm256_blendv_ps(y, x, m)
VEC_OPS(v8_, __m256, TARGET_AVX2, 256, V8_CMPLT, V8_SELECT, _mm256_rcp_ps)
TARGET_AVX2 static inline __m256 v8_round(__m256 a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

#define Z16_CMPLT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define Z16_SELECT(m, x, y) _mm512_mask_blend_ps(m, y, x)
VEC_OPS(z16_, __m512, TARGET_AVX512, 512, Z16_CMPLT, Z16_SELECT, _mm512_rcp14_ps)
TARGET_AVX512 static inline __m512 z16_round(__m512 a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#undef VEC_OPS

#define VT __m256
#define VTARGET TARGET_AVX2
#define VM(name) name##_avx2
#define VP(op) v8_##op
#include "vecmath_body.h"

#define VT __m512
#define VTARGET TARGET_AVX512
#define VM(name) name##_avx512
#define VP(op) z16_##op
#include "vecmath_body.h"

// ---- load/store vocabulary: v8, and 16 lanes in two forms ---------------------------
// zero, load, store, bcast (the float at p in every lane), set1, add, sub, mul, max,
// fma(a, b, c) = a·b + c, exp, act, hsum, hmax, head(v, n, fill): lanes ≥ n set to fill,
// and centered(acc, colsum, zp) = float(acc[j] − zp·colsum[j]) (the int8 epilogue's).

TARGET_AVX2 static inline __m256 v8_load(const float *p) { return _mm256_loadu_ps(p); }
TARGET_AVX2 static inline void v8_store(float *p, __m256 v) { _mm256_storeu_ps(p, v); }
TARGET_AVX2 static inline __m256 v8_act(__m256 v, quern_act act) { return act_avx2(v, act); }
TARGET_AVX2 static inline __m256i v8_centered_i(const int32_t *acc, const int32_t *colsum, int32_t zp) {
    return _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)acc),
                            _mm256_mullo_epi32(_mm256_set1_epi32(zp), _mm256_loadu_si256((const __m256i *)colsum)));
}
TARGET_AVX2 static inline __m256 v8_centered(const int32_t *acc, const int32_t *colsum, int32_t zp) {
    return _mm256_cvtepi32_ps(v8_centered_i(acc, colsum, zp));
}

typedef __m512 z16;
TARGET_AVX512 static inline z16 z16_zero(void) { return _mm512_setzero_ps(); }
TARGET_AVX512 static inline z16 z16_load(const float *p) { return _mm512_loadu_ps(p); }
TARGET_AVX512 static inline void z16_store(float *p, z16 v) { _mm512_storeu_ps(p, v); }
TARGET_AVX512 static inline z16 z16_bcast(const float *p) { return _mm512_set1_ps(*p); }
TARGET_AVX512 static inline z16 z16_exp(z16 v) { return exp_avx512(v); }
TARGET_AVX512 static inline z16 z16_act(z16 v, quern_act act) { return act_avx512(v, act); }
TARGET_AVX512 static inline float z16_hsum(z16 v) { return _mm512_reduce_add_ps(v); }
TARGET_AVX512 static inline float z16_hmax(z16 v) { return _mm512_reduce_max_ps(v); }
TARGET_AVX512 static inline z16 z16_centered(const int32_t *acc, const int32_t *colsum, int32_t zp) {
    return _mm512_cvtepi32_ps(
        _mm512_sub_epi32(_mm512_loadu_si512(acc), _mm512_mullo_epi32(_mm512_set1_epi32(zp), _mm512_loadu_si512(colsum))));
}
TARGET_AVX512 static inline z16 z16_head(z16 v, size_t n, z16 fill) {
    return n >= 16 ? v : _mm512_mask_blend_ps((__mmask16)((1u << n) - 1), fill, v);
}

// bfloat16 for the bf16 attention body: bf16_row writes n floats (a multiple of 16) as
// bf16 (round to nearest even), bf16_pairs interleaves two bf16 rows of n into n 32-bit
// words (a[c] low, b[c] high), bcast32 broadcasts a word of two bf16, and dpbf16(acc, a,
// b) adds each lane's two products a·b (odd element first, then even: vdpbf16ps's order;
// bf16 products are exact in fp32, so the emulation below is exact too).
#define TARGET_AVX512BF16 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
TARGET_AVX512BF16 static inline void z16_bf16_row(const float *x, uint16_t *out, size_t n) {
    for (size_t i = 0; i < n; i += 16) _mm256_storeu_si256((__m256i *)(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
}
TARGET_AVX512BF16 static inline void z16_bf16_pairs(const uint16_t *a, const uint16_t *b, uint32_t *out, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + i)));
        _mm512_storeu_si512(out + i, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}
TARGET_AVX512BF16 static inline __m512 z16_bcast32(const uint32_t *p) {
    return _mm512_castsi512_ps(_mm512_set1_epi32((int32_t)*p));
}
TARGET_AVX512BF16 static inline __m512 z16_dpbf16(__m512 acc, __m512 a, __m512 b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

typedef struct { __m256 lo, hi; } e16;
#define E16_LIFT1(name, f) \
    TARGET_AVX2 static inline e16 e16_##name(e16 a) { return (e16){f(a.lo), f(a.hi)}; }
#define E16_LIFT2(name, f) \
    TARGET_AVX2 static inline e16 e16_##name(e16 a, e16 b) { return (e16){f(a.lo, b.lo), f(a.hi, b.hi)}; }
E16_LIFT2(add, _mm256_add_ps)
E16_LIFT2(sub, _mm256_sub_ps)
E16_LIFT2(mul, _mm256_mul_ps)
E16_LIFT2(max, _mm256_max_ps)
E16_LIFT1(exp, exp_avx2)
#undef E16_LIFT1
#undef E16_LIFT2
TARGET_AVX2 static inline e16 e16_zero(void) { return (e16){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
TARGET_AVX2 static inline e16 e16_load(const float *p) { return (e16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
TARGET_AVX2 static inline void e16_store(float *p, e16 v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
TARGET_AVX2 static inline e16 e16_bcast(const float *p) { return (e16){_mm256_broadcast_ss(p), _mm256_broadcast_ss(p)}; }
TARGET_AVX2 static inline e16 e16_set1(float x) { return (e16){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
TARGET_AVX2 static inline e16 e16_fma(e16 a, e16 b, e16 c) {
    return (e16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
TARGET_AVX2 static inline e16 e16_act(e16 v, quern_act act) { return (e16){act_avx2(v.lo, act), act_avx2(v.hi, act)}; }
TARGET_AVX2 static inline float e16_hsum(e16 v) { return hsum_avx2(_mm256_add_ps(v.lo, v.hi)); }
TARGET_AVX2 static inline float e16_hmax(e16 v) { return hmax_avx2(_mm256_max_ps(v.lo, v.hi)); }
TARGET_AVX2 static inline e16 e16_centered(const int32_t *acc, const int32_t *colsum, int32_t zp) {
    return (e16){v8_centered(acc, colsum, zp), v8_centered(acc + 8, colsum + 8, zp)};
}
static inline uint16_t bf16_nearest(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    return (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}
TARGET_AVX2 static inline void e16_bf16_row(const float *x, uint16_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = bf16_nearest(x[i]);
}
TARGET_AVX2 static inline void e16_bf16_pairs(const uint16_t *a, const uint16_t *b, uint32_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint32_t)a[i] | (uint32_t)b[i] << 16;
}
TARGET_AVX2 static inline e16 e16_bcast32(const uint32_t *p) {
    __m256 v = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t)*p));
    return (e16){v, v};
}
// The odd (high) bf16 of each 32-bit lane as fp32, then the even (low) one.
TARGET_AVX2 static inline __m256 bf16_high(__m256 v) {
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32((int32_t)0xFFFF0000u)));
}
TARGET_AVX2 static inline __m256 bf16_low(__m256 v) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(v), 16));
}
TARGET_AVX2 static inline __m256 dpbf16_avx2(__m256 acc, __m256 a, __m256 b) {
    acc = _mm256_fmadd_ps(bf16_high(a), bf16_high(b), acc);
    return _mm256_fmadd_ps(bf16_low(a), bf16_low(b), acc);
}
TARGET_AVX2 static inline e16 e16_dpbf16(e16 acc, e16 a, e16 b) {
    return (e16){dpbf16_avx2(acc.lo, a.lo, b.lo), dpbf16_avx2(acc.hi, a.hi, b.hi)};
}
TARGET_AVX2 static inline e16 e16_head(e16 v, size_t n, e16 fill) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 lo = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 16 ? n : 16)), lane));
    __m256 hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 16 ? n : 16) - 8), lane));
    return (e16){_mm256_blendv_ps(fill.lo, v.lo, lo), _mm256_blendv_ps(fill.hi, v.hi, hi)};
}

// ---- 16 int32 lanes, two forms: zero, load, store, bcast (the 32-bit word at p in
// every lane), add, and dpbusd(acc, a, b): acc + the four u8(a)·s8(b) products of each
// 32-bit group, exact.

typedef __m512i z16i;
TARGET_AVX512VNNI static inline z16i z16i_zero(void) { return _mm512_setzero_si512(); }
TARGET_AVX512VNNI static inline z16i z16i_load(const void *p) { return _mm512_loadu_si512(p); }
TARGET_AVX512VNNI static inline void z16i_store(void *p, z16i v) { _mm512_storeu_si512(p, v); }
TARGET_AVX512VNNI static inline z16i z16i_bcast(const uint32_t *p) { return _mm512_set1_epi32((int32_t)*p); }
TARGET_AVX512VNNI static inline z16i z16i_add(z16i a, z16i b) { return _mm512_add_epi32(a, b); }
TARGET_AVX512VNNI static inline z16i z16i_dpbusd(z16i acc, z16i a, z16i b) { return _mm512_dpbusd_epi32(acc, a, b); }

// vpdpbusd on AVX2: the even and odd bytes of each 16-bit lane, widened (A unsigned, B
// sign-extended), then two vpmaddwd: together the four products of each 32-bit group.
TARGET_AVX2 static inline __m256i dpbusd_avx2(__m256i acc, __m256i a, __m256i b) {
    __m256i a_even = _mm256_and_si256(a, _mm256_set1_epi16(0x00FF));
    __m256i a_odd = _mm256_srli_epi16(a, 8);
    __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8);
    __m256i b_odd = _mm256_srai_epi16(b, 8);
    __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(a_even, b_even), _mm256_madd_epi16(a_odd, b_odd));
    return _mm256_add_epi32(acc, sum);
}

typedef struct { __m256i lo, hi; } e16i;
TARGET_AVX2 static inline e16i e16i_zero(void) { return (e16i){_mm256_setzero_si256(), _mm256_setzero_si256()}; }
TARGET_AVX2 static inline e16i e16i_load(const void *p) {
    return (e16i){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)p + 1)};
}
TARGET_AVX2 static inline void e16i_store(void *p, e16i v) {
    _mm256_storeu_si256((__m256i *)p, v.lo);
    _mm256_storeu_si256((__m256i *)p + 1, v.hi);
}
TARGET_AVX2 static inline e16i e16i_bcast(const uint32_t *p) {
    __m256i v = _mm256_set1_epi32((int32_t)*p);
    return (e16i){v, v};
}
TARGET_AVX2 static inline e16i e16i_add(e16i a, e16i b) {
    return (e16i){_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)};
}
TARGET_AVX2 static inline e16i e16i_dpbusd(e16i acc, e16i a, e16i b) {
    return (e16i){dpbusd_avx2(acc.lo, a.lo, b.lo), dpbusd_avx2(acc.hi, a.hi, b.hi)};
}

#endif
#endif
