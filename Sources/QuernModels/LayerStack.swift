import Foundation
import QuernCore
import QuernKernels
import QuernNN

/// One entry of the `layers` list that `mlp` and `cnn` configs share. Weights of layer i
/// are `layers.{i}.weight` / `.bias` (batch norm adds `.running_mean` / `.running_var`),
/// PyTorch's `nn.Sequential` names.
public enum LayerSpec: Sendable, Equatable {
    case linear(outFeatures: Int, activation: Activation)
    case conv2d(outChannels: Int, kernel: Int, stride: Int, padding: Int, activation: Activation)
    case pool(Pool2D.Kind, size: Int, stride: Int)
    case flatten
    case dropout(Float)
    case batchNorm(eps: Float)
    case activation(Activation)

    /// Decodes `{"type": "conv2d", "out_channels": 8, "kernel_size": 3, ...}`. An entry
    /// without "type" is a linear layer (the original `mlp` config form).
    static func decode(_ value: JSONValue, at index: Int) throws -> LayerSpec {
        func bad(_ why: String) -> QuernError { QuernError(.modelInvalid, "config.json layers[\(index)]: \(why)") }
        guard let o = value.objectValue else { throw bad("must be an object") }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            guard let v = o[key] else {
                if let d { return d }
                throw bad("\"\(key)\" is missing")
            }
            guard let i = v.intValue, i >= 0 else { throw bad("\"\(key)\" must be a non-negative integer") }
            return Int(i)
        }
        func activation() throws -> Activation {
            guard let raw = o["activation"] else { return .none }
            guard let s = raw.stringValue, let a = Activation(rawValue: s) else {
                throw bad("\"activation\" must be one of \(Activation.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return a
        }
        let type = o["type"]?.stringValue ?? "linear"
        switch type {
        case "linear":
            let out = try int("out_features")
            guard out > 0 else { throw bad("\"out_features\" must be positive") }
            return .linear(outFeatures: out, activation: try activation())
        case "conv2d":
            let out = try int("out_channels"), k = try int("kernel_size"), s = try int("stride", default: 1)
            guard out > 0, k > 0, s > 0 else { throw bad("out_channels, kernel_size and stride must be positive") }
            return .conv2d(outChannels: out, kernel: k, stride: s, padding: try int("padding", default: 0), activation: try activation())
        case "maxpool2d", "avgpool2d":
            let k = try int("kernel_size"), s = try int("stride", default: k)
            guard k > 0, s > 0 else { throw bad("kernel_size and stride must be positive") }
            return .pool(type == "maxpool2d" ? .max : .average, size: k, stride: s)
        case "flatten": return .flatten
        case "dropout":
            let p = o["p"]?.doubleValue ?? 0.5
            guard p >= 0, p < 1 else { throw bad("\"p\" must be in [0, 1)") }
            return .dropout(Float(p))
        case "batchnorm": return .batchNorm(eps: Float(o["eps"]?.doubleValue ?? 1e-5))
        case "activation": return .activation(try activation())
        default:
            throw bad("unknown layer type \"\(type)\"; known: linear, conv2d, maxpool2d, avgpool2d, flatten, dropout, batchnorm, activation")
        }
    }

    /// Linear and conv2d: the layers with a weight matrix (quantized and pruned).
    public var hasWeightMatrix: Bool {
        switch self {
        case .linear, .conv2d: true
        default: false
        }
    }

    var json: JSONValue {
        switch self {
        case .linear(let out, let a): ["type": "linear", "out_features": .int(Int64(out)), "activation": .string(a.rawValue)]
        case .conv2d(let out, let k, let s, let p, let a):
            ["type": "conv2d", "out_channels": .int(Int64(out)), "kernel_size": .int(Int64(k)), "stride": .int(Int64(s)),
             "padding": .int(Int64(p)), "activation": .string(a.rawValue)]
        case .pool(let kind, let size, let stride):
            ["type": .string(kind == .max ? "maxpool2d" : "avgpool2d"), "kernel_size": .int(Int64(size)), "stride": .int(Int64(stride))]
        case .flatten: ["type": "flatten"]
        case .dropout(let p): ["type": "dropout", "p": .double(Double(p))]
        case .batchNorm(let eps): ["type": "batchnorm", "eps": .double(Double(eps))]
        case .activation(let a): ["type": "activation", "activation": .string(a.rawValue)]
        }
    }

    /// The per-sample shape after this layer, or an error naming the mismatch.
    func outputShape(_ input: [Int], at index: Int) throws -> [Int] {
        func bad(_ why: String) -> QuernError { QuernError(.modelInvalid, "config.json layers[\(index)]: \(why)") }
        switch self {
        case .linear(let out, _):
            guard input.count == 1 else { throw bad("a linear layer needs a flat input, got \(input); add a flatten layer") }
            return [out]
        case .conv2d(let out, let k, let s, let p, _):
            guard input.count == 3 else { throw bad("conv2d needs [channels, height, width] input, got \(input)") }
            let h = (input[1] + 2 * p - k) / s + 1, w = (input[2] + 2 * p - k) / s + 1
            guard input[1] + 2 * p >= k, input[2] + 2 * p >= k, h > 0, w > 0 else {
                throw bad("a \(k)x\(k) kernel does not fit a \(input[1])x\(input[2]) input")
            }
            return [out, h, w]
        case .pool(_, let size, let stride):
            guard input.count == 3, input[1] >= size, input[2] >= size else { throw bad("a \(size)x\(size) pool does not fit \(input)") }
            return [input[0], (input[1] - size) / stride + 1, (input[2] - size) / stride + 1]
        case .flatten: return [input.reduce(1, *)]
        case .dropout, .batchNorm, .activation: return input
        }
    }
}

/// A model made of a `LayerSpec` list: the `mlp` and `cnn` families. Inference runs on
/// operators chosen at load (fp32, int8, sparse); training builds a QuernNN network of
/// the same layers; `tensors(of:)` exports one back.
public struct StackModel: TabularModel {
    /// The architecture and labels, as config.json gives them.
    public let config: StackConfig
    public var family: String { config.family }
    /// Shape of one input sample: `[features]` or `[channels, height, width]`.
    public var inputShape: [Int] { config.inputShape }
    public var specs: [LayerSpec] { config.specs }
    public var labels: [String] { config.labels }
    public var featureNames: [String]? { config.featureNames }
    public var problemType: String? { config.problemType }
    /// Per-input standardisation `(x − mean) / scale`, stored as `normalizer.*` tensors.
    public let normalizer: (mean: [Float], scale: [Float])?
    public let precision: LinearOperator.Precision
    let compiled: [Compiled]
    /// Layers stored as int8 (a quantized model), by index.
    public let quantized: [Int: QuantizedLayer]
    /// Per layer: (weights, of which zero), from the fp32 tensors, for `quern inspect`.
    let weightCounts: [(Int, Int)]

    enum Compiled: Sendable {
        case linear(LinearOperator, bias: [Float], activation: Activation)
        case conv(LinearOperator, bias: [Float], kernel: Int, stride: Int, padding: Int, activation: Activation)
        case pool(Pool2D.Kind, size: Int, stride: Int)
        case channelAffine(scale: [Float], shift: [Float])
        case activation(Activation)
        case identity
    }

    public var inputSize: Int { inputShape.reduce(1, *) }
    public var outputSize: Int { (try? Self.shapes(inputShape, specs).last?.reduce(1, *)) ?? 0 }

    /// Per-sample shapes after each layer.
    static func shapes(_ input: [Int], _ specs: [LayerSpec]) throws -> [[Int]] {
        var out: [[Int]] = []
        var shape = input
        for (i, s) in specs.enumerated() {
            shape = try s.outputShape(shape, at: i)
            out.append(shape)
        }
        return out
    }

    /// Names and shapes of every tensor the specs imply (normalizer excluded).
    static func expectedTensors(_ input: [Int], _ specs: [LayerSpec]) throws -> [(String, [Int])] {
        var names: [(String, [Int])] = []
        var shape = input
        for (i, s) in specs.enumerated() {
            switch s {
            case .linear(let out, _):
                names += [("layers.\(i).weight", [out, shape[0]]), ("layers.\(i).bias", [out])]
            case .conv2d(let out, let k, _, _, _):
                names += [("layers.\(i).weight", [out, shape[0], k, k]), ("layers.\(i).bias", [out])]
            case .batchNorm:
                let c = shape[0]
                names += [("layers.\(i).weight", [c]), ("layers.\(i).bias", [c]), ("layers.\(i).running_mean", [c]),
                          ("layers.\(i).running_var", [c])]
            default: break
            }
            shape = try s.outputShape(shape, at: i)
        }
        return names
    }

    /// Strict loading: every tensor the specs imply must exist with its shape (the
    /// error names the tensor and both shapes), and the file may hold nothing else.
    public init(config: StackConfig, weights: SafetensorsFile, precision: LinearOperator.Precision = .fp32) throws {
        let loaded = try Self.loadTensors(weights, inputShape: config.inputShape, specs: config.specs, family: config.family,
                                          quantized: config.quantization != nil)
        try self.init(config: config, tensors: loaded.tensors, quantized: loaded.quantized, normalizer: loaded.normalizer,
                      precision: precision)
    }

    /// The tensors the specs imply, checked strictly: fp32 everywhere, or, for a model
    /// whose config has a `quantization` block, I8 weights with per-channel
    /// `weight_scale` (and, for static quantization, each layer's calibrated
    /// `input_scale` / `input_zero_point`).
    public static func loadTensors(_ weights: SafetensorsFile, inputShape: [Int], specs: [LayerSpec], family: String,
                                   quantized isQuantized: Bool = false) throws -> LoadedWeights {
        guard !specs.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw QuernError(.modelInvalid, "a \(family) needs a positive input shape and at least one layer")
        }
        var out = LoadedWeights()
        var expected: Set<String> = []
        for (name, shape) in try Self.expectedTensors(inputShape, specs) {
            expected.insert(name)
            let layer = Int(name.split(separator: ".")[1])!
            if isQuantized && name.hasSuffix(".weight") && specs[layer].hasWeightMatrix {
                let (_, values) = try weights.int8(name, shape: shape)
                let scaleName = "layers.\(layer).weight_scale"
                let scales = try weights.float32(scaleName, shape: [shape[0]])
                expected.insert(scaleName)
                var range: QGEMM.InputRange?
                if weights.entries["layers.\(layer).input_scale"] != nil {
                    let s = try weights.float32("layers.\(layer).input_scale", shape: [1]).data[0]
                    let z = try weights.float32("layers.\(layer).input_zero_point", shape: [1]).data[0]
                    guard s > 0, s.isFinite, z >= 0, z <= 255 else {
                        throw QuernError(.modelInvalid, "layers.\(layer): input_scale \(s) / input_zero_point \(z) are not a u8 range")
                    }
                    range = QGEMM.InputRange(scale: s, zeroPoint: Int32(z))
                    expected.formUnion(["layers.\(layer).input_scale", "layers.\(layer).input_zero_point"])
                }
                let n = shape[0]
                out.quantized[layer] = QuantizedLayer(weights: QuantizedWeights(values: values, scales: scales.data, n: n,
                                                                                k: values.count / n), input: range, shape: shape)
            } else {
                out.tensors[name] = try weights.float32(name, shape: shape)
            }
        }
        if weights.entries["normalizer.mean"] != nil || weights.entries["normalizer.scale"] != nil {
            let n = inputShape.reduce(1, *)
            let mean = try weights.float32("normalizer.mean", shape: [n]), scale = try weights.float32("normalizer.scale", shape: [n])
            out.normalizer = (mean.data, scale.data)
            expected.formUnion(["normalizer.mean", "normalizer.scale"])
        }
        let extra = Set(weights.entries.keys).subtracting(expected)
        if !extra.isEmpty {
            throw QuernError(.modelMismatch, "model.safetensors has tensors the config does not use: \(extra.sorted().prefix(5).joined(separator: ", "))")
        }
        return out
    }

    /// From tensors in memory (a network just trained, quantized or pruned).
    public init(config: StackConfig, tensors: [String: Tensor], quantized: [Int: QuantizedLayer] = [:],
                normalizer: ([Float], [Float])?, precision: LinearOperator.Precision = .fp32) throws {
        let (inputShape, specs, labels) = (config.inputShape, config.specs, config.labels)
        if let (_, scale) = normalizer, let z = scale.firstIndex(where: { $0 == 0 || !$0.isFinite }) {
            throw QuernError(.modelInvalid, "normalizer.scale[\(z)] is \(scale[z]); scales must be finite and non-zero")
        }
        if let names = config.featureNames, names.count != inputShape.reduce(1, *) {
            throw QuernError(.modelInvalid, "feature_names has \(names.count) names for \(inputShape.reduce(1, *)) inputs")
        }
        self.config = config
        self.normalizer = normalizer
        self.precision = quantized.isEmpty ? precision : .int8
        self.quantized = quantized
        // A batch norm right after an fp32 linear or conv2d without activation is folded
        // into it (w·γ/σ per output channel, (b − μ)·γ/σ + β): one pass over the data fewer.
        var tensors = tensors
        var folded: Set<Int> = []
        for (i, s) in specs.enumerated() where i > 0 {
            guard case .batchNorm(let eps) = s, quantized[i - 1] == nil else { continue }
            switch specs[i - 1] {
            case .linear(_, .none), .conv2d(_, _, _, _, .none): break
            default: continue
            }
            var w = tensors["layers.\(i - 1).weight"]!, b = tensors["layers.\(i - 1).bias"]!
            foldBatchNorm(weight: &w.data, bias: &b.data, gamma: tensors["layers.\(i).weight"]!.data,
                          beta: tensors["layers.\(i).bias"]!.data, mean: tensors["layers.\(i).running_mean"]!.data,
                          variance: tensors["layers.\(i).running_var"]!.data, eps: eps)
            tensors["layers.\(i - 1).weight"] = w
            tensors["layers.\(i - 1).bias"] = b
            folded.insert(i)
        }
        var compiled: [Compiled] = []
        var counts: [(Int, Int)] = []
        for (i, s) in specs.enumerated() {
            func t(_ suffix: String) -> Tensor { tensors["layers.\(i).\(suffix)"]! }
            if folded.contains(i) {
                compiled.append(.identity)
                counts.append((0, 0))
                continue
            }
            /// The layer's weight matrix `[out, in·k·k]` as an operator.
            func op(_ out: Int) -> LinearOperator {
                if let q = quantized[i] {
                    if let range = q.input { return .int8Static(q.weights, range) }
                    return .choose(q.weights)
                }
                let w = t("weight")
                return .choose(Tensor(shape: [out, w.count / out], data: w.data), precision: precision)
            }
            if let q = quantized[i] {
                counts.append((q.weights.values.count, q.weights.values.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }))
            } else if case .linear = s, let w = tensors["layers.\(i).weight"] {
                counts.append((w.count, w.data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }))
            } else if case .conv2d = s, let w = tensors["layers.\(i).weight"] {
                counts.append((w.count, w.data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }))
            } else {
                counts.append((0, 0))
            }
            switch s {
            case .linear(let out, let a):
                compiled.append(.linear(op(out), bias: t("bias").data, activation: a))
            case .conv2d(let out, let k, let stride, let padding, let a):
                compiled.append(.conv(op(out), bias: t("bias").data, kernel: k, stride: stride, padding: padding, activation: a))
            case .pool(let kind, let size, let stride): compiled.append(.pool(kind, size: size, stride: stride))
            case .batchNorm(let eps):
                let gamma = t("weight").data, beta = t("bias").data, mean = t("running_mean").data, variance = t("running_var").data
                let scale = (0..<gamma.count).map { gamma[$0] / (variance[$0] + eps).squareRoot() }
                compiled.append(.channelAffine(scale: scale, shift: (0..<gamma.count).map { beta[$0] - mean[$0] * scale[$0] }))
            case .activation(let a): compiled.append(.activation(a))
            case .flatten, .dropout: compiled.append(.identity)
            }
        }
        self.compiled = compiled
        weightCounts = counts
        let outputs = try Self.shapes(inputShape, specs).last!
        guard outputs.count == 1 else {
            throw QuernError(.modelInvalid, "the last layer must give a flat output (add flatten and linear layers), got \(outputs)")
        }
        if !labels.isEmpty && labels.count != outputs[0] {
            throw QuernError(.modelInvalid, "id2label has \(labels.count) classes but the last layer has \(outputs[0]) outputs")
        }
    }

    /// x: `[batch, inputSize]` → `[batch, outputs]`.
    public func forward(_ x: Tensor) -> Tensor { forward(x, observe: nil) }

    /// The forward pass; `observe(i, values)` sees the input of every linear and conv2d
    /// layer i (static quantization calibrates on it).
    public func forward(_ x: Tensor, observe: ((Int, [Float]) -> Void)?) -> Tensor {
        let batch = x.rows
        var h = x.data
        var shape = inputShape
        if let (mean, scale) = normalizer {
            let n = inputSize
            h.withUnsafeMutableBufferPointer { p in
                for r in 0..<batch { for j in 0..<n { p[r * n + j] = (p[r * n + j] - mean[j]) / scale[j] } }
            }
        }
        for (index, (layer, spec)) in zip(compiled, specs).enumerated() {
            let next = (try? spec.outputShape(shape, at: 0)) ?? shape
            if let observe, spec.hasWeightMatrix { observe(index, h) }
            switch layer {
            case .linear(let op, let bias, let a):
                h = Self.apply(op, h, rows: batch, bias: bias, activation: a)
            case .conv(let op, let bias, let k, let stride, let padding, let a):
                let columns = ConvLayout.im2col(h, batch: batch, channels: shape[0], height: shape[1], width: shape[2],
                                                kernelH: k, kernelW: k, stride: stride, padding: padding)
                let positions = next[1] * next[2]
                let flat = Self.apply(op, columns, rows: batch * positions, bias: bias, activation: a)
                h = ConvLayout.transposeImages(flat, batch: batch, rows: positions, cols: next[0])
            case .pool(let kind, let size, let stride):
                h = Pool2D.forward(Tensor(shape: [batch] + shape, data: h), kind: kind, size: size, stride: stride).data
            case .channelAffine(let scale, let shift):
                let inner = shape.dropFirst().reduce(1, *), channels = shape[0]
                for b in 0..<batch {
                    for c in 0..<channels {
                        for i in 0..<inner { let at = (b * channels + c) * inner + i; h[at] = h[at] * scale[c] + shift[c] }
                    }
                }
            case .activation(let a): h = h.map { a.apply($0) }
            case .identity: break
            }
            shape = next
        }
        return Tensor(shape: [batch, shape.reduce(1, *)], data: h)
    }

    static func apply(_ op: LinearOperator, _ x: [Float], rows: Int, bias: [Float], activation: Activation) -> [Float] {
        var y = [Float](repeating: 0, count: rows * op.outFeatures)
        op.apply(x, m: rows, bias: bias, activation: activation, into: &y)
        return y
    }

    public func describe() -> JSONValue {
        var layers: [JSONValue] = []
        var parameters = 0, zeros = 0
        let shapes = (try? Self.shapes(inputShape, specs)) ?? []
        for (i, s) in specs.enumerated() {
            var o = s.json.objectValue ?? JSONObject()
            o["output_shape"] = .array((i < shapes.count ? shapes[i] : []).map { .int(Int64($0)) })
            switch compiled[i] {
            case .linear(let op, let bias, _), .conv(let op, let bias, _, _, _, _):
                o["kernel"] = .string(op.kind)
                let (count, zero) = weightCounts[i]
                o["parameters"] = .int(Int64(count + bias.count))
                o["sparsity"] = .double(Double(zero) / Double(max(count, 1)))
                parameters += count + bias.count
                zeros += zero
            default: break
            }
            layers.append(.object(o))
        }
        return ["family": .string(family), "input_shape": .array(inputShape.map { .int(Int64($0)) }), "layers": .array(layers),
                "parameters": .int(Int64(parameters)), "sparsity": .double(Double(zeros) / Double(max(parameters, 1))),
                "precision": .string(precision.rawValue), "normalizer": .bool(normalizer != nil),
                "classes": .int(Int64(labels.count))]
    }
}

// MARK: training

extension StackModel {
    /// A QuernNN network of these layers, one per spec, with the given weights or, when
    /// `tensors` is nil, PyTorch-default initial weights drawn from `seed`.
    public static func network(inputShape: [Int], specs: [LayerSpec], tensors: [String: Tensor]?, seed: UInt64) throws -> Sequential {
        var random = SeededRandom(seed: seed)
        var layers: [any Layer] = []
        var shape = inputShape
        for (i, s) in specs.enumerated() {
            func param(_ suffix: String) -> Parameter? {
                tensors?["layers.\(i).\(suffix)"].map { Parameter("layers.\(i).\(suffix)", $0) }
            }
            switch s {
            case .linear(let out, let a):
                if let w = param("weight") {
                    layers.append(Linear(weight: w, bias: param("bias"), activation: a))
                } else {
                    layers.append(Linear(shape[0], out, activation: a, random: &random, name: "layers.\(i)"))
                }
            case .conv2d(let out, let k, let stride, let padding, let a):
                if let w = param("weight") {
                    layers.append(Conv2d(weight: w, bias: param("bias"), stride: stride, padding: padding, activation: a))
                } else {
                    layers.append(Conv2d(shape[0], out, kernel: k, stride: stride, padding: padding, activation: a,
                                         random: &random, name: "layers.\(i)"))
                }
            case .pool(let kind, let size, let stride): layers.append(Pooling(kind, size: size, stride: stride))
            case .flatten: layers.append(Flatten())
            case .dropout(let p): layers.append(Dropout(p))
            case .activation(let a): layers.append(ActivationLayer(a))
            case .batchNorm(let eps):
                let bn = BatchNorm(shape[0], eps: eps, name: "layers.\(i)")
                if let t = tensors {
                    bn.gamma.value = t["layers.\(i).weight"] ?? bn.gamma.value
                    bn.beta.value = t["layers.\(i).bias"] ?? bn.beta.value
                    if let m = t["layers.\(i).running_mean"] { bn.statistics.mean = m.data }
                    if let v = t["layers.\(i).running_var"] { bn.statistics.variance = v.data }
                }
                layers.append(bn)
            }
            shape = try s.outputShape(shape, at: i)
        }
        return Sequential(layers)
    }

    /// Sets a network's weights (and batch-norm statistics) from tensors named as
    /// `tensors(of:)` names them.
    public static func assign(_ tensors: [String: Tensor], to net: Sequential) {
        for (i, layer) in net.layers.enumerated() {
            func value(_ suffix: String) -> Tensor? { tensors["layers.\(i).\(suffix)"] }
            switch layer {
            case let l as Linear:
                if let w = value("weight") { l.weight.value = w }
                if let b = l.bias, let v = value("bias") { b.value = v }
            case let c as Conv2d:
                if let w = value("weight") { c.weight.value = w }
                if let b = c.bias, let v = value("bias") { b.value = v }
            case let bn as BatchNorm:
                if let g = value("weight") { bn.gamma.value = g }
                if let b = value("bias") { bn.beta.value = b }
                if let m = value("running_mean") { bn.statistics.mean = m.data }
                if let v = value("running_var") { bn.statistics.variance = v.data }
            default: break
            }
        }
    }

    /// The tensors of a network built by `network`, named as model.safetensors names them.
    public static func tensors(of net: Sequential) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, layer) in net.layers.enumerated() {
            switch layer {
            case let l as Linear:
                out["layers.\(i).weight"] = l.weight.value
                if let b = l.bias { out["layers.\(i).bias"] = b.value }
            case let c as Conv2d:
                out["layers.\(i).weight"] = c.weight.value
                if let b = c.bias { out["layers.\(i).bias"] = b.value }
            case let bn as BatchNorm:
                out["layers.\(i).weight"] = bn.gamma.value
                out["layers.\(i).bias"] = bn.beta.value
                out["layers.\(i).running_mean"] = Tensor(shape: [bn.statistics.mean.count], data: bn.statistics.mean)
                out["layers.\(i).running_var"] = Tensor(shape: [bn.statistics.variance.count], data: bn.statistics.variance)
            default: break
            }
        }
        return out
    }
}

/// What `loadTensors` read: fp32 tensors, int8 layers, the input normalizer.
public struct LoadedWeights {
    public var tensors: [String: Tensor] = [:]
    public var quantized: [Int: QuantizedLayer] = [:]
    public var normalizer: ([Float], [Float])?
    public init() {}
}

/// An int8 layer: per-channel weights, the stored tensor shape, and a calibrated input
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

/// The config.json of a layer-stack family (`mlp`, `cnn`): the input, the layers, and the
/// Hugging Face fields for labels.
public struct StackConfig: Sendable {
    public var family: String
    public var inputShape: [Int]
    public var specs: [LayerSpec]
    public var labels: [String]
    public var featureNames: [String]?
    public var problemType: String?
    /// Set on int8 models: how they were quantized (written by `quantize` jobs).
    public var quantization: JSONValue?

    public init(family: String, inputShape: [Int], specs: [LayerSpec], labels: [String], featureNames: [String]? = nil,
                problemType: String? = nil, quantization: JSONValue? = nil) {
        self.family = family
        self.inputShape = inputShape
        self.specs = specs
        self.labels = labels
        self.featureNames = featureNames
        self.problemType = problemType
        self.quantization = quantization
    }

    /// Decodes config.json; `inputKey` is "input_size" (a number) or "input_shape" (a list).
    public static func decode(_ data: [UInt8], family: String) throws -> StackConfig {
        func bad(_ why: String) -> QuernError { QuernError(.modelInvalid, "config.json: \(why)") }
        let root: JSONValue
        do { root = try JSONParser.parse(data) } catch { throw bad("not valid JSON (\(error))") }
        guard let o = root.objectValue else { throw bad("must be a JSON object") }
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
        guard let layerList = o["layers"]?.arrayValue, !layerList.isEmpty else { throw bad("\"layers\" must be a non-empty list") }
        let specs = try layerList.enumerated().map { try LayerSpec.decode($1, at: $0) }
        let outputs = try StackModel.shapes(shape, specs).last!.reduce(1, *)
        let problem = o["problem_type"]?.stringValue
        var labels: [String] = []
        if let map = o["id2label"]?.objectValue {
            labels = try (0..<outputs).map { i in
                guard let l = map[String(i)]?.stringValue else { throw bad("id2label has no entry for class \(i)") }
                return l
            }
        } else if problem != "regression" {
            labels = (0..<outputs).map(String.init)
        }
        let names = try o["feature_names"].map { v -> [String] in
            guard let a = v.arrayValue?.compactMap(\.stringValue), a.count == v.arrayValue?.count else {
                throw bad("\"feature_names\" must be a list of strings")
            }
            return a
        }
        return StackConfig(family: family, inputShape: shape, specs: specs, labels: labels, featureNames: names,
                           problemType: problem, quantization: o["quantization"])
    }

    /// config.json as published with a trained, quantized or pruned model.
    public var json: JSONValue {
        var o = JSONObject()
        o["model_type"] = .string(family)
        o["architectures"] = [.string(family == "cnn" ? "QuernCNN" : "QuernMLP")]
        if inputShape.count == 1 {
            o["input_size"] = .int(Int64(inputShape[0]))
        } else {
            o["input_shape"] = .array(inputShape.map { .int(Int64($0)) })
        }
        o["layers"] = .array(specs.map(\.json))
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
}
