import CKernels

/// The kernels of one instruction-set path: every C entry point that has more than one
/// implementation, mapped to the one this path runs. Which form a path uses is decided
/// here and nowhere else: the drivers (SGEMM, QGEMM, Norms, Attention, the sparse GEMMs,
/// Conv) fetch their entries from `isa.kernels` once per call, `isa:` arguments and
/// `QUERN_ISA` pick a table, and a new path is one more table rather than an edit in
/// every driver. Each table is built once, on first use, from the CPU probe.
///
/// Every entry of `scalar` is a plain twin; the tests hold every other table's entries to
/// it. The int8 tiles depend on the weights' layout and values: `qgemmTile(for:)` picks
/// among them.
struct KernelTable: Sendable {
    typealias SGEMMTile =
        @convention(c) (
            Int, UnsafePointer<Float>?, UnsafePointer<Float>?,
            UnsafeMutablePointer<Float>?, Int, Int, Int, Int32
        ) -> Void
    typealias SGEMMWideTile =
        @convention(c) (
            Int, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?,
            UnsafeMutablePointer<Float>?, Int, Int, Int, Int32
        ) -> Void
    typealias BiasActivation =
        @convention(c) (
            UnsafeMutablePointer<Float>?, Int, Int, Int, UnsafePointer<Float>?,
            quern_act
        ) -> Void
    typealias QGEMMPairTile =
        @convention(c) (
            Int, UnsafePointer<UInt32>?, UnsafePointer<Int16>?,
            UnsafeMutablePointer<Int32>?, Int, Int, Int, Int32
        ) -> Void
    typealias QGEMMQuadTile =
        @convention(c) (
            Int, UnsafePointer<UInt32>?, UnsafePointer<Int8>?,
            UnsafeMutablePointer<Int32>?, Int, Int, Int, Int32
        ) -> Void
    typealias QGEMMWideQuadTile =
        @convention(c) (
            Int, UnsafePointer<UInt32>?, UnsafePointer<UInt32>?, UnsafePointer<Int8>?, UnsafePointer<Int8>?,
            UnsafeMutablePointer<Int32>?, Int, Int, Int, Int32
        ) -> Void
    typealias QuantizeRows =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, Int, UnsafeMutablePointer<UInt8>?, Int,
            UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Int32>?
        ) -> Void
    typealias QuantizeRowsFixed =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, Int, UnsafeMutablePointer<UInt8>?,
            Int, UnsafePointer<Float>?, Int32
        ) -> Void
    typealias Dequantize =
        @convention(c) (
            UnsafePointer<Int32>?, Int, Int, Int, UnsafeMutablePointer<Float>?, Int,
            UnsafePointer<Float>?, UnsafePointer<Int32>?, UnsafePointer<Float>?,
            UnsafePointer<Int32>?, UnsafePointer<Float>?, quern_act
        ) -> Void
    typealias LayerNorm =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, Int, UnsafePointer<Float>?,
            UnsafePointer<Float>?, Float, UnsafeMutablePointer<Float>?
        ) -> Void
    typealias ResidualLayerNorm =
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, Int, Int,
            UnsafePointer<Float>?, UnsafePointer<Float>?, Float
        ) -> Void
    typealias Softmax = @convention(c) (UnsafeMutablePointer<Float>?, Int, Int, Int, UnsafePointer<UInt8>?) -> Void
    typealias AttentionSequence =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, Int, Float,
            UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
        ) -> Void
    typealias SpmmCSR =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
            UnsafePointer<Float>?, Int, Int, UnsafeMutablePointer<Float>?, Int, Int32
        ) -> Void
    typealias SpmmQ1x4 =
        @convention(c) (
            UnsafePointer<UInt32>?, Int, Int, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
            UnsafePointer<UInt32>?, UnsafePointer<UInt32>?, Int, Int,
            UnsafeMutablePointer<Int32>?, Int
        ) -> Void
    typealias SpmmQ1x4Quads =
        @convention(c) (
            UnsafePointer<UInt32>?, Int, Int, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
            UnsafePointer<UInt32>?, Int, Int, UnsafeMutablePointer<Int32>?, Int
        ) -> Void
    typealias SpmmQCSR =
        @convention(c) (
            UnsafePointer<Int16>?, Int, Int, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
            UnsafePointer<UInt32>?, Int, Int, UnsafeMutablePointer<Int32>?, Int
        ) -> Void
    typealias AttentionCached =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, Int, UnsafePointer<Float>?, UnsafePointer<Float>?, Int, Int, Int, Int,
            Float, UnsafeMutablePointer<Float>?, Int, UnsafeMutablePointer<Float>?
        ) -> Void
    typealias GatedSiLU = @convention(c) (UnsafePointer<Float>?, Int, Int, UnsafeMutablePointer<Float>?) -> Void
    typealias GELUTanh = @convention(c) (UnsafeMutablePointer<Float>?, Int) -> Void
    typealias Q4DequantPanel =
        @convention(c) (UnsafePointer<UInt8>?, UnsafePointer<Float>?, Int, Int, UnsafeMutablePointer<Float>?) -> Void
    typealias Transpose =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, Int, UnsafeMutablePointer<Float>?,
            Int
        ) -> Void

    // fp32 GEMM (sgemm.c)
    /// The 6×16 register tile over one B panel.
    let sgemmTile: SGEMMTile
    /// The 6×32 tile over two adjacent panels, on paths with AVX-512 registers; nil elsewhere.
    let sgemmWideTile: SGEMMWideTile?
    /// `c = act(c + bias)`: the fused epilogue of the fp32 GEMMs (dense and sparse).
    let biasActivation: BiasActivation
    /// Expands K rows of a 4-bit panel into the fp32 B layout (q4.c).
    let q4DequantPanel: Q4DequantPanel

    // int8 GEMM (qgemm.c)
    /// The tile over K pairs widened to int16 (`QuantizedWeights.Layout.pairs`).
    let qgemmPairTile: QGEMMPairTile
    /// The tile over K quads (`.quads`), exact for any weights.
    let qgemmQuadTile: QGEMMQuadTile
    /// The tile over K quads for pair-bounded weights (`QuantizedWeights.pairBounded`):
    /// it may be one that is exact only for them, when that one is faster.
    let qgemmQuadTilePairBounded: QGEMMQuadTile
    /// The tile of up to 12 rows (two A panels) × two adjacent quad panels, exact for any
    /// weights, on paths with AVX512-VNNI's 32 zmm registers; nil elsewhere (the quad tiles
    /// above run each panel).
    let qgemmWideQuadTile: QGEMMWideQuadTile?
    /// Dynamic per-row u8 quantization of the activations.
    let quantizeRows: QuantizeRows
    /// u8 quantization with one calibrated range for every row, a multiplier per column.
    let quantizeRowsFixed: QuantizeRowsFixed
    /// The int8 epilogue: rescale, remove the zero point, bias, activation.
    let dequantize: Dequantize

    // normalisation, softmax, attention (norm.c, attention.c)
    let layerNorm: LayerNorm
    let residualLayerNorm: ResidualLayerNorm
    let softmax: Softmax
    /// Self-attention over one unpadded sequence, all heads.
    let attention: AttentionSequence
    /// The same on bfloat16 products (vdpbf16ps), where the path has it: for int8 encoders.
    let attentionBF16: AttentionSequence?
    /// Causal attention of new rows against a KV cache (decoders).
    let attentionCached: AttentionCached
    /// SwiGLU's gate (elementwise.c).
    let gatedSiLU: GatedSiLU
    /// GPT-2's tanh GELU, in place (elementwise.c).
    let geluTanh: GELUTanh

    // sparse (sparse.c) and layout (layout.c)
    /// fp32 CSR weights times a transposed block of input rows.
    let spmmCSR: SpmmCSR
    /// int8 1×4 block-sparse weights times a transposed block of u8 rows.
    let spmmQ1x4: SpmmQ1x4
    /// The same with rows and weights as K quads for 16-lane vpdpbusd, where the path has
    /// it (AVX512-VNNI); `SparseQGEMM` prefers it.
    let spmmQ1x4Quads: SpmmQ1x4Quads?
    /// int8 CSR weights (nonzeros in pairs) times a transposed block of u8 rows.
    let spmmQCSR: SpmmQCSR
    /// fp32 matrix transpose.
    let transpose: Transpose
}

extension KernelTable {
    /// The plain twins: the path of CPUs without AVX2, and the one every table is tested
    /// against.
    static let scalar = KernelTable(
        sgemmTile: quern_sgemm_tile_scalar, sgemmWideTile: nil, biasActivation: quern_bias_act_scalar,
        q4DequantPanel: quern_q4_dequant_panel_scalar,
        qgemmPairTile: quern_qgemm_tile_scalar, qgemmQuadTile: quern_qgemm4_tile_scalar,
        qgemmQuadTilePairBounded: quern_qgemm4_tile_scalar, qgemmWideQuadTile: nil,
        quantizeRows: quern_quantize_rows_u8_scalar, quantizeRowsFixed: quern_quantize_rows_u8_fixed_scalar,
        dequantize: quern_dequantize_scalar,
        layerNorm: quern_layernorm_scalar, residualLayerNorm: quern_residual_layernorm_scalar,
        softmax: quern_softmax_scalar, attention: quern_attention_seq_scalar, attentionBF16: nil,
        attentionCached: quern_attention_cached_scalar, gatedSiLU: quern_gated_silu_scalar,
        geluTanh: quern_gelu_tanh_scalar,
        spmmCSR: quern_spmm_csr_scalar, spmmQ1x4: quern_spmm_q1x4_scalar, spmmQ1x4Quads: nil,
        spmmQCSR: quern_spmm_qcsr_scalar,
        transpose: quern_transpose_f32_scalar)

    /// AVX2 + FMA. Quad-packed weights run vpmaddubsw when they are pair-bounded (exact
    /// for them, and a quarter fewer instructions than the pair tile), else the VNNI tile's
    /// body with vpdpbusd emulated (exact, slower than the pair tile).
    static let avx2 = simd(
        wide: nil, quads: quern_qgemm4_tile_avx2, pairBoundedQuads: quern_qgemm4_tile_maddubs_avx2, wideQuads: nil)

    /// AVX-512: AVX2's kernels plus the 6×32 fp32 tile on zmm registers. Without VNNI the
    /// int8 tiles stay 256-bit (see qgemm_tile_body.h).
    static let avx512 = simd(
        wide: avx512WideTile, quads: quern_qgemm4_tile_avx2,
        pairBoundedQuads: quern_qgemm4_tile_maddubs_avx2, wideQuads: nil, lanes: avx512Lanes)

    /// VNNI: quads through vpdpbusd for all weights. With AVX512-VNNI, the 12×32 zmm tile
    /// over panel pairs (qgemm_wide_body.h), the EVEX ymm tile for a last odd panel and
    /// the zmm 1×4 block-sparse kernel (spmm_wide_body.h);
    /// else AVX-VNNI's VEX ymm tile (Alder Lake and later clients, 16 vector registers).
    /// Those clients lack AVX-512, so the wide fp32 tile is there only when the CPU has
    /// AVX-512 too.
    static let vnni: KernelTable = {
        let evex = ISA.has(QUERN_CPU_VNNI)
        let quads: QGEMMQuadTile = evex ? quern_qgemm4_tile_avx512vnni : quern_qgemm4_tile_avxvnni
        return simd(
            wide: avx512WideTile, quads: quads, pairBoundedQuads: quads,
            wideQuads: evex ? quern_qgemm4_tile2_avx512vnni : nil,
            sparseQuads: evex ? quern_spmm_q1x4_avx512vnni : nil, lanes: avx512Lanes)
    }()

    /// AVX2's table with the AVX-512 tiles' bodies on emulated zmm registers (two ymm
    /// halves each): runs on AVX2 machines, so tests cover those bodies everywhere.
    static let avx512Emulated = simd(
        wide: quern_sgemm_tile2_avx512_emulated, quads: quern_qgemm4_tile_avx2,
        pairBoundedQuads: quern_qgemm4_tile_maddubs_avx2, wideQuads: quern_qgemm4_tile2_avx512vnni_emulated,
        sparseQuads: quern_spmm_q1x4_avx512vnni_emulated, lanes: .zmmEmulated)

    /// The 6×32 tile wherever the CPU has AVX-512 registers.
    private static let avx512WideTile: SGEMMWideTile? = ISA.has(QUERN_CPU_AVX512) ? quern_sgemm_tile2_avx512 : nil

    /// The 16-float kernels wherever the CPU has zmm registers.
    private static let avx512Lanes: VectorKernels = ISA.has(QUERN_CPU_AVX512) ? .zmm : .ymm

    /// The kernels written once for 8- and 16-float vectors (vecmath.h's vocabularies):
    /// ymm, zmm, or zmm emulated by two ymm halves.
    struct VectorKernels {
        let attention: AttentionSequence
        let attentionBF16: AttentionSequence?
        let biasActivation: BiasActivation
        let dequantize: Dequantize
        let spmmCSR: SpmmCSR

        static let ymm = VectorKernels(
            attention: quern_attention_seq_avx2, attentionBF16: nil, biasActivation: quern_bias_act_avx2,
            dequantize: quern_dequantize_avx2,
            spmmCSR: quern_spmm_csr_avx2)
        static let zmm = VectorKernels(
            attention: quern_attention_seq_avx512,
            attentionBF16: ISA.has(QUERN_CPU_BF16) ? quern_attention_seq_bf16_avx512 : nil,
            biasActivation: quern_bias_act_avx512,
            dequantize: quern_dequantize_avx512, spmmCSR: quern_spmm_csr_avx512)
        static let zmmEmulated = VectorKernels(
            attention: quern_attention_seq_avx512_emulated, attentionBF16: quern_attention_seq_bf16_emulated,
            biasActivation: quern_bias_act_avx512_emulated,
            dequantize: quern_dequantize_avx512_emulated, spmmCSR: quern_spmm_csr_avx512_emulated)
    }

    /// The SIMD paths share every AVX2 kernel; they differ in the fp32 wide tile, the
    /// int8 quad tiles and the vector width of attention and the epilogues.
    private static func simd(
        wide: SGEMMWideTile?, quads: QGEMMQuadTile, pairBoundedQuads: QGEMMQuadTile, wideQuads: QGEMMWideQuadTile?,
        sparseQuads: SpmmQ1x4Quads? = nil, lanes: VectorKernels = .ymm
    ) -> KernelTable {
        KernelTable(
            sgemmTile: quern_sgemm_tile_avx2, sgemmWideTile: wide, biasActivation: lanes.biasActivation,
            q4DequantPanel: quern_q4_dequant_panel_avx2,
            qgemmPairTile: quern_qgemm_tile_avx2, qgemmQuadTile: quads, qgemmQuadTilePairBounded: pairBoundedQuads,
            qgemmWideQuadTile: wideQuads,
            quantizeRows: quern_quantize_rows_u8_avx2, quantizeRowsFixed: quern_quantize_rows_u8_fixed_avx2,
            dequantize: lanes.dequantize,
            layerNorm: quern_layernorm_avx2, residualLayerNorm: quern_residual_layernorm_avx2,
            softmax: quern_softmax_avx2, attention: lanes.attention, attentionBF16: lanes.attentionBF16,
            attentionCached: quern_attention_cached_avx2, gatedSiLU: quern_gated_silu_avx2,
            geluTanh: quern_gelu_tanh_avx2,
            spmmCSR: lanes.spmmCSR, spmmQ1x4: quern_spmm_q1x4_avx2, spmmQ1x4Quads: sparseQuads,
            spmmQCSR: quern_spmm_qcsr_avx2,
            transpose: quern_transpose_f32_avx2)
    }

    /// The int32 tile kernel for `w`'s panels: the pair tile or, for quads, the one for
    /// `w`'s weights (`qgemmQuadTilePairBounded` when they are pair-bounded).
    /// The tile over two adjacent panels of `w`, when this path has one for its layout.
    func qgemmWideTile(for w: QuantizedWeights) -> QGEMM.WideTile? {
        guard w.layout == .quads, let tile = qgemmWideQuadTile else { return nil }
        return {
            tile(
                $0, $1, $2, $3.assumingMemoryBound(to: Int8.self), $4?.assumingMemoryBound(to: Int8.self), $5, $6, $7,
                $8, $9)
        }
    }

    func qgemmTile(for w: QuantizedWeights) -> QGEMM.Tile {
        switch w.layout {
        case .pairs:
            let tile = qgemmPairTile
            return { tile($0, $1, $2.assumingMemoryBound(to: Int16.self), $3, $4, $5, $6, $7) }
        case .quads:
            let tile = w.pairBounded ? qgemmQuadTilePairBounded : qgemmQuadTile
            return { tile($0, $1, $2.assumingMemoryBound(to: Int8.self), $3, $4, $5, $6, $7) }
        }
    }
}

extension ISA {
    /// This path's kernels.
    var kernels: KernelTable {
        switch self {
        case .scalar: .scalar
        case .avx2: .avx2
        case .avx512: .avx512
        case .vnni: .vnni
        }
    }
}
