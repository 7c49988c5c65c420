// Scalar activations shared by the fp32 and int8 epilogues (internal to CKernels).
#ifndef QUERN_ACTIVATION_H
#define QUERN_ACTIVATION_H
#include <math.h>

// act: 0 none, 1 relu, 2 gelu (exact, erf form), 3 tanh, 4 sigmoid.
static inline float quern_act_scalar(float v, int act) {
    switch (act) {
    case 1: return v > 0 ? v : 0;
    // erfc, not 1 + erf: no cancellation for negative inputs.
    case 2: return 0.5f * v * erfcf(v * -0.70710678118654752f);
    case 3: return tanhf(v);
    case 4: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}
#endif
