import CKernels

/// Pruned weights `[N, K]` in compressed sparse rows: only the nonzeros are stored and
/// multiplied. `SparseGEMM` runs them; `SparseWeights.preferred` says whether sparse
/// beats the dense packed GEMM at a given density.
public struct SparseWeights: Sendable {
    public let n: Int
    public let k: Int
    let rowptr: [Int32]
    let cols: [Int32]
    let vals: [Float]

    public var nonzeros: Int { vals.count }
    public var density: Double { Double(nonzeros) / Double(max(n * k, 1)) }

    /// Below this density the CSR kernel beats the dense packed GEMM. Measured with
    /// `quern bench kernels` on Zen 3 (AVX2), one thread: break-even between 0.3 and 0.5
    /// depending on the shape (0.80–1.35× at 0.3, 1.34–1.74× at 0.2, 2.3–3.1× at 0.1).
    public static let densityThreshold = 0.25

    /// Whether these weights should run sparse rather than dense.
    public var preferred: Bool { density < Self.densityThreshold }

    public init(_ w: Tensor) {
        precondition(w.shape.count == 2, "SparseWeights: weights must be [N, K], got \(w.shape)")
        n = w.shape[0]
        k = w.shape[1]
        var rowptr: [Int32] = [0], cols: [Int32] = [], vals: [Float] = []
        for r in 0..<n {
            for c in 0..<k where w.data[r * k + c] != 0 {
                cols.append(Int32(c))
                vals.append(w.data[r * k + c])
            }
            rowptr.append(Int32(vals.count))
        }
        self.rowptr = rowptr
        self.cols = cols
        self.vals = vals
    }
}

public enum SparseGEMM {
    static let block = 64

    /// `y[M, N] = act(x[M, K] · wᵀ + bias)` with CSR weights. Rows of x go in blocks of 64,
    /// transposed so each nonzero is one AXPY over the block; blocks run across the pool.
    public static func linear(_ x: UnsafePointer<Float>, m: Int, _ w: SparseWeights, bias: UnsafePointer<Float>?,
                              activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
                              isa: ISA = .active, pool: ThreadPool = .shared) {
        let k = w.k, n = w.n
        guard m > 0, n > 0 else { return }
        let kernel = isa == .scalar ? quern_spmm_csr_scalar : quern_spmm_csr_avx2
        let epilogue = isa == .scalar ? quern_bias_act_scalar : quern_bias_act_avx2
        let blocks = (m + block - 1) / block
        w.rowptr.withUnsafeBufferPointer { rowptr in
            w.cols.withUnsafeBufferPointer { cols in
                w.vals.withUnsafeBufferPointer { vals in
                    pool.parallelFor(blocks) { b in
                        let m0 = b * block, mb = min(block, m - m0)
                        let xt = UnsafeMutablePointer<Float>.allocate(capacity: max(k * block, 1))
                        let yt = UnsafeMutablePointer<Float>.allocate(capacity: n * block)
                        defer { xt.deallocate(); yt.deallocate() }
                        for i in 0..<mb {
                            for p in 0..<k { xt[p * block + i] = x[(m0 + i) * k + p] }
                        }
                        kernel(xt, block, mb, rowptr.baseAddress!, cols.baseAddress, vals.baseAddress, 0, n, yt, block)
                        for i in 0..<mb {
                            for j in 0..<n { y[(m0 + i) * n + j] = yt[j * block + i] }
                        }
                        if bias != nil || activation != .none {
                            epilogue(y + m0 * n, n, mb, n, bias, activation.code)
                        }
                    }
                }
            }
        }
    }
}
