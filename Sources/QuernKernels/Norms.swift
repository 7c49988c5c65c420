import CKernels

/// Row-wise normalisations on the kernel set, dispatched like the GEMMs.
public enum Norms {
    /// Layer norm over the last dimension of `[rows, n]`, in place when `y == x`.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, rows: Int, n: Int, gamma: UnsafePointer<Float>?,
        beta: UnsafePointer<Float>?, eps: Float, into y: UnsafeMutablePointer<Float>,
        isa: ISA = .active, pool: ThreadPool = .single
    ) {
        guard rows > 0, n > 0 else { return }
        let kernel = isa.kernels.layerNorm
        forRowBlocks(rows, n: n, pool: pool) { r0, count in
            kernel(x + r0 * n, count, n, n, gamma, beta, eps, y + r0 * n)
        }
    }

    /// `x = layerNorm(x + d)` over `[rows, n]`: a residual connection and its norm in one pass.
    public static func residualLayerNorm(
        _ x: UnsafeMutablePointer<Float>, adding d: UnsafePointer<Float>, rows: Int, n: Int,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        isa: ISA = .active, pool: ThreadPool = .single
    ) {
        guard rows > 0, n > 0 else { return }
        let kernel = isa.kernels.residualLayerNorm
        forRowBlocks(rows, n: n, pool: pool) { r0, count in
            kernel(x + r0 * n, d + r0 * n, count, n, gamma, beta, eps)
        }
    }

    /// Runs `body(firstRow, rows)` over blocks of rows across the pool: rows are
    /// independent, and a batch's norms left on one thread are what two threads wait on.
    /// Blocks of at least 32 KB, so the hand-off never costs more than the work.
    static func forRowBlocks(_ rows: Int, n: Int, pool: ThreadPool, _ body: (Int, Int) -> Void) {
        let minimum = max(1, (1 << 13) / max(n, 1))
        let tasks = min(pool.threads * 4, max(1, rows / minimum))
        guard tasks > 1 else { return body(0, rows) }
        let per = (rows + tasks - 1) / tasks
        pool.parallelFor((rows + per - 1) / per) { t in body(t * per, min(per, rows - t * per)) }
    }

    /// Softmax of each row of `[rows, n]` in place; `keep` (n flags) masks key positions.
    public static func softmax(
        _ x: UnsafeMutablePointer<Float>, rows: Int, n: Int, keep: UnsafePointer<UInt8>? = nil,
        isa: ISA = .active
    ) {
        guard rows > 0, n > 0 else { return }
        isa.kernels.softmax(x, rows, n, n, keep)
    }
}

extension Norms {
    /// RMS norm over the last dimension of `[rows, n]` (Llama, Qwen2, Mistral):
    /// `y = x / sqrt(mean(x²) + eps) · gamma`, in place when `y == x`. The sum of squares
    /// runs in eight fixed lanes, so a row's result never depends on the other rows.
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, rows: Int, n: Int, gamma: UnsafePointer<Float>, eps: Float,
        into y: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let row = x + r * n, out = y + r * n
            var lanes = SIMD8<Float>(repeating: 0)
            var i = 0
            while i + 8 <= n {
                let v = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD8<Float>.self)
                lanes += v * v  // not addProduct: a libm call per lane on baseline x86-64
                i += 8
            }
            var sum = lanes.sum()
            while i < n {
                sum += row[i] * row[i]
                i += 1
            }
            let scale = 1 / (sum / Float(n) + eps).squareRoot()
            for j in 0..<n { out[j] = gamma[j] * (row[j] * scale) }
        }
    }
}
