import CKernels

/// The element-wise steps of decoder blocks that run outside a GEMM's epilogue.
public enum Elementwise {
    /// SwiGLU: `out[r, i] = silu(gateUp[r, i]) · gateUp[r, n + i]` for `[rows, 2n]` input
    /// (gate columns first, then up), `silu(g) = g / (1 + e^−g)`.
    public static func gatedSiLU(
        _ gateUp: UnsafePointer<Float>, rows: Int, n: Int, into out: UnsafeMutablePointer<Float>, isa: ISA = .active
    ) {
        isa.kernels.gatedSiLU(gateUp, rows, n, out)
    }

    /// GPT-2's GELU (tanh approximation, "gelu_new"), in place over `count` floats:
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    public static func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int, isa: ISA = .active) {
        isa.kernels.geluTanh(x, count)
    }

    /// `y += x` over `count` floats (a residual connection).
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }
}
