import Foundation
import QuernCore
import QuernKernels

/// `mlp`: a stack of dense layers on a feature vector, with optional input
/// standardisation `(x - mean) / scale` stored in the weights (`normalizer.*`).
///
/// config.json:
/// ```json
/// {"model_type": "mlp", "input_size": 64, "num_labels": 10,
///  "layers": [{"out_features": 64, "activation": "relu"}, {"out_features": 10, "activation": "none"}],
///  "id2label": {"0": "zero", ...}, "feature_names": [...], "problem_type": "single_label_classification"}
/// ```
/// Weights: `layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`.
public struct MLP: TabularModel {
    public struct Config: Codable, Sendable {
        public struct Layer: Codable, Sendable {
            public var outFeatures: Int
            public var activation: Activation
            enum CodingKeys: String, CodingKey {
                case outFeatures = "out_features"
                case activation
            }
            public init(outFeatures: Int, activation: Activation) {
                self.outFeatures = outFeatures
                self.activation = activation
            }
            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                outFeatures = try c.decode(Int.self, forKey: .outFeatures)
                activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .none
            }
        }
        public var inputSize: Int
        public var layers: [Layer]
        public var id2label: [String: String]?
        public var featureNames: [String]?
        public var problemType: String?

        enum CodingKeys: String, CodingKey {
            case inputSize = "input_size"
            case layers
            case id2label
            case featureNames = "feature_names"
            case problemType = "problem_type"
        }
    }

    struct Dense: Sendable {
        let weight: PackedWeights   // [out, in], packed for the GEMM micro-kernel
        let bias: [Float]           // [out]
        let activation: Activation
    }

    public let config: Config
    let normalizer: (mean: Tensor, scale: Tensor)?
    let layers: [Dense]
    public let labels: [String]

    public var family: String { "mlp" }
    public var inputSize: Int { config.inputSize }
    public var featureNames: [String]? { config.featureNames }

    public init(config data: Data, weights: SafetensorsFile) throws {
        try self.init(config: JSONDecoder().decode(Config.self, from: data), weights: weights)
    }

    /// Strict loading: every tensor the config implies must exist with its shape, and
    /// the file may hold nothing else.
    public init(config: Config, weights: SafetensorsFile) throws {
        guard config.inputSize > 0, !config.layers.isEmpty, config.layers.allSatisfy({ $0.outFeatures > 0 }) else {
            throw QuernError(.modelInvalid, "an mlp needs input_size > 0 and at least one layer with out_features > 0")
        }
        self.config = config
        var expected: Set<String> = []
        var inFeatures = config.inputSize
        var layers: [Dense] = []
        for (i, layer) in config.layers.enumerated() {
            let w = try weights.float32("layers.\(i).weight", shape: [layer.outFeatures, inFeatures])
            let b = try weights.float32("layers.\(i).bias", shape: [layer.outFeatures])
            layers.append(Dense(weight: PackedWeights(w), bias: b.data, activation: layer.activation))
            expected.formUnion(["layers.\(i).weight", "layers.\(i).bias"])
            inFeatures = layer.outFeatures
        }
        self.layers = layers
        if weights.entries["normalizer.mean"] != nil || weights.entries["normalizer.scale"] != nil {
            let mean = try weights.float32("normalizer.mean", shape: [config.inputSize])
            let scale = try weights.float32("normalizer.scale", shape: [config.inputSize])
            if let z = scale.data.firstIndex(where: { $0 == 0 || !$0.isFinite }) {
                throw QuernError(.modelInvalid, "normalizer.scale[\(z)] is \(scale.data[z]); scales must be finite and non-zero")
            }
            normalizer = (mean, scale)
            expected.formUnion(["normalizer.mean", "normalizer.scale"])
        } else {
            normalizer = nil
        }
        let extra = Set(weights.entries.keys).subtracting(expected)
        if !extra.isEmpty {
            throw QuernError(.modelMismatch, "model.safetensors has tensors the config does not use: \(extra.sorted().prefix(5).joined(separator: ", "))")
        }
        if let names = config.featureNames, names.count != config.inputSize {
            throw QuernError(.modelInvalid, "feature_names has \(names.count) names for input_size \(config.inputSize)")
        }
        let outputs = config.layers.last!.outFeatures
        if let map = config.id2label {
            labels = try (0..<outputs).map { i in
                guard let l = map[String(i)] else { throw QuernError(.modelInvalid, "id2label has no entry for class \(i)") }
                return l
            }
        } else if config.problemType == "regression" {
            labels = []
        } else {
            labels = (0..<outputs).map(String.init)
        }
    }

    /// x: `[batch, inputSize]` → `[batch, outputs]`.
    public func forward(_ x: Tensor) -> Tensor {
        guard x.rows > 0 else { return Tensor(zeros: [0, config.layers.last!.outFeatures]) }
        var h = x
        if let (mean, scale) = normalizer {
            let n = inputSize
            for r in 0..<h.rows {
                for j in 0..<n { h.data[r * n + j] = (h.data[r * n + j] - mean.data[j]) / scale.data[j] }
            }
        }
        for layer in layers {
            var out = Tensor(zeros: [h.rows, layer.weight.n])
            h.data.withUnsafeBufferPointer { x in
                layer.bias.withUnsafeBufferPointer { b in
                    out.data.withUnsafeMutableBufferPointer { y in
                        SGEMM.linear(x.baseAddress!, m: h.rows, layer.weight, bias: b.baseAddress,
                                     activation: layer.activation, into: y.baseAddress!)
                    }
                }
            }
            h = out
        }
        return h
    }

    public func describe() -> JSONValue {
        var shapes: [JSONValue] = []
        var inFeatures = inputSize
        var params = 0
        for l in config.layers {
            shapes.append(["in": .int(Int64(inFeatures)), "out": .int(Int64(l.outFeatures)), "activation": .string(l.activation.rawValue)])
            params += l.outFeatures * inFeatures + l.outFeatures
            inFeatures = l.outFeatures
        }
        return ["family": "mlp", "input_size": .int(Int64(inputSize)), "layers": .array(shapes),
                "parameters": .int(Int64(params)), "dtype": "float32", "normalizer": .bool(normalizer != nil),
                "classes": .int(Int64(labels.count))]
    }
}
