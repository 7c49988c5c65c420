// Quern's SIMD inner loops. Only the innermost loops live here, each with a plain
// scalar twin of identical semantics; packing, blocking, threading and dispatch
// policy are Swift (QuernKernels). Every function here is safe to call only when
// quern_cpu_features() reports the instruction set it names.
#ifndef QUERN_CKERNELS_H
#define QUERN_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

// CPU features, as bits.
enum {
    QUERN_CPU_AVX2 = 1 << 0,    // AVX2 + FMA3
    QUERN_CPU_AVX512 = 1 << 1,  // AVX-512 F, BW, DQ, VL
    QUERN_CPU_VNNI = 1 << 2,    // AVX512-VNNI
    QUERN_CPU_AVXVNNI = 1 << 3, // AVX-VNNI (VEX-encoded, on AVX2 machines)
    QUERN_CPU_BF16 = 1 << 4,    // AVX512-BF16 (with AVX-512)
};
uint32_t quern_cpu_features(void);

// PAUSE: tells the core a spin-wait is under way (saves power, frees the sibling thread).
static inline void quern_cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

// fp32 GEMM micro-tile: C[0:m, 0:n] (+)= A·B for one MR×NR register tile.
//   a: packed A panel, k steps of MR floats (row i of step p at a[p*MR + i])
//   b: packed B panel, k steps of NR floats (column j of step p at b[p*NR + j])
//   c: row-major, leading dimension ldc; only the m×n corner is read or written
//   accumulate: 0 stores A·B, 1 adds A·B to C
// Tile shapes: AVX2 6×16, scalar 6×16 (same packing, so the twins are interchangeable).
enum { QUERN_SGEMM_MR = 6, QUERN_SGEMM_NR = 16 };
void quern_sgemm_tile_avx2(size_t k, const float *a, const float *b, float *c, size_t ldc,
                           size_t m, size_t n, int accumulate);
void quern_sgemm_tile_scalar(size_t k, const float *a, const float *b, float *c, size_t ldc,
                             size_t m, size_t n, int accumulate);

// AVX-512: a 6×32 tile over two adjacent B panels b0 and b1 (b1 NULL when only one is
// left), n ≤ 32, same A packing. `_emulated` has the identical body with each zmm
// emulated by two ymm halves: it runs on AVX2 machines so tests cover the body anywhere.
void quern_sgemm_tile2_avx512(size_t k, const float *a, const float *b0, const float *b1, float *c, size_t ldc,
                              size_t m, size_t n, int accumulate);
void quern_sgemm_tile2_avx512_emulated(size_t k, const float *a, const float *b0, const float *b1, float *c,
                                       size_t ldc, size_t m, size_t n, int accumulate);

// The activations the epilogues apply. The values are ABI: Swift's Activation.code maps
// its cases onto these names, never onto numbers.
typedef enum quern_act {
    QUERN_ACT_NONE = 0,
    QUERN_ACT_RELU = 1,
    QUERN_ACT_GELU = 2,    // exact, erf form
    QUERN_ACT_TANH = 3,
    QUERN_ACT_SIGMOID = 4,
} quern_act;

// Epilogue on an m×n block of C (row-major, ldc): c = act(c + bias[col]). bias may be NULL.
void quern_bias_act_avx2(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act);
void quern_bias_act_scalar(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act);
// The same on zmm registers, or each zmm emulated by two ymm halves (for tests).
void quern_bias_act_avx512(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act);
void quern_bias_act_avx512_emulated(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act);

// ---- int8 GEMM (u8 activations × s8 weights → s32) -------------------------------
// Exact on every path: no intermediate can saturate, so every ISA returns the same
// int32 sums as the scalar twin, bit for bit.
// AVX2 layout (pairs of K widened to 16 bits, multiplied with vpmaddwd):
//   a: packed A panel, kp = ceil(k/2) steps of MR 32-bit words; word i of step p holds
//      (uint16)a[i][2p] | (uint16)a[i][2p+1] << 16 (zero past k)
//   b: packed B panel, kp steps of NR pairs of int16: pair j of step p is
//      (w[j][2p], w[j][2p+1]) (zero past k)
//   c: int32, row-major, ldc; only the m×n corner is touched
enum { QUERN_QGEMM_MR = 6, QUERN_QGEMM_NR = 16 };
// K values per step of a panel in the pair layout (above) and the quad layout (below).
enum { QUERN_QGEMM_PAIR_K = 2, QUERN_QGEMM_QUAD_K = 4 };
// Bytes of one step of a B panel, the same in both layouts, so one tile body (two
// 32-byte loads a step) serves both and QuantizedWeights lays out both with one stride.
enum { QUERN_QGEMM_STEP_BYTES = 64 };
_Static_assert(QUERN_QGEMM_STEP_BYTES == QUERN_QGEMM_NR * QUERN_QGEMM_PAIR_K * sizeof(int16_t),
               "a pair step is NR columns of two int16");
_Static_assert(QUERN_QGEMM_STEP_BYTES == QUERN_QGEMM_NR * QUERN_QGEMM_QUAD_K * sizeof(int8_t),
               "a quad step is NR columns of four int8");
void quern_qgemm_tile_avx2(size_t kp, const uint32_t *a, const int16_t *b, int32_t *c, size_t ldc,
                           size_t m, size_t n, int accumulate);
void quern_qgemm_tile_scalar(size_t kp, const uint32_t *a, const int16_t *b, int32_t *c, size_t ldc,
                             size_t m, size_t n, int accumulate);

// VNNI layout (groups of four K, multiplied with vpdpbusd):
//   a: kq = ceil(k/4) steps of MR 32-bit words; word i of step q holds the four u8
//      a[i][4q…4q+3], lowest byte first (zero past k)
//   b: kq steps of NR groups of four int8: group j of step q is w[j][4q…4q+3]
// _avx512vnni (EVEX) and _avxvnni (VEX) differ in one instruction; _avx2 emulates it
// with vpmaddwd, so the shared body is tested on any AVX2 machine.
void quern_qgemm4_tile_scalar(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                              size_t m, size_t n, int accumulate);
void quern_qgemm4_tile_avx512vnni(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                                  size_t m, size_t n, int accumulate);
void quern_qgemm4_tile_avxvnni(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                               size_t m, size_t n, int accumulate);
void quern_qgemm4_tile_avx2(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                            size_t m, size_t n, int accumulate);
// Up to 12 rows × two adjacent quad panels at once (32 columns; b1 may be NULL when only
// b0 is left, n ≤ 16 then): rows 0–5 from the A panel a, rows 6–11 from a_hi (the next
// MR-row panel; read only when m > 6). The zmm tile of AVX512-VNNI, and the same body on
// emulated zmm registers (two ymm halves, vpdpbusd as in _avx2) so tests run it on any
// AVX2 machine.
void quern_qgemm4_tile2_avx512vnni(size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0,
                                   const int8_t *b1, int32_t *c, size_t ldc, size_t m, size_t n, int accumulate);
void quern_qgemm4_tile2_avx512vnni_emulated(size_t kq, const uint32_t *a, const uint32_t *a_hi, const int8_t *b0,
                                            const int8_t *b1, int32_t *c, size_t ldc, size_t m, size_t n,
                                            int accumulate);
// The same quads on AVX2 with vpmaddubsw (u8·s8 pairs summed into saturating int16)
// then vpmaddwd by ones: a quarter fewer instructions than the emulation above, and
// exact only for pair-bounded weights, |w[j][2t]| + |w[j][2t+1]| <= 128 for every
// column j and pair t (then 255 · 128 = 32640 fits in int16). QuantizedWeights says
// which weights are; the others never reach this kernel.
void quern_qgemm4_tile_maddubs_avx2(size_t kq, const uint32_t *a, const int8_t *b, int32_t *c, size_t ldc,
                                    size_t m, size_t n, int accumulate);

// Dynamic per-row quantization of fp32 activations to asymmetric u8: for each row,
// scale = (max - min) / 255 over a range widened to include 0, zero point so that 0.0 is
// exact; q = clamp(round(x / scale) + zp, 0, 255). Rows of length k, leading dimension lda.
void quern_quantize_rows_u8_scalar(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                   float *scale, int32_t *zero_point);
void quern_quantize_rows_u8_avx2(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                 float *scale, int32_t *zero_point);

// Static quantization (a range calibrated ahead of time): q = clamp(round(x[p] ·
// inv[p]) + zero_point, 0, 255) for every row, inv[p] being 1 / scale, or, with
// SmoothQuant's per-channel smoothing, 1 / (scale · s[p]); values outside the range
// saturate at 0 and 255.
void quern_quantize_rows_u8_fixed_scalar(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                         const float *inv, int32_t zero_point);
void quern_quantize_rows_u8_fixed_avx2(const float *x, size_t m, size_t k, size_t lda, uint8_t *q, size_t ldq,
                                       const float *inv, int32_t zero_point);

// Dequantizing epilogue: y[i][j] = act(rs[i]·cs[j]·(acc[i][j] − zp[i]·colsum[j]) + bias[j]).
void quern_dequantize_avx2(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                           const float *row_scale, const int32_t *row_zp, const float *col_scale,
                           const int32_t *colsum, const float *bias, quern_act act);
void quern_dequantize_scalar(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                             const float *row_scale, const int32_t *row_zp, const float *col_scale,
                             const int32_t *colsum, const float *bias, quern_act act);
void quern_dequantize_avx512(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                             const float *row_scale, const int32_t *row_zp, const float *col_scale,
                             const int32_t *colsum, const float *bias, quern_act act);
void quern_dequantize_avx512_emulated(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy,
                                      const float *row_scale, const int32_t *row_zp, const float *col_scale,
                                      const int32_t *colsum, const float *bias, quern_act act);

// ---- normalisation and softmax ------------------------------------------------------
// Layer norm over the last dimension: y = (x − mean) / sqrt(var + eps) · gamma + beta
// (population variance, two passes); gamma/beta may be NULL. x and y may alias.
void quern_layernorm_avx2(const float *x, size_t rows, size_t n, size_t ld, const float *gamma,
                          const float *beta, float eps, float *y);
void quern_layernorm_scalar(const float *x, size_t rows, size_t n, size_t ld, const float *gamma,
                            const float *beta, float eps, float *y);
// In-place softmax of each row, shifted by the row maximum; keep (length n, may be NULL)
// masks positions out (probability 0). A row with every position masked becomes zeros.
void quern_softmax_avx2(float *x, size_t rows, size_t n, size_t ld, const uint8_t *keep);
void quern_softmax_scalar(float *x, size_t rows, size_t n, size_t ld, const uint8_t *keep);

// ---- attention over one unpadded sequence -----------------------------------------
// Self-attention of one sequence of `seq` tokens, all heads: qkv rows hold Q, K and V
// (3·heads·hd floats a row, heads contiguous in each), out rows heads·hd floats; for
// each head softmax(Q·Kᵀ·scale)·V. scratch: at least quern_attention_scratch(seq, hd) floats.
size_t quern_attention_scratch(size_t seq, size_t hd);
void quern_attention_seq_avx2(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                              float *scratch, float *out);
void quern_attention_seq_scalar(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                float *scratch, float *out);
// On 16-float vectors for heads a multiple of 16 wide (others run the AVX2 kernel): zmm
// registers, or each zmm emulated by two ymm halves (runs on any AVX2 CPU, for tests).
void quern_attention_seq_avx512(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                float *scratch, float *out);
void quern_attention_seq_avx512_emulated(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                         float *scratch, float *out);
// The same with Q·Kᵀ and P·V on bfloat16 operands (round to nearest even) summed in fp32
// by vdpbf16ps, softmax in fp32: for int8 encoders, whose quantized GEMMs already err
// more. AVX512-BF16, or emulated exactly on AVX2 (for tests); heads a multiple of 16
// wide (others run the fp32 kernel).
void quern_attention_seq_bf16_avx512(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                     float *scratch, float *out);
void quern_attention_seq_bf16_emulated(const float *qkv, size_t seq, size_t heads, size_t hd, float scale,
                                       float *scratch, float *out);
// Causal attention of new query rows against a sequence's key/value cache, grouped-query
// heads, an optional sliding window (0: none); see attention_cached.c. scores: at least
// quern_attention_cached_scratch(first + rows) floats.
size_t quern_attention_cached_scratch(size_t positions);
void quern_attention_cached_scalar(const float *q, size_t q_stride, size_t rows, size_t first, const float *keys,
                                   const float *values, size_t heads, size_t kv_heads, size_t hd, size_t window,
                                   float scale, float *out, size_t out_stride, float *scores);
void quern_attention_cached_avx2(const float *q, size_t q_stride, size_t rows, size_t first, const float *keys,
                                 const float *values, size_t heads, size_t kv_heads, size_t hd, size_t window,
                                 float scale, float *out, size_t out_stride, float *scores);
// SwiGLU: out[r][i] = silu(g[r][i]) · u[r][i], silu(g) = g / (1 + e^−g), for rows of 2n
// floats (the n gate columns, then the n up columns); out rows of n floats.
void quern_gated_silu_scalar(const float *gate_up, size_t rows, size_t n, float *out);
void quern_gated_silu_avx2(const float *gate_up, size_t rows, size_t n, float *out);
// GPT-2's GELU ("gelu_new") in place: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
void quern_gelu_tanh_scalar(float *x, size_t count);
void quern_gelu_tanh_avx2(float *x, size_t count);
// x = layernorm(x + d) row by row (the residual add fused into the norm's first pass).
void quern_residual_layernorm_avx2(float *x, const float *d, size_t rows, size_t n, const float *gamma,
                                   const float *beta, float eps);
void quern_residual_layernorm_scalar(float *x, const float *d, size_t rows, size_t n, const float *gamma,
                                     const float *beta, float eps);

// ---- sparse fp32 (CSR weights) -------------------------------------------------------
// 4-bit group-quantized weights (q4.c), stored per B panel of QUERN_SGEMM_NR columns:
// for each k, NR/2 bytes of nibbles (byte j: column j in the low nibble, column j + 8 in
// the high one), and for each group of QUERN_Q4_GROUP k's, NR scales then NR offsets, so
// weight = q·scale + offset (Q4_0: offset = −8·scale; Q4_1 and Q4_K: their min). Rows k0
// … k0+kcur of a panel dequantize into the B layout the fp32 tiles read; k0 and the
// group boundaries agree (k0 is a multiple of QUERN_Q4_GROUP).
enum { QUERN_Q4_GROUP = 32 };
_Static_assert(QUERN_SGEMM_NR == 16, "the q4 nibble layout pairs columns j and j + 8 of a 16-wide panel");
void quern_q4_dequant_panel_scalar(const uint8_t *nibbles, const float *params, size_t k0, size_t kcur, float *dst);
void quern_q4_dequant_panel_avx2(const uint8_t *nibbles, const float *params, size_t k0, size_t kcur, float *dst);

// The sparse kernels below multiply blocks of mb ≤ QUERN_SPMM_BLOCK input rows held
// transposed. Their AVX2 forms vectorise only a full block (eight accumulators of eight
// lanes) and hand narrower ones to the scalar twin, so callers zero-pad wide-enough
// blocks to the full width.
enum { QUERN_SPMM_BLOCK = 64 };
// For output rows n in [n0, n1) of CSR weights (rowptr, cols, vals: row n's nonzeros are
// rowptr[n]..rowptr[n+1]), yt[n][0:mb] = Σ vals[e] · xt[cols[e]][0:mb]: a block of mb
// input rows held transposed (xt: [K][ldx], yt: [N][ldy]), so each nonzero is one
// vectorised AXPY over the block. With `accumulate`, the sums are added to what yt holds
// (the caller walks K in panels, one rowptr per panel, so the panel of xt it touches
// stays in L1).
void quern_spmm_csr_avx2(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                         const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate);
void quern_spmm_csr_scalar(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                           const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate);
// The same on zmm registers, or each zmm emulated by two ymm halves (for tests).
void quern_spmm_csr_avx512(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                           const float *vals, size_t n0, size_t n1, float *yt, size_t ldy, int accumulate);
void quern_spmm_csr_avx512_emulated(const float *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                    const int32_t *cols, const float *vals, size_t n0, size_t n1, float *yt,
                                    size_t ldy, int accumulate);

// ---- block-sparse int8 (1×4 blocks) ---------------------------------------------------
// Output row n of the weights keeps only its nonzero 1×4 blocks: block e covers inputs
// 4·groups[e] … 4·groups[e]+3, with weights as two int16 pairs (w0,w1) in lo[e] and
// (w2,w3) in hi[e]. xt holds a block of mb u8 activation rows transposed as K pairs:
// word xt[p·ldx + r] = q[r][2p] | q[r][2p+1] << 16. yt[n·ldy + r] = Σ q·w, exact in int32.
void quern_spmm_q1x4_avx2(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *groups,
                          const uint32_t *lo, const uint32_t *hi, size_t n0, size_t n1, int32_t *yt, size_t ldy);
void quern_spmm_q1x4_scalar(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *groups,
                            const uint32_t *lo, const uint32_t *hi, size_t n0, size_t n1, int32_t *yt, size_t ldy);

// The same blocks for vpdpbusd: xt holds the u8 rows transposed as K quads, word
// xt[g·ldx + r] = q[r][4g] | q[r][4g+1] << 8 | … (quern_pack_quads_t), and each block's
// four int8 weights are one word of quads[e] (w0 in the low byte). On zmm registers with
// AVX512-VNNI, or each zmm emulated by two ymm halves (any AVX2 CPU, for tests); the
// 16-lane forms vectorise a full block only, like the AVX2 ones. All are exact.
void quern_spmm_q1x4_quads_scalar(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                  const int32_t *groups, const uint32_t *quads, size_t n0, size_t n1, int32_t *yt,
                                  size_t ldy);
void quern_spmm_q1x4_avx512vnni(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                const int32_t *groups, const uint32_t *quads, size_t n0, size_t n1, int32_t *yt,
                                size_t ldy);
void quern_spmm_q1x4_avx512vnni_emulated(const uint32_t *xt, size_t ldx, size_t mb, const int32_t *rowptr,
                                         const int32_t *groups, const uint32_t *quads, size_t n0, size_t n1,
                                         int32_t *yt, size_t ldy);

// ---- sparse int8 (CSR weights) ---------------------------------------------------------
// Output row n's nonzeros come in pairs, rowptr[n]…rowptr[n+1] (a row with an odd count
// ends with a zero weight): pair e covers inputs cols[2e] and cols[2e+1] with weights
// (w0, w1) as int16 in w[e]. xt holds a block of mb u8 activation rows transposed and
// widened: xt[c·ldx + r] = q[r][c]. yt[n·ldy + r] = Σ q·w, exact in int32.
void quern_spmm_qcsr_avx2(const int16_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                          const uint32_t *w, size_t n0, size_t n1, int32_t *yt, size_t ldy);
void quern_spmm_qcsr_scalar(const int16_t *xt, size_t ldx, size_t mb, const int32_t *rowptr, const int32_t *cols,
                            const uint32_t *w, size_t n0, size_t n1, int32_t *yt, size_t ldy);

// ---- layout helpers for the sparse kernels (plain C: the compiler vectorises them) ----
// out[c·ldo + r] = in[r·ldi + c] for an r × c block (rows × cols of `in`).
void quern_transpose_f32_scalar(const float *in, size_t ldi, size_t rows, size_t cols, float *out, size_t ldo);
// The same with 8×8 AVX2 register transposes (identical output).
void quern_transpose_f32_avx2(const float *in, size_t ldi, size_t rows, size_t cols, float *out, size_t ldo);
// Packs mb u8 rows of length k (leading dimension ldq) as transposed K pairs:
// xt[p·ldx + r] = q[r][2p] | q[r][2p+1] << 16, zero past k and for rows mb…ldx−1.
void quern_pack_pairs_t(const uint8_t *q, size_t ldq, size_t mb, size_t k, size_t pairs, uint32_t *xt, size_t ldx);
// out[c·ldo + r] = q[r·ldq + c] widened to int16, zero for rows rows…ldo−1.
void quern_transpose_u8_i16(const uint8_t *q, size_t ldq, size_t rows, size_t cols, int16_t *out, size_t ldo);
// Packs u8 rows (length k, leading dimension ldq) into int8 GEMM A panels of MR rows:
// group QUERN_QGEMM_PAIR_K or QUERN_QGEMM_QUAD_K (see the tile kernels above).
void quern_qgemm_pack_a(const uint8_t *q, size_t ldq, size_t rows, size_t k, int group, uint32_t *dst);
// Packs rows × cols of row-major x (leading dimension lda) into fp32 GEMM A panels of
// MR rows: panel q holds, for each column p, rows MR·q … MR·q+MR−1 (zeros past the end).
void quern_sgemm_pack_a(const float *x, size_t lda, size_t rows, size_t cols, float *dst);

// Convolution patches of NCHW images: cols is [batch·oH·oW, C·kh·kw] (im2col), and its
// adjoint, which adds each entry of cols back into dx (zeroed by the caller).
void quern_im2col_f32(const float *x, size_t batch, size_t channels, size_t height, size_t width, size_t kh,
                      size_t kw, size_t stride, size_t pad, float *cols);
void quern_col2im_f32(const float *cols, size_t batch, size_t channels, size_t height, size_t width, size_t kh,
                      size_t kw, size_t stride, size_t pad, float *dx);

// Packs mb u8 rows of length k (leading dimension ldq) as transposed K quads for the
// vpdpbusd sparse kernel: xt[g·ldx + r] = q[r][4g … 4g+3] little-endian (zero past k),
// for g < groups, and zero for rows mb … ldx−1.
void quern_pack_quads_t(const uint8_t *q, size_t ldq, size_t mb, size_t k, size_t groups, uint32_t *xt, size_t ldx);

#endif
