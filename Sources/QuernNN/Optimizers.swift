/// Optimizers update parameters from the gradients a backward pass left in them, then
/// clear those gradients. Their state (momenta) is keyed by the parameter's position in
/// the list given at creation, and can be saved and restored for checkpoints.
public protocol Optimizer: AnyObject {
    var parameters: [Parameter] { get }
    /// One update at learning rate `lr`.
    func step(lr: Float)
    /// Momentum buffers and the step count, for checkpoints.
    var state: OptimizerState { get set }
}

public struct OptimizerState: Sendable, Equatable {
    public var step: Int
    public var buffers: [[Float]]

    public init(step: Int, buffers: [[Float]]) {
        self.step = step
        self.buffers = buffers
    }
}

/// SGD with momentum (PyTorch's form: v = μ·v + g, p −= lr·v) and L2 weight decay added to
/// the gradient.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public let momentum: Float
    public let weightDecay: Float
    var velocity: [[Float]]
    var steps = 0

    public init(_ parameters: [Parameter], momentum: Float = 0.9, weightDecay: Float = 0) {
        self.parameters = parameters
        self.momentum = momentum
        self.weightDecay = weightDecay
        velocity = parameters.map { [Float](repeating: 0, count: $0.value.count) }
    }

    public func step(lr: Float) {
        steps += 1
        let (mu, wd) = (momentum, weightDecay)
        for (i, p) in parameters.enumerated() {
            p.value.data.withUnsafeMutableBufferPointer { w in
                p.grad.withUnsafeMutableBufferPointer { g in
                    velocity[i].withUnsafeMutableBufferPointer { v in
                        for j in 0..<g.count {
                            v[j] = mu * v[j] + g[j] + wd * w[j]
                            w[j] -= lr * v[j]
                            g[j] = 0
                        }
                    }
                }
            }
        }
    }

    public var state: OptimizerState {
        get { OptimizerState(step: steps, buffers: velocity) }
        set { steps = newValue.step; velocity = newValue.buffers }
    }
}

/// Adam, or AdamW when `decoupled` (weight decay applied to the weights directly,
/// p −= lr·wd·p, rather than through the gradient: Loshchilov & Hutter).
public final class Adam: Optimizer {
    public let parameters: [Parameter]
    public let beta1: Float, beta2: Float, eps: Float
    public let weightDecay: Float
    public let decoupled: Bool
    var m: [[Float]], v: [[Float]]
    var steps = 0

    public init(
        _ parameters: [Parameter], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
        weightDecay: Float = 0, decoupled: Bool = false
    ) {
        self.parameters = parameters
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        m = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
    }

    /// AdamW with PyTorch's default decay of 0.01.
    public static func adamW(_ parameters: [Parameter], weightDecay: Float = 0.01) -> Adam {
        Adam(parameters, weightDecay: weightDecay, decoupled: true)
    }

    public func step(lr: Float) {
        steps += 1
        let (b1, b2, eps) = (beta1, beta2, self.eps)
        let c1 = 1 - pow(b1, Float(steps)), c2 = 1 - pow(b2, Float(steps))
        // Decoupled decay shrinks the weight before the Adam update; coupled decay adds
        // to the gradient.
        let shrink = decoupled ? 1 - lr * weightDecay : 1, coupled = decoupled ? 0 : weightDecay
        for (i, p) in parameters.enumerated() {
            p.value.data.withUnsafeMutableBufferPointer { w in
                p.grad.withUnsafeMutableBufferPointer { g in
                    m[i].withUnsafeMutableBufferPointer { m in
                        v[i].withUnsafeMutableBufferPointer { v in
                            for j in 0..<g.count {
                                let grad = g[j] + coupled * w[j]
                                w[j] *= shrink
                                m[j] = b1 * m[j] + (1 - b1) * grad
                                v[j] = b2 * v[j] + (1 - b2) * grad * grad
                                w[j] -= lr * (m[j] / c1) / ((v[j] / c2).squareRoot() + eps)
                                g[j] = 0
                            }
                        }
                    }
                }
            }
        }
    }

    public var state: OptimizerState {
        get { OptimizerState(step: steps, buffers: m + v) }
        set {
            steps = newValue.step
            m = Array(newValue.buffers.prefix(parameters.count))
            v = Array(newValue.buffers.suffix(parameters.count))
        }
    }
}

/// Learning rate over training: linear warm-up from 0, then constant, linear decay to 0,
/// or cosine decay to 0 (the transformers library's schedules).
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Decay: String, Sendable, CaseIterable { case constant, linear, cosine }

    public let base: Float
    public let warmupSteps: Int
    public let totalSteps: Int
    public let decay: Decay

    public init(base: Float, warmupSteps: Int = 0, totalSteps: Int, decay: Decay = .constant) {
        self.base = base
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
    }

    /// The rate for step `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        switch decay {
        case .constant: return base
        case .linear: return base * (1 - progress)
        case .cosine: return base * 0.5 * (1 + cos(Float.pi * progress))
        }
    }
}

/// Scales all gradients together so their global L2 norm is at most `maxNorm`; returns
/// the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var sum: Double = 0
    for p in parameters { for g in p.grad { sum += Double(g) * Double(g) } }
    let norm = Float(sum.squareRoot())
    if norm > maxNorm, norm > 0 {
        let scale = maxNorm / norm
        for p in parameters { for j in 0..<p.grad.count { p.grad[j] *= scale } }
    }
    return norm
}

#if canImport(Glibc)
    import Glibc
#endif
