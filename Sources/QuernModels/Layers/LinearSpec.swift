import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "linear", "out_features": 10, "activation": "relu"}` (the type may be
/// left out): `y = act(x·Wᵀ + b)` on a flat input. Tensors `weight [out, in]`,
/// `bias [out]`.
public struct LinearSpec: LayerSpec, Equatable {
    public static let types = ["linear"]
    public let outFeatures: Int
    public let activation: Activation

    public init(outFeatures: Int, activation: Activation = .none) {
        self.outFeatures = outFeatures
        self.activation = activation
    }

    public init(type: String, entry: LayerEntry) throws {
        let out = try entry.int("out_features")
        guard out > 0 else { throw entry.invalid("\"out_features\" must be positive") }
        self.init(outFeatures: out, activation: try entry.activation())
    }

    public var json: JSONValue {
        ["type": "linear", "out_features": .int(Int64(outFeatures)), "activation": .string(activation.rawValue)]
    }

    public func outputShape(_ input: [Int]) throws -> [Int] {
        guard input.count == 1 else {
            throw ShapeError("a linear layer needs a flat input, got \(input); add a flatten layer")
        }
        return [outFeatures]
    }

    public func tensors(input: [Int]) -> [(name: String, shape: [Int])] {
        [("weight", [outFeatures, input[0]]), ("bias", [outFeatures])]
    }

    public func matrices(input: [Int]) -> [WeightMatrix] {
        [WeightMatrix(name: "weight", shape: [outFeatures, input[0]])]
    }

    public var foldTarget: (weight: String, bias: String)? { activation == .none ? ("weight", "bias") : nil }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer {
        Compiled(matrix: BoundMatrix(t, matrices(input: input)[0], bias: "bias"), activation: activation)
    }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        guard let t = tensors, let w = t.optional("weight") else {
            return Linear(input[0], outFeatures, activation: activation, random: &random, name: name)
        }
        return Linear(
            weight: Parameter(t.name("weight"), w), bias: t.optional("bias").map { Parameter(t.name("bias"), $0) },
            activation: activation)
    }

    struct Compiled: InferenceLayer {
        let matrix: BoundMatrix
        let activation: Activation

        func forward(
            _ x: [Float], batch: Int, input: [Int], output: [Int],
            observe: ((String, [Float]) -> Void)?
        ) -> [Float] {
            matrix.apply(x, rows: batch, activation: activation, observe: observe)
        }

        var summary: [MatrixSummary] { [matrix.summary] }
    }
}
