// Scalar activations shared by the fp32 and int8 epilogues (internal to CKernels).
#ifndef QUERN_ACTIVATION_H
#define QUERN_ACTIVATION_H
#include "ckernels.h"
#include <math.h>

static inline float quern_act_scalar(float v, quern_act act) {
    switch (act) {
    case QUERN_ACT_RELU: return v > 0 ? v : 0;
    // erfc, not 1 + erf: no cancellation for negative inputs.
    case QUERN_ACT_GELU: return 0.5f * v * erfcf(v * -0.70710678118654752f);
    case QUERN_ACT_TANH: return tanhf(v);
    case QUERN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}
#endif
