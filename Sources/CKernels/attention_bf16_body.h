// Self-attention of one unpadded sequence with bfloat16 products, written once against
// vecmath.h's 16-lane vocabulary and included by attention.c twice: with zmm registers
// and vdpbf16ps (z16), and with each zmm emulated by two ymm halves (e16, exact), which
// runs on any AVX2 machine so that the tests cover this body everywhere.
//
// The fp32 body's structure (attention_wide_body.h) with bf16 operands: vdpbf16ps sums
// two products a lane, so the K pairs of Q·Kᵀ and the key pairs of P·V take half the
// steps. Per head, Q and K become bf16 rows (Kᵀ as pairs of dimensions, by a 32-bit
// transpose) and V becomes pairs of consecutive keys; scores, softmax and the sums stay
// fp32, and each softmax row is rounded to bf16 for P·V.
//
// The includer defines AB_TARGET, AB_NAME, VF and V(op); this file undefines them.

AB_TARGET void AB_NAME(const float *qkv, size_t seq, size_t heads, size_t hd, float scale, float *scratch,
                       float *out) {
    const size_t hidden = heads * hd, row = 3 * hidden, sp = round16(seq), half = hd / 2, pairs = (seq + 1) / 2;
    // Words (two bf16 each) unless said: Kᵀ pairs [half][sp], V pairs [sp/2][hd], Q rows
    // [seq][half], a staging area for K and V rows [seq][half], scores (fp32)
    // [AW_ROWS][sp], softmax rows [AW_ROWS][sp/2]: (2·hd + 12)·sp at most.
    uint32_t *ktp = (uint32_t *)scratch, *vp = ktp + half * sp, *qb = vp + sp / 2 * hd, *staged = qb + seq * half;
    float *s = (float *)(staged + seq * half);
    uint32_t *pb = (uint32_t *)(s + AW_ROWS * sp);
    const VF vscale = V(set1)(scale), lowest = V(set1)(-FLT_MAX);
    for (size_t h = 0; h < heads; h++) {
        for (size_t j = 0; j < seq; j++) {
            V(bf16_row)(qkv + j * row + h * hd, (uint16_t *)(qb + j * half), hd);
            V(bf16_row)(qkv + j * row + hidden + h * hd, (uint16_t *)(staged + j * half), hd);
        }
        quern_transpose_f32_avx2((const float *)staged, half, seq, half, (float *)ktp, sp);
        for (size_t p = 0; p < half; p++)
            for (size_t j = seq; j < sp; j++) ktp[p * sp + j] = 0;
        for (size_t j = 0; j < seq; j++)
            V(bf16_row)(qkv + j * row + 2 * hidden + h * hd, (uint16_t *)(staged + j * half), hd);
        for (size_t q = 0; q < seq / 2; q++)
            V(bf16_pairs)((const uint16_t *)(staged + 2 * q * half), (const uint16_t *)(staged + (2 * q + 1) * half),
                          vp + q * hd, hd);
        if (seq % 2)  // the last key pairs with a zero
            for (size_t c = 0; c < hd; c++) vp[seq / 2 * hd + c] = ((const uint16_t *)(staged + (seq - 1) * half))[c];
        for (size_t i0 = 0; i0 < seq; i0 += AW_ROWS) {
            const size_t rows = seq - i0 < AW_ROWS ? seq - i0 : AW_ROWS;
            const uint32_t *q[AW_ROWS];
            for (size_t r = 0; r < AW_ROWS; r++) q[r] = qb + (i0 + (r < rows ? r : rows - 1)) * half;
            // Each row's maximum is gathered as its scores are stored: the softmax needs
            // no pass of its own to find it.
            VF vmax[AW_ROWS];
            for (int r = 0; r < AW_ROWS; r++) vmax[r] = lowest;
            for (size_t j = 0; j < sp; j += 32) {
                const int two = j + 16 < sp;
                VF acc[AW_ROWS][2];
                for (int r = 0; r < AW_ROWS; r++) acc[r][0] = acc[r][1] = V(zero)();
                for (size_t p = 0; p < half; p++) {
                    const float *kr = (const float *)(ktp + p * sp + j);
                    VF k0 = V(load)(kr), k1 = two ? V(load)(kr + 16) : V(zero)();
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF qw = V(bcast32)(q[r] + p);
                        acc[r][0] = V(dpbf16)(acc[r][0], qw, k0);
                        acc[r][1] = V(dpbf16)(acc[r][1], qw, k1);
                    }
                }
                for (int hf = 0; hf < 1 + two; hf++) {
                    size_t jj = j + 16 * hf, real = seq > jj ? seq - jj : 0;
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF v = V(head)(V(mul)(acc[r][hf], vscale), real, lowest);
                        V(store)(s + r * sp + jj, v);
                        vmax[r] = V(max)(vmax[r], v);
                    }
                }
            }
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
                V(bf16_row)(sr, (uint16_t *)(pb + r * (sp / 2)), sp);
            }
            for (size_t c = 0; c < hd; c += 32) {
                const int two = c + 16 < hd;
                VF acc[AW_ROWS][2];
                for (int r = 0; r < AW_ROWS; r++) acc[r][0] = acc[r][1] = V(zero)();
                for (size_t q2 = 0; q2 < pairs; q2++) {
                    const float *vr = (const float *)(vp + q2 * hd + c);
                    VF v0 = V(load)(vr), v1 = two ? V(load)(vr + 16) : V(zero)();
                    for (int r = 0; r < AW_ROWS; r++) {
                        VF pw = V(bcast32)(pb + (r < (int)rows ? r : rows - 1) * (sp / 2) + q2);
                        acc[r][0] = V(dpbf16)(acc[r][0], pw, v0);
                        acc[r][1] = V(dpbf16)(acc[r][1], pw, v1);
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

#undef AB_TARGET
#undef AB_NAME
#undef VF
#undef V
