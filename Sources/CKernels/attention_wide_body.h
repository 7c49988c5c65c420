// Self-attention of one unpadded sequence on 16-float vectors, written once against the
// 16-lane vocabulary of vecmath.h and included by attention.c twice: with zmm registers
// (z16) and with each zmm emulated by two ymm halves (e16), which runs on any AVX2
// machine so that the tests cover this body's indexing and edges everywhere.
//
// Per head: Kᵀ copied once, padded to whole vectors of keys; then AW_ROWS query rows at a
// time, scores against 32 keys a pass (AW_ROWS × 2 accumulators, each Kᵀ load feeding
// AW_ROWS FMAs through broadcast Q), the softmax of each row, and the context over 32
// dimensions a pass (each V load feeding AW_ROWS FMAs through broadcast P). Rows past the
// sequence repeat its last row, computed and never stored. Heads must be a multiple of
// 16 wide (the includer checks).
//
// The includer defines AW_TARGET, AW_NAME, VF (the vector type) and V(op) (the
// vocabulary: z16_##op or e16_##op); this file undefines them.

AW_TARGET void AW_NAME(const float *qkv, size_t seq, size_t heads, size_t hd, float scale, float *scratch,
                       float *out) {
    const size_t hidden = heads * hd, row = 3 * hidden, sp = round16(seq);
    float *kt = scratch, *s = scratch + hd * sp;  // s: AW_ROWS rows of sp scores
    const VF vscale = V(set1)(scale), lowest = V(set1)(-FLT_MAX);
    for (size_t h = 0; h < heads; h++) {
        quern_transpose_f32_avx2(qkv + hidden + h * hd, row, seq, hd, kt, sp);
        for (size_t d = 0; d < hd; d++)
            for (size_t j = seq; j < sp; j++) kt[d * sp + j] = 0;
        const float *v = qkv + 2 * hidden + h * hd;
        for (size_t i0 = 0; i0 < seq; i0 += AW_ROWS) {
            const size_t rows = seq - i0 < AW_ROWS ? seq - i0 : AW_ROWS;
            const float *q[AW_ROWS];
            for (size_t r = 0; r < AW_ROWS; r++) q[r] = qkv + (i0 + (r < rows ? r : rows - 1)) * row + h * hd;
            // Scores, 32 keys (or the last 16) a pass; keys past the sequence become −FLT_MAX.
            // Each row's maximum is gathered as its scores are stored: the softmax needs
            // no pass of its own to find it.
            VF vmax[AW_ROWS];
            for (int r = 0; r < AW_ROWS; r++) vmax[r] = lowest;
            for (size_t j = 0; j < sp; j += 32) {
                const int two = j + 16 < sp;
                VF acc[AW_ROWS][2];
                for (int r = 0; r < AW_ROWS; r++) acc[r][0] = acc[r][1] = V(zero)();
                for (size_t d = 0; d < hd; d++) {
                    const float *kr = kt + d * sp + j;
                    VF k0 = V(load)(kr), k1 = two ? V(load)(kr + 16) : V(zero)();
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF qb = V(bcast)(q[r] + d);
                        acc[r][0] = V(fma)(qb, k0, acc[r][0]);
                        acc[r][1] = V(fma)(qb, k1, acc[r][1]);
                    }
                }
                for (int half = 0; half < 1 + two; half++) {
                    size_t jj = j + 16 * half, real = seq > jj ? seq - jj : 0;
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF v = V(head)(V(mul)(acc[r][half], vscale), real, lowest);
                        V(store)(s + r * sp + jj, v);
                        vmax[r] = V(max)(vmax[r], v);
                    }
                }
            }
            // Softmax of each row in place; 1 / its sum is applied to the context.
            float inv[AW_ROWS];
            for (size_t r = 0; r < AW_ROWS; r++) {
                float *sr = s + r * sp;
                VF mx = V(set1)(V(hmax)(vmax[r])), vsum = V(zero)();
                for (size_t j = 0; j < sp; j += 16) {
                    VF e = V(exp)(V(sub)(V(load)(sr + j), mx));
                    V(store)(sr + j, e);
                    vsum = V(add)(vsum, e);
                }
                inv[r] = 1.0f / V(hsum)(vsum);
                if (r + 1 >= rows) {
                    for (size_t rr = r + 1; rr < AW_ROWS; rr++) inv[rr] = inv[r];
                    break;
                }
            }
            // Context Σ_j p_j · v_j, 32 dimensions (or the last 16) a pass.
            for (size_t c = 0; c < hd; c += 32) {
                const int two = c + 16 < hd;
                VF acc[AW_ROWS][2];
                for (int r = 0; r < AW_ROWS; r++) acc[r][0] = acc[r][1] = V(zero)();
                for (size_t j = 0; j < seq; j++) {
                    const float *vj = v + j * row + c;
                    VF v0 = V(load)(vj), v1 = two ? V(load)(vj + 16) : V(zero)();
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF pb = V(bcast)(s + (r < (int)rows ? r : rows - 1) * sp + j);
                        acc[r][0] = V(fma)(pb, v0, acc[r][0]);
                        acc[r][1] = V(fma)(pb, v1, acc[r][1]);
                    }
                }
                for (size_t r = 0; r < rows; r++) {
                    float *o = out + (i0 + r) * hidden + h * hd + c;
                    VF iv = V(set1)(inv[r]);
                    V(store)(o, V(mul)(acc[r][0], iv));
                    if (two) V(store)(o + 16, V(mul)(acc[r][1], iv));
                }
            }
        }
    }
}

#undef AW_TARGET
#undef AW_NAME
#undef VF
#undef V
