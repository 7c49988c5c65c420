import CKernels
import Foundation

/// The activations layers fuse into their kernels' epilogues, by the names configs use.
public enum Activation: String, Sendable, CaseIterable, Codable {
    case none, relu, gelu, tanh, sigmoid

    /// One value, in plain Swift: what an activation on its own (outside a GEMM) costs
    /// little enough to run this way, and what the C epilogues are tested against.
    @inline(__always) public func apply(_ v: Float) -> Float {
        switch self {
        case .none: return v
        case .relu: return max(v, 0)
        // Exact GELU (erf form), as PyTorch's default and Hugging Face's "gelu".
        case .gelu: return Float(0.5 * Double(v) * erfc(-Double(v) / 2.0.squareRoot()))
        case .tanh: return Foundation.tanh(v)
        case .sigmoid: return 1 / (1 + Foundation.exp(-v))
        }
    }

    /// The activation as the C epilogues name it.
    var code: quern_act {
        switch self {
        case .none: QUERN_ACT_NONE
        case .relu: QUERN_ACT_RELU
        case .gelu: QUERN_ACT_GELU
        case .tanh: QUERN_ACT_TANH
        case .sigmoid: QUERN_ACT_SIGMOID
        }
    }
}
