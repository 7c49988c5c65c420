// The int8 tile for VNNI (u8 × s8 in groups of four K, vpdpbusd), written once and
// included by qgemm.c three times: with AVX512-VNNI's EVEX `vpdpbusd ymm`, with
// AVX-VNNI's VEX form, and with vpdpbusd emulated by AVX2 (two vpmaddwd over the even
// and odd bytes). The emulated copy runs on any AVX2 machine, so the body is tested
// everywhere; only the one instruction differs between the copies.
//
// 256-bit vectors on every copy: AVX-VNNI has only 16 vector registers and the 6×16
// tile needs 15; on client cores a ymm vpdpbusd has the same throughput as a zmm one.
// vpdpbusd is exact here: each u8·s8 product fits 16 bits and the four are summed into
// the int32 accumulator without saturation (unlike vpdpbusds or vpmaddubsw).
//
// The includer defines QUADS_TARGET, QUADS_ROWS, QUADS_NAME and DPBUSD(acc, a, b).

QUADS_TARGET static inline __attribute__((always_inline)) void
QUADS_ROWS(const int M, size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc, int accumulate) {
    __m256i acc[MR][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (size_t q = 0; q < kq; q++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + q * NR * 4));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + q * NR * 4 + 32));
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

QUADS_TARGET void QUADS_NAME(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc, size_t m,
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
