import QuernKernels

/// A piece of a network: parameters plus a forward function recorded on a tape.
/// Initialisation follows PyTorch's defaults (uniform ±1/√fan_in for Linear and Conv2d
/// weights and biases), drawn from a seeded generator so runs repeat.
public protocol Layer: AnyObject {
    func forward(_ x: Var, on tape: Tape) -> Var
    var parameters: [Parameter] { get }
    /// State that training updates but the optimizer does not (batch norm's running
    /// statistics), by name, as checkpoints store it.
    var buffers: [(name: String, value: Tensor)] { get }
    /// Sets the buffer called `name`, if the layer has one.
    func setBuffer(_ name: String, _ value: Tensor)
}

extension Layer {
    public var buffers: [(name: String, value: Tensor)] { [] }
    public func setBuffer(_ name: String, _ value: Tensor) {}
}

public final class Sequential: Layer {
    public var layers: [any Layer]

    public init(_ layers: [any Layer]) { self.layers = layers }

    public func forward(_ x: Var, on tape: Tape) -> Var {
        layers.reduce(x) { $1.forward($0, on: tape) }
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// Every parameter and buffer by name: the network's whole state (PyTorch's
    /// `state_dict`), what model files and training checkpoints hold.
    public var state: [String: Tensor] {
        var out: [String: Tensor] = [:]
        for p in parameters { out[p.name] = p.value }
        for layer in layers { for (name, value) in layer.buffers { out[name] = value } }
        return out
    }

    /// Sets parameters and buffers from `state` by name; what it does not name keeps its value.
    public func load(state: [String: Tensor]) {
        for p in parameters { if let v = state[p.name] { p.value = v } }
        for layer in layers { for (name, _) in layer.buffers { if let v = state[name] { layer.setBuffer(name, v) } } }
    }
}

public final class Linear: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let activation: Activation

    public init(
        _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, activation: Activation = .none,
        random: inout SeededRandom, name: String = "linear"
    ) {
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(
            "\(name).weight",
            Tensor(
                shape: [outFeatures, inFeatures],
                data: (0..<(outFeatures * inFeatures)).map { _ in random.uniform(bound) }))
        self.bias =
            bias
            ? Parameter(
                "\(name).bias",
                Tensor(
                    shape: [outFeatures],
                    data: (0..<outFeatures).map { _ in random.uniform(bound) })) : nil
        self.activation = activation
    }

    public init(weight: Parameter, bias: Parameter?, activation: Activation = .none) {
        self.weight = weight
        self.bias = bias
        self.activation = activation
    }

    public func forward(_ x: Var, on tape: Tape) -> Var {
        tape.linear(x, tape.parameter(weight), bias.map { tape.parameter($0) }, activation: activation)
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }
}

public final class Conv2d: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: Int
    public let padding: Int
    public let activation: Activation

    public init(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, activation: Activation = .none, random: inout SeededRandom, name: String = "conv"
    ) {
        let fanIn = inChannels * kernel * kernel
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(
            "\(name).weight",
            Tensor(
                shape: [outChannels, inChannels, kernel, kernel],
                data: (0..<(outChannels * fanIn)).map { _ in random.uniform(bound) }))
        self.bias =
            bias
            ? Parameter(
                "\(name).bias",
                Tensor(
                    shape: [outChannels],
                    data: (0..<outChannels).map { _ in random.uniform(bound) })) : nil
        self.stride = stride
        self.padding = padding
        self.activation = activation
    }

    public init(weight: Parameter, bias: Parameter?, stride: Int, padding: Int, activation: Activation = .none) {
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.activation = activation
    }

    public func forward(_ x: Var, on tape: Tape) -> Var {
        tape.conv2d(
            x, tape.parameter(weight), bias.map { tape.parameter($0) }, stride: stride, padding: padding,
            activation: activation)
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }
}

public final class Pooling: Layer {
    public let kind: Pool2D.Kind
    public let size: Int
    public let stride: Int

    public init(_ kind: Pool2D.Kind, size: Int, stride: Int? = nil) {
        self.kind = kind
        self.size = size
        self.stride = stride ?? size
    }

    public func forward(_ x: Var, on tape: Tape) -> Var { tape.pool2d(x, kind, size: size, stride: stride) }
    public var parameters: [Parameter] { [] }
}

/// `[B, …] → [B, product of the rest]`.
public final class Flatten: Layer {
    public init() {}
    public func forward(_ x: Var, on tape: Tape) -> Var { tape.reshape(x, [tape.shape(x)[0], -1]) }
    public var parameters: [Parameter] { [] }
}

public final class Dropout: Layer {
    public let p: Float
    public init(_ p: Float) { self.p = p }
    public func forward(_ x: Var, on tape: Tape) -> Var { tape.dropout(x, p: p) }
    public var parameters: [Parameter] { [] }
}

public final class ActivationLayer: Layer {
    public let activation: Activation
    public init(_ activation: Activation) { self.activation = activation }
    public func forward(_ x: Var, on tape: Tape) -> Var {
        switch activation {
        case .none: x
        case .gelu: tape.gelu(x)
        default: tape.elementwise(x, activation)
        }
    }
    public var parameters: [Parameter] { [] }
}

public final class BatchNorm: Layer {
    public let gamma: Parameter
    public let beta: Parameter
    public let statistics: BatchNormStatistics
    public let eps: Float
    /// Prefix of its tensors' names (`name.weight`, `name.running_mean`, …).
    public let name: String

    public init(_ channels: Int, eps: Float = 1e-5, name: String = "bn") {
        self.name = name
        gamma = Parameter("\(name).weight", Tensor(shape: [channels], data: [Float](repeating: 1, count: channels)))
        beta = Parameter("\(name).bias", Tensor(zeros: [channels]))
        statistics = BatchNormStatistics(channels: channels)
        self.eps = eps
    }

    public func forward(_ x: Var, on tape: Tape) -> Var {
        tape.batchNorm(x, gamma: tape.parameter(gamma), beta: tape.parameter(beta), stats: statistics, eps: eps)
    }

    public var parameters: [Parameter] { [gamma, beta] }

    public var buffers: [(name: String, value: Tensor)] {
        [
            ("\(name).running_mean", Tensor(shape: [statistics.mean.count], data: statistics.mean)),
            ("\(name).running_var", Tensor(shape: [statistics.variance.count], data: statistics.variance))
        ]
    }

    public func setBuffer(_ key: String, _ value: Tensor) {
        if key == "\(name).running_mean" { statistics.mean = value.data }
        if key == "\(name).running_var" { statistics.variance = value.data }
    }
}

/// Folds a batch norm into the linear or conv layer before it, in place: each output
/// channel's weights scale by γ/σ and its bias becomes (b − μ)·γ/σ + β, σ = √(var + eps).
public func foldBatchNorm(
    weight: inout [Float], bias: inout [Float], gamma: [Float], beta: [Float], mean: [Float],
    variance: [Float], eps: Float
) {
    let per = weight.count / gamma.count
    for c in 0..<gamma.count {
        let scale = gamma[c] / (variance[c] + eps).squareRoot()
        for j in 0..<per { weight[c * per + j] *= scale }
        bias[c] = (bias[c] - mean[c]) * scale + beta[c]
    }
}

public final class LayerNorm: Layer {
    public let gamma: Parameter
    public let beta: Parameter
    public let eps: Float

    public init(_ features: Int, eps: Float = 1e-5, name: String = "ln") {
        gamma = Parameter("\(name).weight", Tensor(shape: [features], data: [Float](repeating: 1, count: features)))
        beta = Parameter("\(name).bias", Tensor(zeros: [features]))
        self.eps = eps
    }

    public func forward(_ x: Var, on tape: Tape) -> Var {
        tape.layerNorm(x, gamma: tape.parameter(gamma), beta: tape.parameter(beta), eps: eps)
    }

    public var parameters: [Parameter] { [gamma, beta] }
}

/// A lookup table `[vocabulary, dimension]`; its input is ids, not a tensor.
public final class Embedding {
    public let table: Parameter

    public init(_ vocabulary: Int, _ dimension: Int, random: inout SeededRandom, name: String = "embedding") {
        // PyTorch draws N(0, 1); a uniform of the same variance (±√3) keeps this simple.
        table = Parameter(
            "\(name).weight",
            Tensor(
                shape: [vocabulary, dimension],
                data: (0..<(vocabulary * dimension)).map { _ in random.uniform(1.7320508) }))
    }

    public func forward(_ ids: [Int], on tape: Tape) -> Var { tape.embedding(ids, table: tape.parameter(table)) }
    public var parameters: [Parameter] { [table] }
}
