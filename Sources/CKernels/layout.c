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

void quern_qgemm_pack_a(const uint8_t *q, size_t ldq, size_t rows, size_t k, int group, uint32_t *dst) {
    const size_t mr = QUERN_QGEMM_MR, steps = (k + group - 1) / group;
    for (size_t r = 0; r < rows; r += mr) {
        uint32_t *panel = dst + r * steps;
        for (size_t i = 0; i < mr; i++) {
            const uint8_t *src = q + (r + i) * ldq;
            if (r + i >= rows) {
                for (size_t p = 0; p < steps; p++) panel[p * mr + i] = 0;
                continue;
            }
            size_t whole = k / group, p = 0;
            if (group == 2)
                for (; p < whole; p++) panel[p * mr + i] = (uint32_t)src[2 * p] | (uint32_t)src[2 * p + 1] << 16;
            else
                for (; p < whole; p++)
                    panel[p * mr + i] = (uint32_t)src[4 * p] | (uint32_t)src[4 * p + 1] << 8 |
                                        (uint32_t)src[4 * p + 2] << 16 | (uint32_t)src[4 * p + 3] << 24;
            if (p < steps) {  // the last, partial group: zeros past k
                uint32_t word = 0;
                for (size_t t = 0; group * p + t < k; t++) word |= (uint32_t)src[group * p + t] << ((32 / group) * t);
                panel[p * mr + i] = word;
            }
        }
    }
}

// Row (b, oy, ox) of the patch matrix holds input window (b, ·, oy·s − p …, ox·s − p …),
// column c·kh·kw + ky·kw + kx; pixels outside the image are 0.
void quern_im2col_f32(const float *x, size_t batch, size_t channels, size_t height, size_t width, size_t kh,
                      size_t kw, size_t stride, size_t pad, float *cols) {
    const size_t oh = (height + 2 * pad - kh) / stride + 1, ow = (width + 2 * pad - kw) / stride + 1;
    const size_t patch = channels * kh * kw;
    for (size_t b = 0; b < batch; b++)
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                float *row = cols + ((b * oh + oy) * ow + ox) * patch;
                for (size_t c = 0; c < channels; c++) {
                    const float *plane = x + (b * channels + c) * height * width;
                    for (size_t ky = 0; ky < kh; ky++) {
                        const ptrdiff_t iy = (ptrdiff_t)(oy * stride + ky) - (ptrdiff_t)pad;
                        float *dst = row + (c * kh + ky) * kw;
                        if (iy < 0 || iy >= (ptrdiff_t)height) {
                            for (size_t kx = 0; kx < kw; kx++) dst[kx] = 0;
                            continue;
                        }
                        for (size_t kx = 0; kx < kw; kx++) {
                            const ptrdiff_t ix = (ptrdiff_t)(ox * stride + kx) - (ptrdiff_t)pad;
                            dst[kx] = (ix < 0 || ix >= (ptrdiff_t)width) ? 0 : plane[iy * (ptrdiff_t)width + ix];
                        }
                    }
                }
            }
}

// The adjoint of im2col: each patch entry is added back to the pixel it came from.
void quern_col2im_f32(const float *cols, size_t batch, size_t channels, size_t height, size_t width, size_t kh,
                      size_t kw, size_t stride, size_t pad, float *dx) {
    const size_t oh = (height + 2 * pad - kh) / stride + 1, ow = (width + 2 * pad - kw) / stride + 1;
    const size_t patch = channels * kh * kw;
    for (size_t b = 0; b < batch; b++)
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                const float *row = cols + ((b * oh + oy) * ow + ox) * patch;
                for (size_t c = 0; c < channels; c++) {
                    float *plane = dx + (b * channels + c) * height * width;
                    for (size_t ky = 0; ky < kh; ky++) {
                        const ptrdiff_t iy = (ptrdiff_t)(oy * stride + ky) - (ptrdiff_t)pad;
                        if (iy < 0 || iy >= (ptrdiff_t)height) continue;
                        const float *src = row + (c * kh + ky) * kw;
                        for (size_t kx = 0; kx < kw; kx++) {
                            const ptrdiff_t ix = (ptrdiff_t)(ox * stride + kx) - (ptrdiff_t)pad;
                            if (ix >= 0 && ix < (ptrdiff_t)width) plane[iy * (ptrdiff_t)width + ix] += src[kx];
                        }
                    }
                }
            }
}

void quern_sgemm_pack_a(const float *x, size_t lda, size_t rows, size_t cols, float *dst) {
    const size_t mr = QUERN_SGEMM_MR;
    for (size_t q = 0; q < rows; q += mr) {
        float *panel = dst + q * cols;
        const size_t valid = rows - q < mr ? rows - q : mr;
        if (valid == mr) {
            const float *r0 = x + q * lda, *r1 = r0 + lda, *r2 = r1 + lda, *r3 = r2 + lda, *r4 = r3 + lda, *r5 = r4 + lda;
            for (size_t p = 0; p < cols; p++) {
                float *d = panel + p * mr;
                d[0] = r0[p]; d[1] = r1[p]; d[2] = r2[p]; d[3] = r3[p]; d[4] = r4[p]; d[5] = r5[p];
            }
        } else {
            for (size_t p = 0; p < cols; p++)
                for (size_t i = 0; i < mr; i++) panel[p * mr + i] = i < valid ? x[(q + i) * lda + p] : 0;
        }
    }
}
