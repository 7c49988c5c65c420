import QuernKernels
import Testing

@testable import QuernNN

@Suite("optimizers, schedules, layers")
struct TrainingTests {
    /// One parameter, gradient set by hand: the update must match the published formulas.
    func single(_ value: Float, grad: Float) -> Parameter {
        let p = Parameter("p", Tensor(shape: [1], data: [value]))
        p.grad = [grad]
        return p
    }

    @Test("SGD with momentum and weight decay follows v = μv + g + λp, p −= lr·v")
    func sgd() {
        let p = single(1, grad: 0.5)
        let opt = SGD([p], momentum: 0.9, weightDecay: 0.1)
        opt.step(lr: 0.1)  // v = 0.5 + 0.1 = 0.6; p = 1 − 0.06
        #expect(abs(p.value.data[0] - 0.94) < 1e-6)
        #expect(p.grad == [0])
        p.grad = [0.5]
        opt.step(lr: 0.1)  // v = 0.54 + 0.5 + 0.094 = 1.134; p = 0.94 − 0.1134
        #expect(abs(p.value.data[0] - 0.8266) < 1e-5)
    }

    @Test("Adam's first step moves each weight by lr against the gradient's sign; AdamW decays the weight first")
    func adam() {
        let p = single(2, grad: -3)
        Adam([p]).step(lr: 0.01)
        #expect(abs(p.value.data[0] - 2.01) < 1e-5)
        let q = single(2, grad: -3)
        Adam.adamW([q], weightDecay: 0.5).step(lr: 0.01)  // 2 − 0.01·0.5·2 = 1.99, then + 0.01
        #expect(abs(q.value.data[0] - 2.0) < 1e-5)
    }

    @Test("optimizer state round-trips (checkpoints resume the same trajectory)")
    func optimizerState() {
        let a = single(1, grad: 0.3), b = single(1, grad: 0.3)
        let first = Adam([a]), second = Adam([b])
        first.step(lr: 0.1)
        second.step(lr: 0.1)
        let saved = first.state
        let restored = Adam([a])
        restored.state = saved
        a.grad = [0.7]
        b.grad = [0.7]
        restored.step(lr: 0.1)
        second.step(lr: 0.1)
        #expect(a.value.data == b.value.data)
    }

    @Test("warm-up then cosine or linear decay")
    func schedules() {
        let cosine = LearningRateSchedule(base: 1, warmupSteps: 10, totalSteps: 110, decay: .cosine)
        #expect(cosine.rate(at: 0) == 0.1)
        #expect(cosine.rate(at: 9) == 1)
        #expect(abs(cosine.rate(at: 60) - 0.5) < 1e-6)
        #expect(cosine.rate(at: 110) < 1e-6)
        let linear = LearningRateSchedule(base: 2, totalSteps: 100, decay: .linear)
        #expect(linear.rate(at: 50) == 1)
        #expect(LearningRateSchedule(base: 3, totalSteps: 5).rate(at: 4) == 3)
    }

    @Test("gradient clipping scales to the global norm")
    func clipping() {
        let a = single(0, grad: 3), b = single(0, grad: 4)
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        #expect(norm == 5)
        #expect(abs(a.grad[0] - 0.6) < 1e-6 && abs(b.grad[0] - 0.8) < 1e-6)
        #expect(clipGradientNorm([a, b], maxNorm: 10) <= 1.0001)
    }

    @Test("batch norm folded into the conv or linear before it (foldBatchNorm) gives the same inference output")
    func foldedBatchNorm() {
        var r = SeededRandom(seed: 21)
        let bn1 = BatchNorm(3), bn2 = BatchNorm(4)
        let net = Sequential([
            Conv2d(1, 3, kernel: 3, random: &r), bn1, ActivationLayer(.relu), Flatten(),
            Linear(3 * 3 * 3, 4, random: &r), bn2, ActivationLayer(.tanh)
        ])
        // Train-mode passes give the running statistics non-trivial values.
        for step in 0..<5 {
            let tape = Tape(training: true, seed: UInt64(step))
            _ = net.forward(tape.constant(randomTensor([8, 1, 5, 5], &r, scale: 2)), on: tape)
        }
        for p in [bn1.gamma, bn1.beta, bn2.gamma, bn2.beta] {
            for i in 0..<p.value.count { p.value.data[i] = r.uniform(1.5) }
        }
        let x = randomTensor([4, 1, 5, 5], &r)
        let t1 = Tape(training: false), t2 = Tape(training: false)
        let plain = t1.value(net.forward(t1.constant(x), on: t1))
        // Each norm folded into the Linear or Conv2d before it: w·γ/σ, (b − μ)·γ/σ + β.
        var kept: [any Layer] = []
        for layer in net.layers {
            guard let bn = layer as? BatchNorm else { kept.append(layer); continue }
            let weight: Parameter, bias: Parameter
            if let conv = kept.last as? Conv2d {
                (weight, bias) = (conv.weight, conv.bias!)
            } else {
                let linear = kept.last as! Linear
                (weight, bias) = (linear.weight, linear.bias!)
            }
            var w = weight.value.data, b = bias.value.data
            QuernNN.foldBatchNorm(
                weight: &w, bias: &b, gamma: bn.gamma.value.data, beta: bn.beta.value.data,
                mean: bn.statistics.mean, variance: bn.statistics.variance, eps: bn.eps)
            let fw = Parameter(weight.name, Tensor(shape: weight.value.shape, data: w))
            let fb = Parameter(bias.name, Tensor(shape: bias.value.shape, data: b))
            if let conv = kept.last as? Conv2d {
                kept[kept.count - 1] = Conv2d(weight: fw, bias: fb, stride: conv.stride, padding: conv.padding)
            } else {
                kept[kept.count - 1] = Linear(weight: fw, bias: fb)
            }
        }
        let folded = Sequential(kept)
        #expect(folded.layers.count == net.layers.count - 2)
        let fast = t2.value(folded.forward(t2.constant(x), on: t2))
        for (a, b) in zip(plain.data, fast.data) { #expect(abs(a - b) <= 1e-5 * max(1, abs(a))) }
    }

    @Test("a small MLP learns XOR-like data, and the same seed gives the same weights")
    func learns() {
        func train(seed: UInt64) -> (accuracy: Double, weights: [Float]) {
            var r = SeededRandom(seed: seed)
            let net = Sequential([Linear(2, 16, activation: .relu, random: &r), Linear(16, 2, random: &r)])
            let opt = Adam.adamW(net.parameters)
            var data = SeededRandom(seed: 5)
            let points = (0..<200).map { _ in (data.uniform(1), data.uniform(1)) }
            let x = Tensor(shape: [200, 2], data: points.flatMap { [$0.0, $0.1] })
            let labels = points.map { ($0.0 > 0) != ($0.1 > 0) ? 1 : 0 }
            for step in 0..<300 {
                let tape = Tape(training: true, seed: UInt64(step), pool: ThreadPool(threads: 1))
                tape.backward(tape.crossEntropy(net.forward(tape.constant(x), on: tape), labels: labels))
                opt.step(lr: 0.02)
            }
            let tape = Tape(training: false)
            let logits = tape.value(net.forward(tape.constant(x), on: tape))
            let correct = (0..<200).filter { (logits.data[2 * $0 + 1] > logits.data[2 * $0] ? 1 : 0) == labels[$0] }
                .count
            return (Double(correct) / 200, net.parameters.flatMap(\.value.data))
        }
        let first = train(seed: 8), again = train(seed: 8)
        #expect(first.accuracy >= 0.95)
        #expect(first.weights == again.weights)
    }
}

@Suite("early stopping")
struct EarlyStoppingTests {
    @Test("stops patience epochs after the best loss; the best epoch is remembered")
    func stopsAfterPatience() {
        var s = EarlyStopping(patience: 2)
        let improved = [s.record(epoch: 1, loss: 1.0), s.record(epoch: 2, loss: 0.5), s.record(epoch: 3, loss: 0.6)]
        #expect(improved == [true, true, false])
        #expect(!s.stopped)
        let equal = s.record(epoch: 4, loss: 0.5)
        #expect(!equal, "equal is not better")
        #expect(s.stopped && s.bestEpoch == 2 && s.bestLoss == 0.5 && s.sinceBest == 2)
    }

    @Test("without patience it never stops, and an improvement resets the count")
    func noPatience() {
        var s = EarlyStopping(patience: nil)
        for (i, loss) in [3.0, 2, 4, 5, 6, 7, 1].enumerated() { s.record(epoch: i + 1, loss: loss) }
        #expect(!s.stopped && s.bestEpoch == 7 && s.sinceBest == 0)
    }
}
