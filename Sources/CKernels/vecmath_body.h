// exp and the activations (exact GELU, tanh, sigmoid), written once against a small
// vector vocabulary and included by vecmath.h for each vector width: ymm (…_avx2) and zmm
// (…_avx512). Each is checked against libm by the tests.
//
// The includer defines VT (the float vector), VTARGET (function attribute), VM(name)
// (the name of this width's function: name##_avx2) and VP(op) (this width's primitive
// op: v8_##op), whose ops vecmath.h lists; this file undefines them.

// exp(x): x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for exactness), e^r by a
// degree-6 polynomial (Cephes' expf coefficients), 2^k through the exponent bits. About
// 1 ulp on [-87, 88]; below that it flushes to 0, which softmax wants.
VTARGET static inline VT VM(exp)(VT x) {
    x = VP(min)(VP(max)(x, VP(set1)(-87.3365447505531f)), VP(set1)(88.3762626647949f));
    VT k = VP(round)(VP(mul)(x, VP(set1)(1.44269504088896341f)));
    VT r = VP(fnma)(k, VP(set1)(0.693359375f), x);
    r = VP(fnma)(k, VP(set1)(-2.12194440e-4f), r);
    VT p = VP(set1)(1.9875691500E-4f);
    p = VP(fma)(p, r, VP(set1)(1.3981999507E-3f));
    p = VP(fma)(p, r, VP(set1)(8.3334519073E-3f));
    p = VP(fma)(p, r, VP(set1)(4.1665795894E-2f));
    p = VP(fma)(p, r, VP(set1)(1.6666665459E-1f));
    p = VP(fma)(p, r, VP(set1)(5.0000001201E-1f));
    p = VP(fma)(VP(mul)(p, r), r, VP(add)(r, VP(set1)(1.0f)));
    return VP(mul)(p, VP(pow2)(k));
}

// GELU(x) = x·Φ(x) = x · erfc(−x/√2) / 2. With a = |x|/√2, erfc(a) = e^{−a²} · t · S(t),
// t = 1/(1 + a/2) and S a degree-10 polynomial fitted to erfcx(a)/t over a in [0, 12]
// (about 2e-7 relative in float), so negative inputs keep their small values accurately
// instead of suffering 1 − erf cancellation. e^{−a²} and t·S(t) are independent chains:
// the single chain e^{−a² + P(t)} is about twice as deep and leaves the epilogues that
// run this latency-bound.
VTARGET static inline VT VM(gelu)(VT x) {
    const VT half = VP(set1)(0.5f), one = VP(set1)(1.0f);
    VT w = VP(mul)(x, VP(set1)(-0.70710678118654752f));  // w = −x/√2
    VT a = VP(abs)(w);
    VT gauss = VM(exp)(VP(fnma)(a, a, VP(set1)(0.0f)));
    // t = 1/d by the reciprocal estimate and one Newton step (d in [1, ∞): no special
    // cases; about 23 bits, next to a division's 7-cycle throughput).
    VT d = VP(fma)(half, a, one);
    VT t = VP(rcp)(d);
    t = VP(mul)(t, VP(fnma)(d, t, VP(set1)(2.0f)));
    VT p = VP(set1)(4.248227552e-02f);
    p = VP(fma)(p, t, VP(set1)(-2.314950675e-01f));
    p = VP(fma)(p, t, VP(set1)(4.875133932e-01f));
    p = VP(fma)(p, t, VP(set1)(-4.485304356e-01f));
    p = VP(fma)(p, t, VP(set1)(1.281889081e-01f));
    p = VP(fma)(p, t, VP(set1)(-5.771970004e-02f));
    p = VP(fma)(p, t, VP(set1)(9.313459694e-02f));
    p = VP(fma)(p, t, VP(set1)(1.753549129e-01f));
    p = VP(fma)(p, t, VP(set1)(2.468825281e-01f));
    p = VP(fma)(p, t, VP(set1)(2.820937634e-01f));
    p = VP(fma)(p, t, VP(set1)(2.820948064e-01f));
    VT erfc_a = VP(mul)(gauss, VP(mul)(t, p));  // erfc(|w|)
    // erfc(w) = erfc(|w|) for w ≥ 0, 2 − erfc(|w|) for w < 0.
    VT erfc_w = VP(select_negative)(w, VP(sub)(VP(set1)(2.0f), erfc_a), erfc_a);
    return VP(mul)(VP(mul)(half, x), erfc_w);
}

// tanh(x): for |x| < 0.625 the odd polynomial x + x³·P(x²) (Cephes' tanhf), which keeps
// full relative accuracy near 0; above, 1 − 2/(e^{2|x|} + 1) with the sign restored.
VTARGET static inline VT VM(tanh)(VT x) {
    const VT one = VP(set1)(1.0f);
    VT a = VP(abs)(x);
    VT s = VP(mul)(x, x);
    VT p = VP(set1)(-5.70498872745E-3f);
    p = VP(fma)(p, s, VP(set1)(2.06390887954E-2f));
    p = VP(fma)(p, s, VP(set1)(-5.37397155531E-2f));
    p = VP(fma)(p, s, VP(set1)(1.33314422036E-1f));
    p = VP(fma)(p, s, VP(set1)(-3.33332819422E-1f));
    VT small = VP(fma)(VP(mul)(p, s), x, x);
    VT e = VM(exp)(VP(add)(a, a));
    VT large = VP(copysign)(VP(sub)(one, VP(div)(VP(set1)(2.0f), VP(add)(e, one))), x);
    return VP(select_less)(a, VP(set1)(0.625f), small, large);
}

// sigmoid(x) = 1 / (1 + e^{−x}); exp's clamping gives 0 and 1 at the far ends.
VTARGET static inline VT VM(sigmoid)(VT x) {
    const VT one = VP(set1)(1.0f);
    return VP(div)(one, VP(add)(one, VM(exp)(VP(sub)(VP(set1)(0.0f), x))));
}

// The activations of ckernels.h (quern_act).
VTARGET static inline VT VM(act)(VT v, quern_act act) {
    switch (act) {
    case QUERN_ACT_RELU: return VP(max)(v, VP(set1)(0.0f));
    case QUERN_ACT_GELU: return VM(gelu)(v);
    case QUERN_ACT_TANH: return VM(tanh)(v);
    case QUERN_ACT_SIGMOID: return VM(sigmoid)(v);
    default: return v;
    }
}

#undef VT
#undef VTARGET
#undef VM
#undef VP
