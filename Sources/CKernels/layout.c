#include "ckernels.h"
#include "vecmath.h"

void quern_transpose_f32_scalar(const float *in, size_t ldi, size_t rows, size_t cols, float *out,
                                size_t ldo) {
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

void quern_pack_quads_t(const uint8_t *q, size_t ldq, size_t mb, size_t k, size_t groups, uint32_t *xt, size_t ldx) {
    for (size_t g = 0; g < groups; g++) {
        uint32_t *dst = xt + g * ldx;
        for (size_t r = 0; r < mb; r++) {
            uint32_t word = 0;
            for (size_t t = 0; t < 4; t++)
                if (4 * g + t < k) word |= (uint32_t)q[r * ldq + 4 * g + t] << (8 * t);
            dst[r] = word;
        }
        for (size_t r = mb; r < ldx; r++) dst[r] = 0;
    }
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
            if (group == QUERN_QGEMM_PAIR_K)
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

#if defined(__x86_64__)
// One 8×8 block: unpack pairs, shuffle quads, swap 128-bit halves (24 shuffles, 16
// loads/stores) instead of 64 scalar moves.
TARGET_AVX2 static inline void transpose8x8(const float *in, size_t ldi, float *out, size_t ldo) {
    __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + ldi), r2 = _mm256_loadu_ps(in + 2 * ldi),
           r3 = _mm256_loadu_ps(in + 3 * ldi), r4 = _mm256_loadu_ps(in + 4 * ldi), r5 = _mm256_loadu_ps(in + 5 * ldi),
           r6 = _mm256_loadu_ps(in + 6 * ldi), r7 = _mm256_loadu_ps(in + 7 * ldi);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44),
           s3 = _mm256_shuffle_ps(t1, t3, 0xEE), s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(out + ldo, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(out + 2 * ldo, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(out + 3 * ldo, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(out + 4 * ldo, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(out + 5 * ldo, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(out + 6 * ldo, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(out + 7 * ldo, _mm256_permute2f128_ps(s3, s7, 0x31));
}

TARGET_AVX2 void quern_transpose_f32_avx2(const float *in, size_t ldi, size_t rows, size_t cols,
                                                               float *out, size_t ldo) {
    size_t r0 = 0;
    for (; r0 + 8 <= rows; r0 += 8) {
        size_t c0 = 0;
        for (; c0 + 8 <= cols; c0 += 8) transpose8x8(in + r0 * ldi + c0, ldi, out + c0 * ldo + r0, ldo);
        for (size_t r = r0; r < r0 + 8; r++)
            for (size_t c = c0; c < cols; c++) out[c * ldo + r] = in[r * ldi + c];
    }
    for (size_t r = r0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) out[c * ldo + r] = in[r * ldi + c];
}
#else
void quern_transpose_f32_avx2(const float *in, size_t ldi, size_t rows, size_t cols, float *out, size_t ldo) {
    quern_transpose_f32_scalar(in, ldi, rows, cols, out, ldo);
}
#endif
