import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "batchnorm", "eps": 1e-5}`: per-channel `(x − mean) / √(var + eps) · γ + β`
/// with running statistics (channels are the first per-sample dimension). Tensors
/// `weight` (γ), `bias` (β), `running_mean`, `running_var`, each `[channels]`. After an
/// fp32 linear or conv without activation it is folded into that layer's weights.
public struct BatchNormSpec: LayerSpec, Equatable {
    public static let types = ["batchnorm"]
    public let eps: Float

    public init(eps: Float = 1e-5) { self.eps = eps }

    public init(type: String, entry: LayerEntry) throws {
        self.init(eps: Float(entry.object["eps"]?.doubleValue ?? 1e-5))
    }

    public var json: JSONValue { ["type": "batchnorm", "eps": .double(Double(eps))] }

    public func outputShape(_ input: [Int]) throws -> [Int] { input }

    public func tensors(input: [Int]) -> [(name: String, shape: [Int])] {
        let c = input[0]
        return [("weight", [c]), ("bias", [c]), ("running_mean", [c]), ("running_var", [c])]
    }

    public func fold(_ own: LayerTensors, into weight: inout Tensor, bias: inout Tensor) -> Bool {
        foldBatchNorm(
            weight: &weight.data, bias: &bias.data, gamma: own["weight"].data, beta: own["bias"].data,
            mean: own["running_mean"].data, variance: own["running_var"].data, eps: eps)
        return true
    }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer {
        let gamma = t["weight"].data, beta = t["bias"].data, mean = t["running_mean"].data
        let variance = t["running_var"].data
        let scale = (0..<gamma.count).map { gamma[$0] / (variance[$0] + eps).squareRoot() }
        return ChannelAffine(scale: scale, shift: (0..<gamma.count).map { beta[$0] - mean[$0] * scale[$0] })
    }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        let bn = BatchNorm(input[0], eps: eps, name: name)
        if let t = tensors {
            bn.gamma.value = t.optional("weight") ?? bn.gamma.value
            bn.beta.value = t.optional("bias") ?? bn.beta.value
            if let m = t.optional("running_mean") { bn.statistics.mean = m.data }
            if let v = t.optional("running_var") { bn.statistics.variance = v.data }
        }
        return bn
    }

    /// `x · scale[c] + shift[c]` per channel.
    struct ChannelAffine: InferenceLayer {
        let scale: [Float]
        let shift: [Float]

        func forward(
            _ x: [Float], batch: Int, input: [Int], output: [Int],
            observe: ((String, [Float]) -> Void)?
        ) -> [Float] {
            var h = x
            let inner = input.dropFirst().reduce(1, *), channels = input[0]
            for b in 0..<batch {
                for c in 0..<channels {
                    for i in 0..<inner { let at = (b * channels + c) * inner + i; h[at] = h[at] * scale[c] + shift[c] }
                }
            }
            return h
        }

        var summary: [MatrixSummary] { [] }
    }
}
