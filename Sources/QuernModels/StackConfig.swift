import QuernCore
import QuernKernels
import QuernNN

/// The config.json of a layer-stack family (`mlp`, `cnn`): the input, the layers, and the
/// Hugging Face fields for labels.
public struct StackConfig: Sendable {
    public var family: String
    /// Shape of one input sample: `[features]` or `[channels, height, width]`.
    public var inputShape: [Int]
    public var layers: [any LayerSpec]
    public var labels: [String]
    public var featureNames: [String]?
    public var problemType: String?
    /// Set on int8 models: how they were quantized (written by `quantize` jobs).
    public var quantization: JSONValue?

    public init(
        family: String, inputShape: [Int], layers: [any LayerSpec], labels: [String], featureNames: [String]? = nil,
        problemType: String? = nil, quantization: JSONValue? = nil
    ) {
        self.family = family
        self.inputShape = inputShape
        self.layers = layers
        self.labels = labels
        self.featureNames = featureNames
        self.problemType = problemType
        self.quantization = quantization
    }

    public var inputSize: Int { inputShape.reduce(1, *) }

    /// Decodes config.json: `input_size` (a number of features) or `input_shape` (a list).
    public static func decode(_ o: JSONObject, family: String) throws -> StackConfig {
        func bad(_ why: String) -> QuernError { QuernError(.modelInvalid, "config.json: \(why)") }
        var shape: [Int]
        if let size = o["input_size"]?.intValue {
            shape = [Int(size)]
        } else if let list = o["input_shape"]?.arrayValue {
            shape = list.compactMap { $0.intValue.map(Int.init) }
            guard shape.count == list.count else { throw bad("\"input_shape\" must be a list of integers") }
        } else {
            throw bad("needs \"input_size\" (features) or \"input_shape\" ([channels, height, width])")
        }
        guard shape.allSatisfy({ $0 > 0 }) else { throw bad("input sizes must be positive, got \(shape)") }
        guard shape.allSatisfy({ $0 <= StackLimits.size }) else {
            throw bad("input sizes may be at most \(StackLimits.size) each, got \(shape)")
        }
        guard let layerList = o["layers"]?.arrayValue, !layerList.isEmpty else {
            throw bad("\"layers\" must be a non-empty list")
        }
        let layers = try layerList.enumerated().map { try LayerSpecs.decode($1, at: $0) }
        var config = StackConfig(
            family: family, inputShape: shape, layers: layers, labels: [], problemType: o["problem_type"]?.stringValue,
            quantization: o["quantization"])
        let outputs = try config.shapes().last!.reduce(1, *)
        _ = try config.parameterCount()
        if config.problemType != "regression" && outputs > StackLimits.classes {
            throw bad(
                "the last layer has \(outputs) outputs; a classifier may have at most \(StackLimits.classes) classes")
        }
        if let map = o["id2label"]?.objectValue {
            config.labels = try (0..<outputs).map { i in
                guard let l = map[String(i)]?.stringValue else { throw bad("id2label has no entry for class \(i)") }
                return l
            }
        } else if config.problemType != "regression" {
            config.labels = (0..<outputs).map(String.init)
        }
        config.featureNames = try o["feature_names"].map { v -> [String] in
            guard let a = v.arrayValue?.compactMap(\.stringValue), a.count == v.arrayValue?.count else {
                throw bad("\"feature_names\" must be a list of strings")
            }
            return a
        }
        return config
    }

    /// config.json as published with a trained, quantized or pruned model.
    public var json: JSONValue {
        var o = JSONObject()
        o["model_type"] = .string(family)
        o["architectures"] = [.string("Quern" + family.uppercased())]
        if inputShape.count == 1 {
            o["input_size"] = .int(Int64(inputShape[0]))
        } else {
            o["input_shape"] = .array(inputShape.map { .int(Int64($0)) })
        }
        o["layers"] = .array(layers.map(\.json))
        if !labels.isEmpty {
            var map = JSONObject()
            for (i, l) in labels.enumerated() { map[String(i)] = .string(l) }
            o["id2label"] = .object(map)
            o["num_labels"] = .int(Int64(labels.count))
        }
        if let featureNames { o["feature_names"] = .array(featureNames.map { .string($0) }) }
        o["problem_type"] = .string(problemType ?? (labels.isEmpty ? "regression" : "single_label_classification"))
        if let quantization { o["quantization"] = quantization }
        o["torch_dtype"] = "float32"
        return .object(o)
    }

    /// Per-sample shapes after each layer; an error names the layer that does not fit, or
    /// one whose output is larger than `StackLimits.values` (checked without overflow, so
    /// absurd sizes in a config are an error, never a trap).
    public func shapes() throws -> [[Int]] {
        var out: [[Int]] = []
        var shape = inputShape
        guard StackLimits.count(shape) != nil else {
            throw QuernError(
                .modelInvalid, "config.json: an input of \(shape) holds more than \(StackLimits.values) values")
        }
        for (i, layer) in layers.enumerated() {
            do {
                shape = try layer.outputShape(shape)
            } catch let e as ShapeError {
                throw LayerEntry.invalid(e.why, at: i)
            }
            guard shape.allSatisfy({ $0 > 0 }), StackLimits.count(shape) != nil else {
                throw LayerEntry.invalid(
                    "gives \(shape) per sample; a layer may give at most \(StackLimits.values) values", at: i)
            }
            out.append(shape)
        }
        return out
    }

    /// Weights the layers imply, at most `StackLimits.parameters`: checked before any
    /// tensor is read or any network built.
    public func parameterCount() throws -> Int {
        var total = 0
        for (name, shape) in try expectedTensors() {
            guard let n = StackLimits.count(shape, limit: StackLimits.parameters) else {
                throw QuernError(
                    .modelInvalid,
                    "config.json: \(name) would be \(shape), more weights than a model may have (\(StackLimits.parameters))"
                )
            }
            let (sum, overflow) = total.addingReportingOverflow(n)
            guard !overflow, sum <= StackLimits.parameters else {
                throw QuernError(
                    .modelInvalid, "config.json: the layers imply more than \(StackLimits.parameters) weights")
            }
            total = sum
        }
        return total
    }

    /// Per-sample shapes before each layer.
    func inputShapes() throws -> [[Int]] { [inputShape] + (try shapes().dropLast()) }

    /// Every tensor the layers imply, with its stored shape (normalizer excluded).
    public func expectedTensors() throws -> [(name: String, shape: [Int])] {
        try zip(layers, inputShapes()).enumerated().flatMap { i, pair in
            pair.0.tensors(input: pair.1).map { (LayerSpecs.tensorName(layer: i, $0.name), $0.shape) }
        }
    }

    /// Every weight matrix of the stack, in layer order: what quantize and prune work on.
    public func matrices() throws -> [StackMatrix] {
        try zip(layers, inputShapes()).enumerated().flatMap { i, pair in
            pair.0.matrices(input: pair.1).map { StackMatrix(layer: i, matrix: $0) }
        }
    }

    // MARK: weights

    /// The tensors the layers imply, checked strictly (`StrictWeights`): fp32 everywhere,
    /// or, for a model whose config has a `quantization` block, I8 weight matrices with
    /// per-channel scales (and, for static quantization, each matrix's calibrated input
    /// range). An input normalizer (`normalizer.mean` / `.scale`) is optional.
    public func loadTensors(_ file: SafetensorsFile) throws -> LoadedWeights {
        guard !layers.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw QuernError(.modelInvalid, "a \(family) needs a positive input shape and at least one layer")
        }
        var weights = try StrictWeights(file)
        var out = LoadedWeights()
        let matrices =
            quantization == nil ? [:] : Dictionary(uniqueKeysWithValues: try self.matrices().map { ($0.name, $0) })
        for (name, shape) in try expectedTensors() {
            guard let m = matrices[name] else {
                out.tensors[name] = try weights.float32(name, shape: shape)
                continue
            }
            let values = try weights.int8(name, shape: shape)
            let scales = try weights.float32(m.scaleName, shape: [shape[0]])
            var range: QGEMM.InputRange?
            if weights.has(m.inputScaleName) {
                let s = try weights.float32(m.inputScaleName, shape: [1]).data[0]
                let z = try weights.float32(m.inputZeroPointName, shape: [1]).data[0]
                guard s > 0, s.isFinite, z >= 0, z <= 255 else {
                    throw QuernError(
                        .modelInvalid, "layers.\(m.layer): input_scale \(s) / input_zero_point \(z) are not a u8 range")
                }
                range = QGEMM.InputRange(scale: s, zeroPoint: Int32(z))
            }
            let n = shape[0]
            out.quantized[name] = QuantizedLayer(
                weights: QuantizedWeights(values: values, scales: scales.data, n: n, k: values.count / n),
                input: range, shape: shape)
        }
        if weights.has("normalizer.mean") || weights.has("normalizer.scale") {
            let mean = try weights.float32("normalizer.mean", shape: [inputSize])
            let scale = try weights.float32("normalizer.scale", shape: [inputSize])
            out.normalizer = (mean.data, scale.data)
        }
        try weights.finish()
        return out
    }

    /// config.json + model.safetensors (with the normalizer as `normalizer.*` tensors) in
    /// an existing directory, each written atomically.
    public func write(into dir: String, tensors: [String: ([Int], TensorData)], normalizer: ([Float], [Float])?) throws
    {
        var out = tensors
        if let (mean, scale) = normalizer {
            out["normalizer.mean"] = ([mean.count], .f32(mean))
            out["normalizer.scale"] = ([scale.count], .f32(scale))
        }
        try Sys.writeFileAtomically(Path.join(dir, "config.json"), JSONWriter.pretty(json), durability: .content)
        try Sys.writeFileAtomically(
            Path.join(dir, ModelFiles.weightsName), Safetensors.encode(typed: out), durability: .content)
    }

    // MARK: training

    /// A QuernNN network of these layers, with the given weights or, when `tensors` is
    /// nil, PyTorch-default initial weights drawn from `seed`.
    public func network(tensors: [String: Tensor]?, seed: UInt64) throws -> Sequential {
        var random = SeededRandom(seed: seed)
        let inputs = try inputShapes()
        return Sequential(
            layers.enumerated().map { i, layer in
                let t = tensors.map { LayerTensors(layer: i, all: $0, quantized: [:], precision: .fp32) }
                return layer.trainable(input: inputs[i], name: "layers.\(i)", tensors: t, random: &random)
            })
    }
}

/// Bounds on what a layer-stack config may ask for, so that sizes read from a file are
/// checked before anything is allocated by them.
public enum StackLimits {
    /// Any one size in a config (features, channels, kernel, stride, padding).
    public static let size = 1 << 24
    /// Values per sample after any layer.
    public static let values = 1 << 31
    /// Weights in the whole model (8 GB as fp32).
    public static let parameters = 1 << 31
    /// Classes of a classifier.
    public static let classes = 1 << 20

    /// The product of `shape`, or nil when it overflows or passes `limit`.
    public static func count(_ shape: [Int], limit: Int = values) -> Int? {
        var n = 1
        for d in shape {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= limit else { return nil }
            n = p
        }
        return n
    }
}

/// One weight matrix of a stack, with its stored names.
public struct StackMatrix: Sendable {
    public let layer: Int
    public let matrix: WeightMatrix
    public var name: String { LayerSpecs.tensorName(layer: layer, matrix.name) }
    public var scaleName: String { LayerSpecs.tensorName(layer: layer, matrix.scaleName) }
    public var inputScaleName: String { LayerSpecs.tensorName(layer: layer, matrix.inputScaleName) }
    public var inputZeroPointName: String { LayerSpecs.tensorName(layer: layer, matrix.inputZeroPointName) }
    /// `[out, in…]` seen as the `[out, in·…]` matrix it multiplies by.
    public var rows: Int { matrix.shape[0] }
    public var columns: Int { matrix.shape.dropFirst().reduce(1, *) }
}

/// What `loadTensors` read: fp32 tensors, int8 matrices by tensor name, the input
/// normalizer.
public struct LoadedWeights: Sendable {
    public var tensors: [String: Tensor] = [:]
    public var quantized: [String: QuantizedLayer] = [:]
    public var normalizer: ([Float], [Float])?
    public init(tensors: [String: Tensor] = [:], normalizer: ([Float], [Float])? = nil) {
        self.tensors = tensors
        self.normalizer = normalizer
    }
}

/// An int8 matrix: per-channel weights, the stored tensor shape, and a calibrated input
/// range when quantized statically (nil: activations quantized per row at run time).
public struct QuantizedLayer: Sendable {
    public let weights: QuantizedWeights
    public let input: QGEMM.InputRange?
    public let shape: [Int]

    public init(weights: QuantizedWeights, input: QGEMM.InputRange?, shape: [Int]) {
        self.weights = weights
        self.input = input
        self.shape = shape
    }
}
