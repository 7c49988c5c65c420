import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "activation", "activation": "relu"}`: an activation on its own (linear and
/// conv layers take theirs in the same entry, where the kernels fuse it).
public struct ActivationSpec: LayerSpec, Equatable {
    public static let types = ["activation"]
    public let activation: Activation

    public init(_ activation: Activation) { self.activation = activation }

    public init(type: String, entry: LayerEntry) throws { self.init(try entry.activation()) }

    public var json: JSONValue { ["type": "activation", "activation": .string(activation.rawValue)] }

    public func outputShape(_ input: [Int]) throws -> [Int] { input }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer { Compiled(activation: activation) }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        ActivationLayer(activation)
    }

    struct Compiled: InferenceLayer {
        let activation: Activation

        func forward(
            _ x: [Float], batch: Int, input: [Int], output: [Int],
            observe: ((String, [Float]) -> Void)?
        ) -> [Float] {
            x.map { activation.apply($0) }
        }

        var summary: [MatrixSummary] { [] }
    }
}
