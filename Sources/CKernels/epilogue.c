// The GEMM epilogues of every SIMD width (body in epilogue_body.h): bias + activation
// after the fp32 tiles, dequantize + bias + activation after the int8 ones. The scalar
// twins live beside their GEMMs (sgemm.c, qgemm.c).
#include "ckernels.h"
#include "activation.h"
#include "vecmath.h"
#include <string.h>

#if defined(__x86_64__)

#define EP_TARGET TARGET_AVX2
#define EP_SUFFIX avx2
#define EP_LANES 8
#define VF __m256
#define V(op) v8_##op
#include "epilogue_body.h"

#define EP_TARGET TARGET_AVX512
#define EP_SUFFIX avx512
#define EP_LANES 16
#define VF z16
#define V(op) z16_##op
#include "epilogue_body.h"

#define EP_TARGET TARGET_AVX2
#define EP_SUFFIX avx512_emulated
#define EP_LANES 16
#define VF e16
#define V(op) e16_##op
#include "epilogue_body.h"

#else

#define EP_PLAIN(suffix)                                                                                      \
    void quern_bias_act_##suffix(float *c, size_t ldc, size_t m, size_t n, const float *bias, quern_act act) { \
        quern_bias_act_scalar(c, ldc, m, n, bias, act);                                                       \
    }                                                                                                         \
    void quern_dequantize_##suffix(const int32_t *acc, size_t ldacc, size_t m, size_t n, float *y, size_t ldy, \
                                   const float *row_scale, const int32_t *row_zp, const float *col_scale,      \
                                   const int32_t *colsum, const float *bias, quern_act act) {                  \
        quern_dequantize_scalar(acc, ldacc, m, n, y, ldy, row_scale, row_zp, col_scale, colsum, bias, act);    \
    }
EP_PLAIN(avx2)
EP_PLAIN(avx512)
EP_PLAIN(avx512_emulated)

#endif
