// The int8 tile, written once: MR rows × 16 int32 columns in 12 ymm accumulators; per
// K step a 32-bit broadcast of A per row, two 256-bit loads of B (QUERN_QGEMM_STEP_BYTES
// a step in both layouts) and one multiply-accumulate per accumulator. qgemm.c includes
// it once per tile kernel; the copies differ only in that multiply-accumulate and the B
// layout:
//   - K pairs widened to int16, vpmaddwd + vpaddd (AVX2);
//   - K quads of int8, vpdpbusd: AVX512-VNNI's EVEX form, AVX-VNNI's VEX form, and an
//     AVX2 emulation (two vpmaddwd over the even and odd bytes) that runs on any AVX2
//     machine, so the VNNI body is tested everywhere;
//   - K quads of int8 on AVX2 with vpmaddubsw, then vpmaddwd by ones.
// 256-bit vectors on every copy: AVX-VNNI has only 16 vector registers and the tile
// needs 15; on client cores a ymm vpdpbusd has the same throughput as a zmm one.
// Every copy but the vpmaddubsw one is exact for any weights: u8·s8 (or u8·s16 in pairs)
// products are summed into int32 without saturation (unlike vpdpbusds). vpmaddubsw
// saturates its int16 pair sums, so that copy is exact only for pair-bounded weights
// (see ckernels.h), and only such weights are given to it.
//
// The includer defines QUADS_TARGET, QUADS_ROWS, QUADS_NAME, QUADS_BTYPE (the B element
// type) and DPBUSD(acc, a, b); this file undefines them at its end.

QUADS_TARGET static inline __attribute__((always_inline)) void
QUADS_ROWS(const int M, size_t kq, const uint32_t *a, const QUADS_BTYPE *b, int32_t *c, size_t ldc, int accumulate) {
    const uint8_t *bytes = (const uint8_t *)b;
    __m256i acc[MR][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (size_t q = 0; q < kq; q++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(bytes + q * QUERN_QGEMM_STEP_BYTES));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(bytes + q * QUERN_QGEMM_STEP_BYTES + 32));
        for (int i = 0; i < M; i++) {
            __m256i ai = _mm256_set1_epi32((int32_t)a[q * MR + i]);
            acc[i][0] = DPBUSD(acc[i][0], ai, b0);
            acc[i][1] = DPBUSD(acc[i][1], ai, b1);
        }
    }
    for (int i = 0; i < M; i++) {
        int32_t *ci = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_loadu_si256((const __m256i *)ci));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_loadu_si256((const __m256i *)(ci + 8)));
        }
        _mm256_storeu_si256((__m256i *)ci, acc[i][0]);
        _mm256_storeu_si256((__m256i *)(ci + 8), acc[i][1]);
    }
}

QUADS_TARGET void QUADS_NAME(size_t kq, const uint32_t *a, const QUADS_BTYPE *b, int32_t *c, size_t ldc, size_t m,
                             size_t n, int accumulate) {
    int full = n == NR;
    int32_t tmp[MR * NR];
    int32_t *dst = full ? c : tmp;
    size_t ld = full ? ldc : NR;
    if (!full && accumulate)
        for (size_t i = 0; i < m; i++) memcpy(tmp + i * NR, c + i * ldc, n * sizeof(int32_t));
    switch (m) {
    case 1: QUADS_ROWS(1, kq, a, b, dst, ld, accumulate); break;
    case 2: QUADS_ROWS(2, kq, a, b, dst, ld, accumulate); break;
    case 3: QUADS_ROWS(3, kq, a, b, dst, ld, accumulate); break;
    case 4: QUADS_ROWS(4, kq, a, b, dst, ld, accumulate); break;
    case 5: QUADS_ROWS(5, kq, a, b, dst, ld, accumulate); break;
    default: QUADS_ROWS(6, kq, a, b, dst, ld, accumulate); break;
    }
    if (!full)
        for (size_t i = 0; i < m; i++) memcpy(c + i * ldc, tmp + i * NR, n * sizeof(int32_t));
}

// Each inclusion defines these anew.
#undef QUADS_TARGET
#undef QUADS_ROWS
#undef QUADS_NAME
#undef QUADS_BTYPE
#undef DPBUSD
