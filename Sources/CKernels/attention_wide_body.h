// Self-attention of one unpadded sequence on 16-float vectors, written once against the
// 16-lane vocabulary of vecmath.h and included by attention.c four times: fp32 or bf16
// products (AW_BF16), each with zmm registers (z16) and with each zmm emulated by two ymm
// halves (e16, `vdpbf16ps` emulated exactly), which runs on any AVX2 machine so that the
// tests cover this body's indexing and edges everywhere.
//
// Per head: Kᵀ copied once, padded to whole vectors of keys; then AW_ROWS query rows at a
// time, scores against 32 keys a pass (AW_ROWS × 2 accumulators, each Kᵀ load feeding
// AW_ROWS products through broadcast Q, each row's maximum gathered as its scores are
// stored), the softmax of each row, and the context over 32 dimensions a pass (each V
// load feeding AW_ROWS products through broadcast P). Rows past the sequence repeat its
// last row, computed and never stored. Heads must be a multiple of 16 wide (the includer
// checks).
//
// With AW_BF16, vdpbf16ps sums two bf16 products a lane, so both products take half the
// steps: Q and K become bf16 rows (Kᵀ as pairs of dimensions, by a 32-bit transpose), V
// becomes pairs of consecutive keys, and each softmax row is rounded to bf16 for P·V;
// scores, softmax and the sums stay fp32. Either way an operand step is a 4-byte unit
// (one float, or a word of two bf16), so the loops below serve both.
//
// The includer defines AW_TARGET, AW_NAME, AW_BF16 (0 or 1), VF (the vector type) and
// V(op) (the vocabulary: z16_##op or e16_##op); this file undefines them.

#if AW_BF16
#define AW_UNIT uint32_t
#define AW_BCAST(p) V(bcast32)(p)
#define AW_DOT(acc, a, b) V(dpbf16)(acc, a, b)
#else
#define AW_UNIT float
#define AW_BCAST(p) V(bcast)(p)
#define AW_DOT(acc, a, b) V(fma)(a, b, acc)
#endif

AW_TARGET void AW_NAME(const float *qkv, size_t seq, size_t heads, size_t hd, float scale, float *scratch,
                       float *out) {
    const size_t hidden = heads * hd, row = 3 * hidden, sp = round16(seq);
#if AW_BF16
    const size_t steps = hd / 2;  // units of Q·Kᵀ: dimension pairs
    // Words (two bf16 each) unless said: Kᵀ pairs [steps][sp], V pairs [sp/2][hd], Q rows
    // [seq][steps], a staging area for K and V rows [seq][steps], scores (fp32)
    // [AW_ROWS][sp], softmax rows [AW_ROWS][sp/2]: (2·hd + 12)·sp at most.
    uint32_t *kt = (uint32_t *)scratch, *vp = kt + steps * sp, *qb = vp + sp / 2 * hd, *staged = qb + seq * steps;
    float *s = (float *)(staged + seq * steps);
    uint32_t *pb = (uint32_t *)(s + AW_ROWS * sp);
    // Q rows, V units and P rows: where each starts and how far apart consecutive ones are.
    const AW_UNIT *qsrc = qb, *vsrc = vp, *psrc = pb;
    const size_t qstride = steps, vstride = hd, vsteps = (seq + 1) / 2, pstride = sp / 2;
#else
    const size_t steps = hd;  // units of Q·Kᵀ: dimensions
    float *kt = scratch, *s = scratch + hd * sp;
    const AW_UNIT *qsrc, *vsrc, *psrc = s;
    const size_t qstride = row, vstride = row, vsteps = seq, pstride = sp;
#endif
    const VF vscale = V(set1)(scale), lowest = V(set1)(-FLT_MAX);
    for (size_t h = 0; h < heads; h++) {
#if AW_BF16
        for (size_t j = 0; j < seq; j++) {
            V(bf16_row)(qkv + j * row + h * hd, (uint16_t *)(qb + j * steps), hd);
            V(bf16_row)(qkv + j * row + hidden + h * hd, (uint16_t *)(staged + j * steps), hd);
        }
        quern_transpose_f32_avx2((const float *)staged, steps, seq, steps, (float *)kt, sp);
        for (size_t j = 0; j < seq; j++)
            V(bf16_row)(qkv + j * row + 2 * hidden + h * hd, (uint16_t *)(staged + j * steps), hd);
        for (size_t q = 0; q < seq / 2; q++)
            V(bf16_pairs)((const uint16_t *)(staged + 2 * q * steps), (const uint16_t *)(staged + (2 * q + 1) * steps),
                          vp + q * hd, hd);
        if (seq % 2)  // the last key pairs with a zero
            for (size_t c = 0; c < hd; c++) vp[seq / 2 * hd + c] = ((const uint16_t *)(staged + (seq - 1) * steps))[c];
#else
        quern_transpose_f32_avx2(qkv + hidden + h * hd, row, seq, hd, kt, sp);
        qsrc = qkv + h * hd;
        vsrc = qkv + 2 * hidden + h * hd;
#endif
        for (size_t d = 0; d < steps; d++)
            for (size_t j = seq; j < sp; j++) kt[d * sp + j] = 0;
        for (size_t i0 = 0; i0 < seq; i0 += AW_ROWS) {
            const size_t rows = seq - i0 < AW_ROWS ? seq - i0 : AW_ROWS;
            const AW_UNIT *q[AW_ROWS], *p[AW_ROWS];
            for (size_t r = 0; r < AW_ROWS; r++) {
                const size_t clamped = r < rows ? r : rows - 1;
                q[r] = qsrc + (i0 + clamped) * qstride;
                p[r] = psrc + clamped * pstride;
            }
            // Scores, 32 keys (or the last 16) a pass; keys past the sequence become −FLT_MAX.
            VF vmax[AW_ROWS];
            for (int r = 0; r < AW_ROWS; r++) vmax[r] = lowest;
            for (size_t j = 0; j < sp; j += 32) {
                const int two = j + 16 < sp;
                VF acc[AW_ROWS][2];
                for (int r = 0; r < AW_ROWS; r++) acc[r][0] = acc[r][1] = V(zero)();
                for (size_t d = 0; d < steps; d++) {
                    const float *kr = (const float *)(kt + d * sp + j);
                    VF k0 = V(load)(kr), k1 = two ? V(load)(kr + 16) : V(zero)();
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF qd = AW_BCAST(q[r] + d);
                        acc[r][0] = AW_DOT(acc[r][0], qd, k0);
                        acc[r][1] = AW_DOT(acc[r][1], qd, k1);
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
            for (size_t r = 0; r < rows; r++) {
                float *sr = s + r * sp;
                VF mx = V(set1)(V(hmax)(vmax[r])), vsum = V(zero)();
                for (size_t j = 0; j < sp; j += 16) {
                    VF e = V(exp)(V(sub)(V(load)(sr + j), mx));
                    V(store)(sr + j, e);
                    vsum = V(add)(vsum, e);
                }
                inv[r] = 1.0f / V(hsum)(vsum);
#if AW_BF16
                V(bf16_row)(sr, (uint16_t *)(pb + r * pstride), sp);
#endif
            }
            // Context Σ_j p_j · v_j, 32 dimensions (or the last 16) a pass.
            for (size_t c = 0; c < hd; c += 32) {
                const int two = c + 16 < hd;
                VF acc[AW_ROWS][2];
                for (int r = 0; r < AW_ROWS; r++) acc[r][0] = acc[r][1] = V(zero)();
                for (size_t j = 0; j < vsteps; j++) {
                    const float *vj = (const float *)(vsrc + j * vstride + c);
                    VF v0 = V(load)(vj), v1 = two ? V(load)(vj + 16) : V(zero)();
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF pj = AW_BCAST(p[r] + j);
                        acc[r][0] = AW_DOT(acc[r][0], pj, v0);
                        acc[r][1] = AW_DOT(acc[r][1], pj, v1);
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

#undef AW_UNIT
#undef AW_BCAST
#undef AW_DOT
#undef AW_TARGET
#undef AW_NAME
#undef AW_BF16
#undef VF
#undef V
