import QuernKernels

/// A trainable tensor: its value, and the gradient that backward passes add into it
/// (cleared by the optimizer after each step, as `zero_grad` does in PyTorch).
public final class Parameter: @unchecked Sendable {
    public let name: String
    public var value: Tensor
    public var grad: [Float]

    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.value = value
        grad = [Float](repeating: 0, count: value.count)
    }

    public func zeroGrad() {
        grad.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}

/// A value recorded on a tape (an index into it).
public struct Var: Sendable, Hashable {
    let id: Int
}

/// Reverse-mode automatic differentiation. A forward pass records, for each op, its
/// output and a closure that turns the output's gradient into its inputs' gradients;
/// `backward` seeds the loss with 1 and runs the closures newest first. A gradient is
/// only computed for values that lead to a parameter, so the first layer never builds
/// the gradient of the input data. One tape per step; it is cheap to make.
public final class Tape {
    var values: [Tensor] = []
    var grads: [[Float]?] = []
    var needsGrad: [Bool] = []
    var backwards: [((Tape, [Float]) -> Void)?] = []
    var parameterIDs: [(Int, Parameter)] = []

    /// Training mode: dropout drops and batch norm uses (and updates) batch statistics.
    public let training: Bool
    public let pool: ThreadPool
    /// The source of dropout masks: seeded, so runs repeat.
    public var random: SeededRandom

    public init(training: Bool, seed: UInt64 = 0, pool: ThreadPool = .shared) {
        self.training = training
        self.pool = pool
        random = SeededRandom(seed: seed)
    }

    /// Input data: no gradient.
    public func constant(_ t: Tensor) -> Var { append(t, needsGrad: false, backward: nil) }

    /// A parameter's current value; `backward` adds its gradient into `p.grad`.
    public func parameter(_ p: Parameter) -> Var {
        let v = append(p.value, needsGrad: training, backward: nil)
        parameterIDs.append((v.id, p))
        return v
    }

    public func value(_ v: Var) -> Tensor { values[v.id] }
    public func shape(_ v: Var) -> [Int] { values[v.id].shape }
    public func needsGradient(_ v: Var) -> Bool { needsGrad[v.id] }

    /// Records an op's output. `backward` gets the output's gradient (same count as the
    /// value) and adds into the inputs' gradients with `accumulate`; it is dropped when no
    /// input needs a gradient.
    func record(_ value: Tensor, inputs: [Var], backward: @escaping (Tape, [Float]) -> Void) -> Var {
        let needs = training && inputs.contains { needsGrad[$0.id] }
        return append(value, needsGrad: needs, backward: needs ? backward : nil)
    }

    private func append(_ t: Tensor, needsGrad needs: Bool, backward: ((Tape, [Float]) -> Void)?) -> Var {
        values.append(t)
        grads.append(nil)
        needsGrad.append(needs)
        backwards.append(backward)
        return Var(id: values.count - 1)
    }

    /// Adds `g` into v's gradient (ignored when v needs none).
    func accumulate(_ v: Var, _ g: [Float]) {
        guard needsGrad[v.id] else { return }
        if grads[v.id] == nil {
            grads[v.id] = g
        } else {
            grads[v.id]!.withUnsafeMutableBufferPointer { dst in
                for i in 0..<g.count { dst[i] += g[i] }
            }
        }
    }

    /// Runs the recorded ops backwards from a scalar loss, leaving every parameter's
    /// gradient added into `Parameter.grad`.
    public func backward(_ loss: Var) {
        precondition(values[loss.id].count == 1, "backward: the loss must be a scalar, got \(values[loss.id].shape)")
        guard needsGrad[loss.id] else { return }
        grads[loss.id] = [1]
        for id in stride(from: loss.id, through: 0, by: -1) {
            guard let g = grads[id], let back = backwards[id] else { continue }
            back(self, g)
            grads[id] = nil  // done with it: free memory as we go
        }
        for (id, p) in parameterIDs {
            guard let g = grads[id] else { continue }
            p.grad.withUnsafeMutableBufferPointer { dst in
                for i in 0..<g.count { dst[i] += g[i] }
            }
        }
    }
}

/// SplitMix64: a small, fast, seedable generator, so every training run with the same
/// seed draws the same initial weights, shuffles and dropout masks.
public struct SeededRandom: Sendable, RandomNumberGenerator {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform in [-bound, bound).
    public mutating func uniform(_ bound: Float) -> Float { (unit() * 2 - 1) * bound }
}
