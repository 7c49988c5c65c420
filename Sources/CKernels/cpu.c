#include "ckernels.h"

// __builtin_cpu_supports asks cpuid once (libgcc/compiler-rt caches it) and also checks
// that the OS saves the wider registers (XGETBV), which raw cpuid bits alone do not.
uint32_t quern_cpu_features(void) {
    uint32_t f = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= QUERN_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) f |= QUERN_CPU_AVX512;
    if ((f & QUERN_CPU_AVX512) && __builtin_cpu_supports("avx512vnni")) f |= QUERN_CPU_VNNI;
    if ((f & QUERN_CPU_AVX512) && __builtin_cpu_supports("avx512bf16")) f |= QUERN_CPU_BF16;
#if defined(__clang__) && __clang_major__ >= 14
    if (__builtin_cpu_supports("avxvnni")) f |= QUERN_CPU_AVXVNNI;
#endif
#endif
    return f;
}
