import CKernels

/// Row-wise normalisations on the kernel set, dispatched like the GEMMs.
public enum Norms {
    /// Layer norm over the last dimension of `[rows, n]`, in place when `y == x`.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, rows: Int, n: Int, gamma: UnsafePointer<Float>?,
        beta: UnsafePointer<Float>?, eps: Float, into y: UnsafeMutablePointer<Float>,
        isa: ISA = .active
    ) {
        guard rows > 0, n > 0 else { return }
        isa.kernels.layerNorm(x, rows, n, n, gamma, beta, eps, y)
    }

    /// `x = layerNorm(x + d)` over `[rows, n]`: a residual connection and its norm in one pass.
    public static func residualLayerNorm(
        _ x: UnsafeMutablePointer<Float>, adding d: UnsafePointer<Float>, rows: Int, n: Int,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        isa: ISA = .active
    ) {
        guard rows > 0, n > 0 else { return }
        isa.kernels.residualLayerNorm(x, d, rows, n, gamma, beta, eps)
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
