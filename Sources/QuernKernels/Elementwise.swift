import Foundation

/// The element-wise steps of decoder blocks that run outside a GEMM's epilogue.
public enum Elementwise {
    /// SwiGLU: `out[r, i] = silu(gateUp[r, i]) · gateUp[r, n + i]` for `[rows, 2n]` input
    /// (gate columns first, then up), `silu(g) = g / (1 + e^−g)`.
    public static func gatedSiLU(
        _ gateUp: UnsafePointer<Float>, rows: Int, n: Int, into out: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let g = gateUp + r * 2 * n, u = g + n, o = out + r * n
            for i in 0..<n { o[i] = g[i] / (1 + Foundation.exp(-g[i])) * u[i] }
        }
    }

    /// GPT-2's GELU (tanh approximation, "gelu_new"), in place over `count` floats:
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    public static func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let c = Float((2 / Double.pi).squareRoot())
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + Foundation.tanh(c * (v + 0.044715 * v * v * v)))
        }
    }

    /// `y += x` over `count` floats (a residual connection).
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }
}
