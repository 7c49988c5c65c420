#include "ckernels.h"

void quern_transpose_f32(const float *in, size_t ldi, size_t rows, size_t cols, float *out, size_t ldo) {
    // 8×8 tiles keep both sides' cache lines in use.
    for (size_t r0 = 0; r0 < rows; r0 += 8)
        for (size_t c0 = 0; c0 < cols; c0 += 8)
            for (size_t r = r0; r < r0 + 8 && r < rows; r++)
                for (size_t c = c0; c < c0 + 8 && c < cols; c++) out[c * ldo + r] = in[r * ldi + c];
}

void quern_pack_pairs_t(const uint8_t *q, size_t ldq, size_t mb, size_t k, size_t pairs, uint32_t *xt, size_t ldx) {
    for (size_t p = 0; p < pairs; p++) {
        uint32_t *dst = xt + p * ldx;
        size_t c0 = 2 * p, c1 = 2 * p + 1;
        for (size_t r = 0; r < mb; r++) {
            uint32_t a = c0 < k ? q[r * ldq + c0] : 0, b = c1 < k ? q[r * ldq + c1] : 0;
            dst[r] = a | b << 16;
        }
        for (size_t r = mb; r < ldx; r++) dst[r] = 0;
    }
}

void quern_transpose_i32(const int32_t *in, size_t ldi, size_t rows, size_t cols, int32_t *out, size_t ldo) {
    for (size_t r0 = 0; r0 < rows; r0 += 8)
        for (size_t c0 = 0; c0 < cols; c0 += 8)
            for (size_t r = r0; r < r0 + 8 && r < rows; r++)
                for (size_t c = c0; c < c0 + 8 && c < cols; c++) out[c * ldo + r] = in[r * ldi + c];
}

void quern_transpose_u8_i16(const uint8_t *q, size_t ldq, size_t rows, size_t cols, int16_t *out, size_t ldo) {
    for (size_t r0 = 0; r0 < rows; r0 += 8)
        for (size_t c0 = 0; c0 < cols; c0 += 8)
            for (size_t r = r0; r < r0 + 8 && r < rows; r++)
                for (size_t c = c0; c < c0 + 8 && c < cols; c++) out[c * ldo + r] = q[r * ldq + c];
    for (size_t c = 0; c < cols; c++)
        for (size_t r = rows; r < ldo; r++) out[c * ldo + r] = 0;
}
