// The sparse kernels on 16-lane vectors, written once against vecmath.h's vocabularies
// and included by sparse.c twice: with zmm registers (z16, z16i) and with each zmm
// emulated by two ymm halves (e16, e16i), which runs on any AVX2 machine so that the
// tests cover these bodies everywhere.
//
// A 64-row block is four vectors. Each nonzero feeds four FMAs (or vpdpbusd) whose
// inputs are one broadcast weight and four loads of the block's transposed input row;
// consecutive nonzeros go to two sets of accumulators, so eight independent chains hide
// the FMA latency where four would wait on it.
//
// The includer defines SW_TARGET_F and SW_TARGET_I (attributes of the fp32 and int8
// kernels), SW_CSR_NAME and SW_Q1X4_NAME, V(op) and VI(op) (float and int vocabularies)
// and VF, VI_T (their types); this file undefines them.

SW_TARGET_F void SW_CSR_NAME(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                             const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate) {
    if (mb != QUERN_SPMM_BLOCK) {  // small or ragged blocks: the caller pads the usual ones
        quern_spmm_csr_scalar(xt, ldx, mb, rowptr, cols, vals, n0, n1, yt, ldy, accumulate);
        return;
    }
    for (size_t n = n0; n < n1; n++) {
        int32_t e = rowptr[n], end = rowptr[n + 1];
        float *y = yt + n * ldy;
        VF a[2][4];
        for (int c = 0; c < 4; c++) {
            a[0][c] = accumulate ? V(load)(y + 16 * c) : V(zero)();
            a[1][c] = V(zero)();
        }
        for (; e + 1 < end; e += 2) {
            const float *x0 = xt + (size_t)cols[e] * ldx, *x1 = xt + (size_t)cols[e + 1] * ldx;
            VF v0 = V(bcast)(vals + e), v1 = V(bcast)(vals + e + 1);
            for (int c = 0; c < 4; c++) {
                a[0][c] = V(fma)(v0, V(load)(x0 + 16 * c), a[0][c]);
                a[1][c] = V(fma)(v1, V(load)(x1 + 16 * c), a[1][c]);
            }
        }
        if (e < end) {
            const float *x0 = xt + (size_t)cols[e] * ldx;
            VF v0 = V(bcast)(vals + e);
            for (int c = 0; c < 4; c++) a[0][c] = V(fma)(v0, V(load)(x0 + 16 * c), a[0][c]);
        }
        for (int c = 0; c < 4; c++) V(store)(y + 16 * c, V(add)(a[0][c], a[1][c]));
    }
}

SW_TARGET_I void SW_Q1X4_NAME(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                              const int32_t *groups, const uint32_t *quads, size_t n0, size_t n1, int32_t *yt,
                              size_t ldy) {
    if (mb != QUERN_SPMM_BLOCK) {
        quern_spmm_q1x4_quads_scalar(xt, ldx, mb, rowptr, groups, quads, n0, n1, yt, ldy);
        return;
    }
    for (size_t n = n0; n < n1; n++) {
        int32_t e = rowptr[n], end = rowptr[n + 1];
        VI_T a[2][4];
        for (int c = 0; c < 4; c++) a[0][c] = a[1][c] = VI(zero)();
        for (; e + 1 < end; e += 2) {
            const uint32_t *x0 = xt + (size_t)groups[e] * ldx, *x1 = xt + (size_t)groups[e + 1] * ldx;
            VI_T w0 = VI(bcast)(quads + e), w1 = VI(bcast)(quads + e + 1);
            for (int c = 0; c < 4; c++) {
                a[0][c] = VI(dpbusd)(a[0][c], VI(load)(x0 + 16 * c), w0);
                a[1][c] = VI(dpbusd)(a[1][c], VI(load)(x1 + 16 * c), w1);
            }
        }
        if (e < end) {
            const uint32_t *x0 = xt + (size_t)groups[e] * ldx;
            VI_T w0 = VI(bcast)(quads + e);
            for (int c = 0; c < 4; c++) a[0][c] = VI(dpbusd)(a[0][c], VI(load)(x0 + 16 * c), w0);
        }
        int32_t *y = yt + n * ldy;
        for (int c = 0; c < 4; c++) VI(store)(y + 16 * c, VI(add)(a[0][c], a[1][c]));
    }
}

#undef SW_TARGET_F
#undef SW_TARGET_I
#undef SW_CSR_NAME
#undef SW_Q1X4_NAME
#undef V
#undef VI
#undef VF
#undef VI_T
