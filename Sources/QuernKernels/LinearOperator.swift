/// A `[N, K]` weight matrix in the form it runs fastest: dense fp32, int8, or one of the
/// sparse formats, chosen once at load. Layers of every model family (Linear, and Conv2d
/// through im2col) call `apply` without caring which.
public enum LinearOperator: Sendable {
    case fp32(PackedWeights)
    case int8(QuantizedWeights)
    case sparse(SparseWeights)
    case sparseInt8(SparseQuantizedWeights)
    case blockSparseInt8(BlockSparseWeights)
    /// int8 with a calibrated (static) activation range.
    case int8Static(QuantizedWeights, QGEMM.InputRange)
    /// 4-bit groups (GGUF's Q4_0, Q4_1 and Q4_K, or fp32 quantized like Q4_1), run on the
    /// fp32 tiles: decoding reads 4.5 bits a weight instead of 32.
    case q4(Q4Weights)

    public enum Precision: String, Sendable { case fp32, int8, q4 }

    /// The fastest operator for fp32 weights `[N, K]` at a precision: sparse formats when
    /// the measured density thresholds say they win (1×4 blocks for int8 when whole blocks
    /// are zero, CSR otherwise), dense kernels otherwise.
    /// Sparse kernels transpose each 64-row block in and out; on tiny matrices that costs
    /// more than the skipped multiplications save, so they are used from this many weights
    /// up. fp32: ragged blocks are zero-padded for the vector kernel, so a digits mlp whose
    /// 64×64 layer is 80 % pruned runs 1.09–1.12× faster with it sparse.
    public static let sparseMinimumWeights = 1 << 12
    /// int8: the sparse int8 kernels' speed-ups were measured on 384×384 and larger only.
    public static let sparseInt8MinimumWeights = 1 << 16

    public static func choose(_ w: Tensor, precision: Precision) -> LinearOperator {
        let zeros = w.data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
        let density = 1 - Double(zeros) / Double(max(w.count, 1))
        switch precision {
        case .fp32:
            if density < SparseWeights.densityThreshold && w.count >= sparseMinimumWeights {
                return .sparse(SparseWeights(w))
            }
            return .fp32(PackedWeights(w))
        case .int8:
            return choose(QuantizedWeights(quantizing: w))
        case .q4:
            return .q4(Q4Weights(quantizing: w))
        }
    }

    /// The fastest operator for already quantized weights. Both sparse forms need at least
    /// half the weights zero (whole blocks, or a CSR density under its threshold): a dense
    /// matrix is not worth building them for.
    public static func choose(_ q: QuantizedWeights) -> LinearOperator {
        guard q.values.count >= sparseInt8MinimumWeights else { return .int8(q) }
        let zeros = q.values.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
        guard 2 * zeros >= q.values.count else { return .int8(q) }
        let kernels = ISA.active.kernels
        if kernels.qgemmWideQuadTile != nil {
            // Against AVX512-VNNI's zmm tile only the zmm block-sparse kernel can win; the
            // 256-bit sparse kernels lost to it at every density measured (see
            // `BlockSparseWeights.zmmDensityThreshold`).
            guard kernels.spmmQ1x4Quads != nil else { return .int8(q) }
            let blocks = BlockSparseWeights(q)
            return blocks.blockDensity < BlockSparseWeights.zmmDensityThreshold ? .blockSparseInt8(blocks) : .int8(q)
        }
        let blocks = BlockSparseWeights(q)
        // Block-sparse wins by 2–3× at 80–90 % block sparsity on AVX2 (see `quern bench
        // kernels`); require at least half of the blocks empty before leaving the dense kernel.
        if blocks.blockDensity < 0.5 { return .blockSparseInt8(blocks) }
        let csr = SparseQuantizedWeights(q)
        if csr.preferred { return .sparseInt8(csr) }
        return .int8(q)
    }

    public var outFeatures: Int {
        switch self {
        case .fp32(let w): w.n
        case .int8(let w): w.n
        case .sparse(let w): w.n
        case .sparseInt8(let w): w.n
        case .blockSparseInt8(let w): w.n
        case .int8Static(let w, _): w.n
        case .q4(let w): w.n
        }
    }

    public var kind: String {
        switch self {
        case .fp32: "fp32"
        case .int8: "int8"
        case .sparse: "fp32-csr"
        case .sparseInt8: "int8-csr"
        case .blockSparseInt8: "int8-block1x4"
        case .int8Static: "int8-static"
        case .q4: "q4"
        }
    }

    /// `y[M, N] = act(x[M, K] · wᵀ + bias)`.
    public func apply(
        _ x: UnsafePointer<Float>, m: Int, bias: UnsafePointer<Float>?, activation: Activation,
        into y: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared
    ) {
        switch self {
        case .fp32(let w): SGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, pool: pool)
        case .int8(let w): QGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, pool: pool)
        case .sparse(let w): SparseGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, pool: pool)
        case .sparseInt8(let w): SparseQGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, pool: pool)
        case .blockSparseInt8(let w):
            SparseQGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, pool: pool)
        case .int8Static(let w, let range):
            QGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, input: range, pool: pool)
        case .q4(let w): SGEMM.linear(x, m: m, w, bias: bias, activation: activation, into: y, pool: pool)
        }
    }
}
