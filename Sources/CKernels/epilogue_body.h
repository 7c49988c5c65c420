// The GEMM epilogues (bias + activation for fp32, dequantize + bias + activation for
// int8), written once against a vector vocabulary of vecmath.h and included by
// epilogue.c for each width: ymm (v8), zmm (z16) and the emulated zmm (e16).
//
// The includer defines EP_TARGET, EP_SUFFIX (the names' ending: avx2, avx512, …), VF
// (the vector type), V(op) (the vocabulary) and EP_LANES; this file undefines them.
// Columns past the last whole vector go through one zero-padded vector, so every column
// gets the same arithmetic wherever it falls.

#define EP_JOIN2(a, b) a##b
#define EP_JOIN(a, b) EP_JOIN2(a, b)
#define EP_NAME(name) EP_JOIN(name, EP_SUFFIX)

// One activation over the rows; always inlined with a constant `act`, so each
// activation gets its own loop instead of a jump table per vector.
EP_TARGET static inline __attribute__((always_inline)) void
EP_NAME(bias_act_rows_)(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act) {
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        size_t j = 0;
        for (; j + EP_LANES <= n; j += EP_LANES) {
            VF v = V(load)(ci + j);
            if (bias) v = V(add)(v, V(load)(bias + j));
            V(store)(ci + j, V(act)(v, act));
        }
        if (j < n) {
            float t[EP_LANES] = {0}, tb[EP_LANES] = {0};
            memcpy(t, ci + j, (n - j) * sizeof(float));
            if (bias) memcpy(tb, bias + j, (n - j) * sizeof(float));
            V(store)(t, V(act)(V(add)(V(load)(t), V(load)(tb)), act));
            memcpy(ci + j, t, (n - j) * sizeof(float));
        }
    }
}

EP_TARGET static inline __attribute__((always_inline)) void
EP_NAME(dequantize_rows_)(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                          const float *row_scale, const int32_t *row_zp, const float *col_scale,
                          const int32_t *colsum, const float *bias, quern_act act) {
    for (size_t i = 0; i < m; i++) {
        const VF rs = V(set1)(row_scale[i]);
        size_t j = 0;
        for (; j + EP_LANES <= n; j += EP_LANES) {
            VF v = V(mul)(V(mul)(rs, V(load)(col_scale + j)), V(centered)(acc + i * ldacc + j, colsum + j, row_zp[i]));
            if (bias) v = V(add)(v, V(load)(bias + j));
            V(store)(y + i * ldy + j, V(act)(v, act));
        }
        if (j < n) {
            int32_t ta[EP_LANES] = {0}, tc[EP_LANES] = {0};
            float ts[EP_LANES] = {0}, tb[EP_LANES] = {0}, t[EP_LANES];
            memcpy(ta, acc + i * ldacc + j, (n - j) * sizeof(int32_t));
            memcpy(tc, colsum + j, (n - j) * sizeof(int32_t));
            memcpy(ts, col_scale + j, (n - j) * sizeof(float));
            if (bias) memcpy(tb, bias + j, (n - j) * sizeof(float));
            VF v = V(add)(V(mul)(V(mul)(rs, V(load)(ts)), V(centered)(ta, tc, row_zp[i])), V(load)(tb));
            V(store)(t, V(act)(v, act));
            memcpy(y + i * ldy + j, t, (n - j) * sizeof(float));
        }
    }
}

#define EP_BY_ACT(call)                                                                                    \
    switch (act) {                                                                                         \
    case QUERN_ACT_RELU: call(QUERN_ACT_RELU); break;                                                      \
    case QUERN_ACT_GELU: call(QUERN_ACT_GELU); break;                                                      \
    case QUERN_ACT_TANH: call(QUERN_ACT_TANH); break;                                                      \
    case QUERN_ACT_SIGMOID: call(QUERN_ACT_SIGMOID); break;                                                \
    default: call(QUERN_ACT_NONE); break;                                                                  \
    }

EP_TARGET void EP_NAME(quern_bias_act_)(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act) {
#define EP_CALL(code) EP_NAME(bias_act_rows_)(c, ldc, m, n, bias, code)
    EP_BY_ACT(EP_CALL)
#undef EP_CALL
}

EP_TARGET void EP_NAME(quern_dequantize_)(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                                          const float *row_scale, const int32_t *row_zp, const float *col_scale,
                                          const int32_t *colsum, const float *bias, quern_act act) {
#define EP_CALL(code) \
    EP_NAME(dequantize_rows_)(acc, ldacc, m, n, y, ldy, row_scale, row_zp, col_scale, colsum, bias, code)
    EP_BY_ACT(EP_CALL)
#undef EP_CALL
}

#undef EP_BY_ACT
#undef EP_NAME
#undef EP_JOIN
#undef EP_JOIN2
#undef EP_TARGET
#undef EP_SUFFIX
#undef EP_LANES
#undef VF
#undef V
