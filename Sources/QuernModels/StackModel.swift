import QuernCore
import QuernKernels
import QuernNN

/// A model made of a `LayerSpec` list: the `mlp` and `cnn` families. Inference runs on
/// operators chosen at load (fp32, int8, sparse); `config.network` builds the QuernNN
/// network of the same layers for training, and `Sequential.state` exports one back.
public struct StackModel: TabularModel, LayerStackSource {
    /// The architecture and labels, as config.json gives them.
    public let config: StackConfig
    public let path: String
    public let weights: WeightsDigest?
    public var family: String { config.family }
    public var inputShape: [Int] { config.inputShape }
    public var labels: [String] { config.labels }
    public var featureNames: [String]? { config.featureNames }
    /// Per-input standardisation `(x − mean) / scale`, stored as `normalizer.*` tensors.
    public let normalizer: (mean: [Float], scale: [Float])?
    public let precision: LinearOperator.Precision
    /// Matrices stored as int8 (a quantized model), by tensor name.
    public let quantized: [String: QuantizedLayer]
    /// The fp32 tensors it was built from; nil for an int8 model.
    public let fp32: LoadedWeights?
    let compiled: [any InferenceLayer]
    /// Per-sample shapes before the first layer and after each.
    let shapes: [[Int]]

    public var inputSize: Int { config.inputSize }
    public var outputSize: Int { shapes.last!.reduce(1, *) }

    /// From tensors in memory (loaded, just trained, quantized or pruned). A batch norm
    /// right after an fp32 linear or conv2d without activation is folded into it (w·γ/σ
    /// per output channel, (b − μ)·γ/σ + β): one pass over the data fewer.
    public init(
        config: StackConfig, tensors: [String: Tensor], quantized: [String: QuantizedLayer] = [:],
        normalizer: ([Float], [Float])?, precision: LinearOperator.Precision = .fp32, path: String = "",
        weights: WeightsDigest? = nil
    ) throws {
        let inputSize = config.inputSize
        if let (_, scale) = normalizer, let z = scale.firstIndex(where: { $0 == 0 || !$0.isFinite }) {
            throw QuernError(.modelInvalid, "normalizer.scale[\(z)] is \(scale[z]); scales must be finite and non-zero")
        }
        if let names = config.featureNames, names.count != inputSize {
            throw QuernError(.modelInvalid, "feature_names has \(names.count) names for \(inputSize) inputs")
        }
        self.config = config
        self.path = path
        self.weights = weights
        self.normalizer = normalizer
        self.precision = quantized.isEmpty ? precision : .int8
        self.quantized = quantized
        fp32 = quantized.isEmpty ? LoadedWeights(tensors: tensors, normalizer: normalizer) : nil
        let layers = config.layers
        let outputs = try config.shapes()
        let shapes = [config.inputShape] + outputs
        self.shapes = shapes
        var tensors = tensors
        var folded: Set<Int> = []
        for i in layers.indices.dropFirst() {
            let previous = layers[i - 1]
            guard let target = previous.foldTarget,
                previous.matrices(input: shapes[i - 1]).allSatisfy({
                    quantized[LayerSpecs.tensorName(layer: i - 1, $0.name)] == nil
                })
            else { continue }
            let w = LayerSpecs.tensorName(layer: i - 1, target.weight),
                b = LayerSpecs.tensorName(layer: i - 1, target.bias)
            var weight = tensors[w]!, bias = tensors[b]!
            let own = LayerTensors(layer: i, all: tensors, quantized: quantized, precision: precision)
            if layers[i].fold(own, into: &weight, bias: &bias) {
                tensors[w] = weight
                tensors[b] = bias
                folded.insert(i)
            }
        }
        compiled = layers.enumerated().map { i, layer in
            folded.contains(i)
                ? IdentityLayer()
                : layer.compile(
                    LayerTensors(layer: i, all: tensors, quantized: quantized, precision: precision), input: shapes[i])
        }
        guard outputs.last!.count == 1 else {
            throw QuernError(
                .modelInvalid,
                "the last layer must give a flat output (add flatten and linear layers), got \(outputs.last!)")
        }
        if !config.labels.isEmpty && config.labels.count != outputs.last![0] {
            throw QuernError(
                .modelInvalid,
                "id2label has \(config.labels.count) classes but the last layer has \(outputs.last![0]) outputs")
        }
    }

    /// x: `[batch, inputSize]` → `[batch, outputs]`.
    public func forward(_ x: Tensor) -> Tensor { forward(x, observe: nil) }

    /// The forward pass; `observe(name, values)` sees the input of every weight matrix
    /// (static quantization calibrates on it).
    public func forward(_ x: Tensor, observe: ((String, [Float]) -> Void)?) -> Tensor {
        let batch = x.rows
        var h = x.data
        if let (mean, scale) = normalizer {
            let n = inputSize
            h.withUnsafeMutableBufferPointer { p in
                for r in 0..<batch { for j in 0..<n { p[r * n + j] = (p[r * n + j] - mean[j]) / scale[j] } }
            }
        }
        for (i, layer) in compiled.enumerated() {
            h = layer.forward(h, batch: batch, input: shapes[i], output: shapes[i + 1], observe: observe)
        }
        return Tensor(shape: [batch, outputSize], data: h)
    }

    public func describe() -> JSONValue {
        var layers: [JSONValue] = []
        var parameters = 0, zeros = 0
        for (i, spec) in config.layers.enumerated() {
            var o = spec.json.objectValue ?? JSONObject()
            o["output_shape"] = .array(shapes[i + 1].map { .int(Int64($0)) })
            let summary = compiled[i].summary
            if !summary.isEmpty {
                let count = summary.reduce(0) { $0 + $1.weights }, zero = summary.reduce(0) { $0 + $1.zeros }
                let bias = summary.reduce(0) { $0 + $1.bias }
                o["kernel"] =
                    summary.count == 1 ? .string(summary[0].kernel) : .array(summary.map { .string($0.kernel) })
                o["parameters"] = .int(Int64(count + bias))
                o["sparsity"] = .double(Double(zero) / Double(max(count, 1)))
                parameters += count + bias
                zeros += zero
            }
            layers.append(.object(o))
        }
        return [
            "family": .string(family), "input_shape": .array(inputShape.map { .int(Int64($0)) }),
            "layers": .array(layers),
            "parameters": .int(Int64(parameters)), "sparsity": .double(Double(zeros) / Double(max(parameters, 1))),
            "precision": .string(precision.rawValue), "normalizer": .bool(normalizer != nil),
            "classes": .int(Int64(labels.count))
        ]
    }
}

/// A layer-stack directory without weights: an architecture that `finetune` trains from
/// scratch. It can be trained, not run.
public struct StackArchitecture: LayerStackSource {
    public let config: StackConfig
    public let path: String
    public var family: String { config.family }
    public var weights: WeightsDigest? { nil }
    public var fp32: LoadedWeights? { nil }

    public func describe() -> JSONValue {
        [
            "family": .string(family), "input_shape": .array(config.inputShape.map { .int(Int64($0)) }),
            "layers": .array(config.layers.map(\.json)), "weights": .null, "classes": .int(Int64(config.labels.count))
        ]
    }
}

/// What the layer-stack families share: config.json decoded, then, with weights, the
/// tensors loaded strictly and compiled at the asked precision; without (when allowed),
/// the architecture alone.
enum LayerStackFamily {
    static func load(_ files: ModelFiles, config: StackConfig, options: ModelOptions) throws -> any Model {
        if !files.hasWeights && options.allowArchitectureOnly {
            return StackArchitecture(config: config, path: files.path)
        }
        let (file, digest) = try files.weights()
        let loaded = try config.loadTensors(file)
        return try StackModel(
            config: config, tensors: loaded.tensors, quantized: loaded.quantized, normalizer: loaded.normalizer,
            precision: config.quantization != nil ? .int8 : options.precision, path: files.path,
            weights: digest)
    }
}
