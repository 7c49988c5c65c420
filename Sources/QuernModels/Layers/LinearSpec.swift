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
        let m = matrices(input: input)[0]
        return Compiled(
            op: t.linearOperator(m), bias: t["bias"].data, activation: activation, matrix: t.name("weight"),
            counts: t.counts(m))
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
        let op: LinearOperator
        let bias: [Float]
        let activation: Activation
        let matrix: String
        let counts: (weights: Int, zeros: Int)

        func forward(
            _ x: [Float], batch: Int, input: [Int], output: [Int],
            observe: ((String, [Float]) -> Void)?
        ) -> [Float] {
            observe?(matrix, x)
            return applyLinear(op, x, rows: batch, bias: bias, activation: activation)
        }

        var summary: [MatrixSummary] {
            [MatrixSummary(kernel: op.kind, weights: counts.weights, zeros: counts.zeros, bias: bias.count)]
        }
    }
}
