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

// Epilogue on an m×n block of C (row-major, ldc): c = act(c + bias[col]).
// bias may be NULL. act: 0 none, 1 relu, 2 gelu (exact, erf), 3 tanh, 4 sigmoid.
void quern_bias_act_avx2(float *c, size_t ldc, size_t m, size_t n, const float *bias, int act);
void quern_bias_act_scalar(float *c, size_t ldc, size_t m, size_t n, const float *bias, int act);

#endif
