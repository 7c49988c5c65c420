// The 12×32 int8 tile for AVX512-VNNI, written once against a small vector vocabulary
// and included by qgemm.c twice: with real zmm registers and vpdpbusd, and with each zmm
// emulated by two ymm halves and vpdpbusd by vpmaddwd (exact either way). The emulated
// copy runs on any AVX2 machine, so the body's indexing, edge handling and accumulation
// are tested even where AVX-512 is absent; only the instructions differ between copies.
//
// Two quad panels (32 columns) per tile: a step of a panel is one 64-byte zmm (16
// columns × 4 K), so each row's 32-bit A broadcast feeds two vpdpbusd. Up to 12 rows (two
// MR-row A panels: a, then a_hi) give up to 24 independent accumulators in the 32 zmm
// registers, so each 128 bytes of weights loaded feed 24 vpdpbusd (decode-shaped
// products stream their weights from memory), where the 256-bit tile needs twice the
// instructions for the same work. Integer sums are exact in any order, so this equals
// the scalar twin bit for bit.
//
// The includer defines QW_TARGET (function attribute), QW_ROWS and QW_NAME (the two
// function names), VI (16 int32 lanes) and VI_ZERO, VI_LOAD, VI_BCAST (a 32-bit word
// to every lane), VI_DPBUSD(acc, a, b), VI_ADD, VI_STORE, VI_PREFETCH, and the enum
// QW_AHEAD (prefetch distance in steps; reading past a panel's end only prefetches the
// next panel, and a prefetch never faults); this file undefines the macros.

QW_TARGET static inline __attribute__((always_inline)) void
QW_ROWS(const int M, size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0, const int8_t *b1,
        int32_t *c, size_t ldc, int accumulate) {
    VI acc[2 * MR][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = VI_ZERO();
    for (size_t q = 0; q < kq; q++) {
        VI_PREFETCH(b0 + (q + QW_AHEAD) * QUERN_QGEMM_STEP_BYTES);
        VI_PREFETCH(b1 + (q + QW_AHEAD) * QUERN_QGEMM_STEP_BYTES);
        VI x0 = VI_LOAD(b0 + q * QUERN_QGEMM_STEP_BYTES), x1 = VI_LOAD(b1 + q * QUERN_QGEMM_STEP_BYTES);
        for (int i = 0; i < M; i++) {
            VI ai = VI_BCAST(i < MR ? a + q * MR + i : a_hi + q * MR + (i - MR));
            acc[i][0] = VI_DPBUSD(acc[i][0], ai, x0);
            acc[i][1] = VI_DPBUSD(acc[i][1], ai, x1);
        }
    }
    for (int i = 0; i < M; i++) {
        int32_t *ci = c + i * ldc;
        if (accumulate) {
            acc[i][0] = VI_ADD(acc[i][0], VI_LOAD(ci));
            acc[i][1] = VI_ADD(acc[i][1], VI_LOAD(ci + NR));
        }
        VI_STORE(ci, acc[i][0]);
        VI_STORE(ci + NR, acc[i][1]);
    }
}

QW_TARGET void QW_NAME(size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0, const int8_t *b1,
                       int32_t *c, size_t ldc, size_t m, size_t n, int accumulate) {
    if (!b1) b1 = b0;  // only one panel left: compute it twice and keep the first copy
    int full = n == 2 * NR;
    int32_t tmp[2 * MR * 2 * NR];
    int32_t *dst = full ? c : tmp;
    size_t ld = full ? ldc : 2 * NR;
    if (!full && accumulate)
        for (size_t i = 0; i < m; i++) memcpy(tmp + i * 2 * NR, c + i * ldc, n * sizeof(int32_t));
    switch (m) {
    case 1: QW_ROWS(1, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 2: QW_ROWS(2, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 3: QW_ROWS(3, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 4: QW_ROWS(4, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 5: QW_ROWS(5, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 6: QW_ROWS(6, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 7: QW_ROWS(7, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 8: QW_ROWS(8, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 9: QW_ROWS(9, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 10: QW_ROWS(10, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    case 11: QW_ROWS(11, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    default: QW_ROWS(12, kq, a, a_hi, b0, b1, dst, ld, accumulate); break;
    }
    if (!full)
        for (size_t i = 0; i < m; i++) memcpy(c + i * ldc, tmp + i * 2 * NR, n * sizeof(int32_t));
}

// Each inclusion defines these anew.
#undef QW_TARGET
#undef QW_ROWS
#undef QW_NAME
#undef VI
#undef VI_ZERO
#undef VI_LOAD
#undef VI_BCAST
#undef VI_DPBUSD
#undef VI_ADD
#undef VI_STORE
#undef VI_PREFETCH
