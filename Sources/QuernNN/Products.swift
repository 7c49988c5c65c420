import QuernKernels

/// The three matrix products training needs, all on the packed fp32 GEMM (row-major
/// arrays; the caller states the shapes). Forward is `a · bᵀ` like inference; the
/// backward pass needs `a · b` (input gradients) and `aᵀ · b` (weight gradients).
/// Packing the right-hand side costs O(size) per call, small next to the O(M·N·K) product.
enum Products {
    /// `a[M,K] · b[N,K]ᵀ (+ bias) → [M,N]`, with the activation fused.
    static func abT(
        _ a: [Float], _ m: Int, _ k: Int, _ b: [Float], _ n: Int, bias: [Float]? = nil,
        activation: Activation = .none, pool: ThreadPool
    ) -> [Float] {
        guard m > 0, n > 0 else { return [] }
        let packed = PackedWeights(b, n: n, k: k)
        return multiply(a, m, packed, bias: bias, activation: activation, pool: pool)
    }

    /// `a[M,K] · b[K,N] → [M,N]`.
    static func ab(_ a: [Float], _ m: Int, _ k: Int, _ b: [Float], _ n: Int, pool: ThreadPool) -> [Float] {
        guard m > 0, n > 0 else { return [] }
        let packed = b.withUnsafeBufferPointer { PackedWeights(transposing: $0.baseAddress!, rows: k, cols: n) }
        return multiply(a, m, packed, bias: nil, activation: .none, pool: pool)
    }

    /// `a[K,M]ᵀ · b[K,N] → [M,N]` (K is the batch: weight gradients sum over it).
    static func aTb(_ a: [Float], _ k: Int, _ m: Int, _ b: [Float], _ n: Int, pool: ThreadPool) -> [Float] {
        guard m > 0, n > 0 else { return [] }
        guard k > 0 else { return [Float](repeating: 0, count: m * n) }
        return ab(transpose(a, rows: k, cols: m), m, k, b, n, pool: pool)
    }

    static func transpose(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        a.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                ConvLayout.transpose(src.baseAddress!, cols, rows, cols, dst.baseAddress!, rows)
            }
        }
        return out
    }

    /// Column sums of `a[M,N]` (bias gradients).
    static func columnSums(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: cols)
        for r in 0..<rows {
            for c in 0..<cols { out[c] += a[r * cols + c] }
        }
        return out
    }

    private static func multiply(
        _ a: [Float], _ m: Int, _ w: PackedWeights, bias: [Float]?, activation: Activation,
        pool: ThreadPool
    ) -> [Float] {
        var out = [Float](repeating: 0, count: m * w.n)
        a.withUnsafeBufferPointer { ap in
            out.withUnsafeMutableBufferPointer { op in
                if let bias {
                    bias.withUnsafeBufferPointer { bp in
                        SGEMM.linear(
                            ap.baseAddress!, m: m, w, bias: bp.baseAddress!, activation: activation,
                            into: op.baseAddress!, pool: pool)
                    }
                } else {
                    SGEMM.linear(
                        ap.baseAddress!, m: m, w, bias: nil, activation: activation, into: op.baseAddress!, pool: pool)
                }
            }
        }
        return out
    }
}
