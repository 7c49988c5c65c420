import QuernCore
import QuernKernels
import QuernNN

/// One kind of layer that `mlp` and `cnn` configs list (`{"type": "conv2d", ...}`):
/// its config entry, output shape, tensors, weight matrices, inference form and
/// training form, in one file per kind, found through `LayerSpecs.kinds`. Tensors of
/// layer i are named `layers.{i}.<suffix>` (PyTorch's `nn.Sequential` names).
public protocol LayerSpec: Sendable, SendableMetatype {
    /// The config's `type` values this kind answers to.
    static var types: [String] { get }
    /// Decodes one `layers[]` entry whose `type` is one of `types`.
    init(type: String, entry: LayerEntry) throws
    /// The entry as config.json stores it.
    var json: JSONValue { get }
    /// The per-sample shape after this layer; `LayerEntry.invalid` errors say why not.
    func outputShape(_ input: [Int]) throws -> [Int]
    /// Every tensor this layer owns, by suffix, for an input of this per-sample shape.
    func tensors(input: [Int]) -> [(name: String, shape: [Int])]
    /// The weight matrices among them: what int8 quantization and pruning transform.
    func matrices(input: [Int]) -> [WeightMatrix]
    /// When this layer is a linear map with no activation after it: its weight and bias,
    /// into which a following per-channel affine (a batch norm) can be folded.
    var foldTarget: (weight: String, bias: String)? { get }
    /// Folds this layer, if it is a per-channel affine, into the weight `[channels, …]`
    /// and bias of the layer before it; false if it is not one.
    func fold(_ own: LayerTensors, into weight: inout Tensor, bias: inout Tensor) -> Bool
    /// The inference form for an input of this per-sample shape, on operators chosen
    /// for the tensors (fp32, int8, sparse).
    func compile(_ tensors: LayerTensors, input: [Int]) -> any InferenceLayer
    /// The training form, its parameters named `name.<suffix>`: with `tensors` (a
    /// checkpoint, a model to fine-tune) or fresh PyTorch-default weights drawn from
    /// `random` (in layer order, so a seed gives the same network every time).
    func trainable(input: [Int], name: String, tensors: LayerTensors?, random: inout SeededRandom) -> any QuernNN.Layer
}

extension LayerSpec {
    public func tensors(input: [Int]) -> [(name: String, shape: [Int])] { [] }
    public func matrices(input: [Int]) -> [WeightMatrix] { [] }
    public var foldTarget: (weight: String, bias: String)? { nil }
    public func fold(_ own: LayerTensors, into weight: inout Tensor, bias: inout Tensor) -> Bool { false }
}

/// Every layer kind, in the order their type names are listed in errors.
public enum LayerSpecs {
    public static let kinds: [any LayerSpec.Type] = [
        LinearSpec.self,
        Conv2dSpec.self,
        PoolSpec.self,
        FlattenSpec.self,
        DropoutSpec.self,
        BatchNormSpec.self,
        ActivationSpec.self
    ]

    public static var types: [String] { kinds.flatMap { $0.types } }

    /// Decodes `{"type": "conv2d", "out_channels": 8, ...}`. An entry without "type" is a
    /// linear layer (the original `mlp` config form).
    public static func decode(_ value: JSONValue, at index: Int) throws -> any LayerSpec {
        guard let o = value.objectValue else { throw LayerEntry.invalid("must be an object", at: index) }
        let type = o["type"]?.stringValue ?? "linear"
        guard let kind = kinds.first(where: { $0.types.contains(type) }) else {
            throw LayerEntry.invalid(
                "unknown layer type \"\(type)\"; known: \(types.joined(separator: ", "))", at: index)
        }
        return try kind.init(type: type, entry: LayerEntry(object: o, index: index))
    }

    /// The stored name of a layer's tensor.
    public static func tensorName(layer: Int, _ suffix: String) -> String { "layers.\(layer).\(suffix)" }
}

/// One `layers[]` entry being decoded, with the errors every kind gives.
public struct LayerEntry {
    public let object: JSONObject
    public let index: Int

    public static func invalid(_ why: String, at index: Int) -> QuernError {
        QuernError(.modelInvalid, "config.json layers[\(index)]: \(why)")
    }

    public func invalid(_ why: String) -> QuernError { Self.invalid(why, at: index) }

    /// A non-negative integer; `default` when absent (absent without one is an error).
    public func int(_ key: String, default d: Int? = nil) throws -> Int {
        guard let v = object[key] else {
            if let d { return d }
            throw invalid("\"\(key)\" is missing")
        }
        guard let i = v.intValue, i >= 0 else { throw invalid("\"\(key)\" must be a non-negative integer") }
        guard i <= StackLimits.size else {
            throw invalid("\"\(key)\" is \(i); a size may be at most \(StackLimits.size)")
        }
        return Int(i)
    }

    /// `activation`, none when absent.
    public func activation() throws -> Activation {
        guard let raw = object["activation"] else { return .none }
        guard let s = raw.stringValue, let a = Activation(rawValue: s) else {
            throw invalid(
                "\"activation\" must be one of \(Activation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return a
    }
}

/// A matrix the layer multiplies by, `[out, in…]` as stored: int8 models store it as I8
/// with `<name>_scale` (one fp32 scale per output), and, when quantized statically, the
/// calibrated range of its input as `<input>_scale` / `<input>_zero_point`.
public struct WeightMatrix: Sendable, Equatable {
    /// Tensor suffix (`weight`).
    public let name: String
    public let shape: [Int]
    /// Prefix of its input range's tensors (`input`).
    public let input: String

    public init(name: String, shape: [Int], input: String = "input") {
        self.name = name
        self.shape = shape
        self.input = input
    }

    public var outputs: Int { shape[0] }
    public var scaleName: String { name + "_scale" }
    public var inputScaleName: String { input + "_scale" }
    public var inputZeroPointName: String { input + "_zero_point" }
}

/// Why a layer does not fit its input; the stack adds which layer it is.
public struct ShapeError: Error {
    public let why: String
    public init(_ why: String) { self.why = why }
}

/// The tensors of one layer, by suffix: fp32 ones and the int8 matrices of a quantized
/// model.
public struct LayerTensors {
    public let layer: Int
    public let all: [String: Tensor]
    let quantized: [String: QuantizedLayer]
    public let precision: LinearOperator.Precision

    public func name(_ suffix: String) -> String { LayerSpecs.tensorName(layer: layer, suffix) }
    /// An fp32 tensor the loader checked exists.
    public subscript(_ suffix: String) -> Tensor { all[name(suffix)]! }
    public func optional(_ suffix: String) -> Tensor? { all[name(suffix)] }

    /// The operator for a weight matrix: int8 as stored (static range or per-row), or
    /// the fp32 weights on the kernel the precision and sparsity call for.
    public func linearOperator(_ m: WeightMatrix) -> LinearOperator {
        if let q = quantized[name(m.name)] {
            if let range = q.input { return .int8Static(q.weights, range) }
            return .choose(q.weights)
        }
        let w = self[m.name]
        return .choose(Tensor(shape: [m.outputs, w.count / m.outputs], data: w.data), precision: precision)
    }

    /// (weights, of which zero) of a matrix, for `quern inspect` and prune reports.
    public func counts(_ m: WeightMatrix) -> (weights: Int, zeros: Int) {
        if let q = quantized[name(m.name)] {
            return (q.weights.values.count, q.weights.values.reduce(0) { $0 + ($1 == 0 ? 1 : 0) })
        }
        let w = self[m.name]
        return (w.count, w.data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) })
    }
}

/// A layer ready to run: `[batch, input…]` flattened in, `[batch, output…]` out.
public protocol InferenceLayer: Sendable {
    /// `observe(name, input)` sees the input of every weight matrix (static quantization
    /// calibrates on it), by the matrix's tensor name.
    func forward(_ x: [Float], batch: Int, input: [Int], output: [Int], observe: ((String, [Float]) -> Void)?)
        -> [Float]
    /// Per weight matrix: the kernel running it and its counts; empty without weights.
    var summary: [MatrixSummary] { get }
}

/// What `quern inspect` says of one weight matrix.
public struct MatrixSummary: Sendable {
    public let kernel: String
    public let weights: Int
    public let zeros: Int
    public let bias: Int
}

/// A layer that passes its input through (flatten, dropout, a folded batch norm).
struct IdentityLayer: InferenceLayer {
    func forward(_ x: [Float], batch: Int, input: [Int], output: [Int], observe: ((String, [Float]) -> Void)?)
        -> [Float]
    { x }
    var summary: [MatrixSummary] { [] }
}

/// `y = act(x·Wᵀ + b)` on an operator, the shared step of layers with weights.
public func applyLinear(_ op: LinearOperator, _ x: [Float], rows: Int, bias: [Float], activation: Activation) -> [Float]
{
    var y = [Float](repeating: 0, count: rows * op.outFeatures)
    op.apply(x, m: rows, bias: bias, activation: activation, into: &y)
    return y
}

/// One weight matrix and its bias, ready to multiply by: the operator chosen for them,
/// the matrix's tensor name (calibration observes its input by it) and its counts.
struct BoundMatrix: Sendable {
    let op: LinearOperator
    let bias: [Float]
    let name: String
    let counts: (weights: Int, zeros: Int)

    init(_ t: LayerTensors, _ m: WeightMatrix, bias: String) {
        op = t.linearOperator(m)
        self.bias = t[bias].data
        name = t.name(m.name)
        counts = t.counts(m)
    }

    /// `act(x·Wᵀ + b)` for `rows` rows, after `observe` has seen `x`.
    func apply(_ x: [Float], rows: Int, activation: Activation, observe: ((String, [Float]) -> Void)?) -> [Float] {
        observe?(name, x)
        return applyLinear(op, x, rows: rows, bias: bias, activation: activation)
    }

    var summary: MatrixSummary {
        MatrixSummary(kernel: op.kind, weights: counts.weights, zeros: counts.zeros, bias: bias.count)
    }
}
