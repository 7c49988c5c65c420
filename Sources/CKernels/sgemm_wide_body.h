// The 6×32 fp32 tile for AVX-512, written once against a small vector vocabulary and
// included by sgemm.c twice: with real zmm registers, and with each zmm emulated by two
// ymm halves. The emulated copy runs on any AVX2 machine, so the body's indexing,
// edge handling and accumulation are tested even where AVX-512 is absent; only the
// instructions themselves differ between the copies.
//
// The includer defines WIDE_TARGET (function attribute), WIDE_ROWS and WIDE_NAME (the
// two function names), VF (a 16-float vector) and VF_ZERO, VF_LOAD, VF_BCAST, VF_FMA,
// VF_ADD, VF_STORE; this file undefines them at its end.
//
// Two B panels (32 columns) per tile: 12 accumulators, so six rows × two vectors keep
// two FMA pipes of latency 4 busy, and each A broadcast feeds two FMAs.

WIDE_TARGET static inline __attribute__((always_inline)) void
WIDE_ROWS(const int M, size_t k, const float *a, const float *b0, const float *b1, float *c, size_t ldc,
          int accumulate) {
    VF acc[MR][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = VF_ZERO();
    for (size_t p = 0; p < k; p++) {
        VF x0 = VF_LOAD(b0 + p * NR), x1 = VF_LOAD(b1 + p * NR);
        for (int i = 0; i < M; i++) {
            VF ai = VF_BCAST(a + p * MR + i);
            acc[i][0] = VF_FMA(ai, x0, acc[i][0]);
            acc[i][1] = VF_FMA(ai, x1, acc[i][1]);
        }
    }
    for (int i = 0; i < M; i++) {
        float *ci = c + i * ldc;
        if (accumulate) {
            acc[i][0] = VF_ADD(acc[i][0], VF_LOAD(ci));
            acc[i][1] = VF_ADD(acc[i][1], VF_LOAD(ci + NR));
        }
        VF_STORE(ci, acc[i][0]);
        VF_STORE(ci + NR, acc[i][1]);
    }
}

WIDE_TARGET void WIDE_NAME(size_t k, const float *a, const float *b0, const float *b1, float *c, size_t ldc,
                           size_t m, size_t n, int accumulate) {
    if (!b1) b1 = b0;  // only one panel left: compute it twice and keep the first copy
    int full = n == 2 * NR;
    float tmp[MR * 2 * NR];
    float *dst = full ? c : tmp;
    size_t ld = full ? ldc : 2 * NR;
    if (!full && accumulate)
        for (size_t i = 0; i < m; i++) memcpy(tmp + i * 2 * NR, c + i * ldc, n * sizeof(float));
    switch (m) {
    case 1: WIDE_ROWS(1, k, a, b0, b1, dst, ld, accumulate); break;
    case 2: WIDE_ROWS(2, k, a, b0, b1, dst, ld, accumulate); break;
    case 3: WIDE_ROWS(3, k, a, b0, b1, dst, ld, accumulate); break;
    case 4: WIDE_ROWS(4, k, a, b0, b1, dst, ld, accumulate); break;
    case 5: WIDE_ROWS(5, k, a, b0, b1, dst, ld, accumulate); break;
    default: WIDE_ROWS(6, k, a, b0, b1, dst, ld, accumulate); break;
    }
    if (!full)
        for (size_t i = 0; i < m; i++) memcpy(c + i * ldc, tmp + i * 2 * NR, n * sizeof(float));
}

// Each inclusion defines these anew.
#undef WIDE_TARGET
#undef WIDE_ROWS
#undef WIDE_NAME
#undef VF
#undef VF_ZERO
#undef VF_LOAD
#undef VF_BCAST
#undef VF_FMA
#undef VF_ADD
#undef VF_STORE
