import QuernKernels
import Testing

@testable import QuernNN

/// Central finite differences in Float: a step of 1e-2 keeps the rounding error of the
/// loss difference (≈ 1e-7·|loss| / 1e-2) well under the curvature error (≈ h²·f‴).
let finiteDifferenceStep: Float = 1e-2
/// Agreement demanded between backprop and finite differences, relative to the larger
/// magnitude, plus an absolute floor for gradients near zero.
let gradientRelativeTolerance: Float = 2e-2
let gradientAbsoluteTolerance: Float = 2e-3

/// Checks every parameter's gradient from `tape.backward` against central differences
/// of the loss built by `loss` (which must be deterministic in the parameters).
func checkGradients(
    _ parameters: [Parameter], seed: UInt64 = 1, _ loss: (Tape) -> Var,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    for p in parameters { p.zeroGrad() }
    let tape = Tape(training: true, seed: seed, pool: ThreadPool(threads: 1))
    tape.backward(loss(tape))
    for p in parameters {
        let analytic = p.grad
        for i in 0..<p.value.count {
            let saved = p.value.data[i]
            p.value.data[i] = saved + finiteDifferenceStep
            let up = Tape(training: true, seed: seed, pool: ThreadPool(threads: 1))
            let plus = up.value(loss(up)).data[0]
            p.value.data[i] = saved - finiteDifferenceStep
            let down = Tape(training: true, seed: seed, pool: ThreadPool(threads: 1))
            let minus = down.value(loss(down)).data[0]
            p.value.data[i] = saved
            let numeric = (plus - minus) / (2 * finiteDifferenceStep)
            let scale = max(abs(numeric), abs(analytic[i]))
            #expect(
                abs(numeric - analytic[i]) <= gradientRelativeTolerance * scale + gradientAbsoluteTolerance,
                "\(p.name)[\(i)]: backprop \(analytic[i]), finite difference \(numeric)", sourceLocation: sourceLocation
            )
        }
    }
}

func randomTensor(_ shape: [Int], _ random: inout SeededRandom, scale: Float = 1) -> Tensor {
    Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in random.uniform(scale) })
}

@Suite("gradients against finite differences")
struct GradientTests {
    @Test(
        "linear with each fused activation, then cross-entropy",
        arguments: [Activation.none, .relu, .tanh, .sigmoid, .gelu])
    func linear(activation: Activation) {
        var r = SeededRandom(seed: 3)
        let x = randomTensor([5, 7], &r)
        let layer = Linear(7, 4, activation: activation, random: &r)
        let head = Linear(4, 3, random: &r)
        checkGradients(layer.parameters + head.parameters) { tape in
            let h = layer.forward(tape.constant(x), on: tape)
            return tape.crossEntropy(head.forward(h, on: tape), labels: [0, 2, 1, 1, 0])
        }
    }

    @Test("conv2d (stride, padding), max and average pooling, flatten")
    func convolution() {
        var r = SeededRandom(seed: 5)
        let x = randomTensor([2, 2, 7, 6], &r)
        let conv1 = Conv2d(2, 3, kernel: 3, padding: 1, activation: .tanh, random: &r)
        let conv2 = Conv2d(3, 2, kernel: 2, stride: 2, random: &r)
        let head = Linear(2 * 1 * 1, 3, random: &r)
        checkGradients(conv1.parameters + conv2.parameters + head.parameters) { tape in
            var h = conv1.forward(tape.constant(x), on: tape)  // [2, 3, 7, 6]
            h = tape.pool2d(h, .average, size: 2)  // [2, 3, 3, 3]
            h = conv2.forward(h, on: tape)  // [2, 2, 1, 1]
            h = tape.pool2d(h, .max, size: 1)
            h = Flatten().forward(h, on: tape)
            return tape.crossEntropy(head.forward(h, on: tape), labels: [2, 0])
        }
        // Max pooling with distinct values (ties would make the derivative ambiguous).
        let conv3 = Conv2d(2, 2, kernel: 3, random: &r)
        checkGradients(conv3.parameters) { tape in
            let h = tape.pool2d(conv3.forward(tape.constant(x), on: tape), .max, size: 2, stride: 2)
            return tape.meanSquaredError(h, targets: [Float](repeating: 0.1, count: 2 * 2 * 2 * 2))
        }
    }

    @Test("batch norm in training (batch statistics) over [B, C] and [B, C, H, W]")
    func batchNorm() {
        var r = SeededRandom(seed: 7)
        let dense = Linear(4, 3, random: &r), bn = BatchNorm(3), head = Linear(3, 2, random: &r)
        let x = randomTensor([6, 4], &r)
        checkGradients(dense.parameters + bn.parameters + head.parameters) { tape in
            let h = bn.forward(dense.forward(tape.constant(x), on: tape), on: tape)
            return tape.crossEntropy(head.forward(tape.relu(h), on: tape), labels: [0, 1, 1, 0, 1, 0])
        }
        let conv = Conv2d(1, 2, kernel: 2, random: &r), bn2 = BatchNorm(2)
        let image = randomTensor([3, 1, 4, 4], &r)
        checkGradients(conv.parameters + bn2.parameters) { tape in
            let h = bn2.forward(conv.forward(tape.constant(image), on: tape), on: tape)
            return tape.meanSquaredError(tape.tanh(h), targets: (0..<(3 * 2 * 3 * 3)).map { Float($0 % 5) / 5 })
        }
    }

    @Test("layer norm, embedding, add, sigmoid, binary cross-entropy")
    func sequenceOps() {
        var r = SeededRandom(seed: 11)
        let embedding = Embedding(6, 5, random: &r), ln = LayerNorm(5), proj = Linear(5, 5, random: &r)
        let head = Linear(5, 1, random: &r)
        let ids = [1, 4, 4, 0]
        checkGradients(embedding.parameters + ln.parameters + proj.parameters + head.parameters) { tape in
            let e = embedding.forward(ids, on: tape)
            let h = tape.add(e, tape.sigmoid(proj.forward(e, on: tape)))
            let logits = head.forward(ln.forward(h, on: tape), on: tape)
            return tape.binaryCrossEntropy(logits, targets: [1, 0, 1, 0])
        }
    }

    @Test("dropout: the same seed gives the same mask, so its gradient checks too")
    func dropout() {
        var r = SeededRandom(seed: 13)
        let layer = Linear(6, 4, random: &r), head = Linear(4, 2, random: &r)
        let x = randomTensor([5, 6], &r)
        checkGradients(layer.parameters + head.parameters, seed: 99) { tape in
            let h = tape.dropout(layer.forward(tape.constant(x), on: tape), p: 0.5)
            return tape.crossEntropy(head.forward(h, on: tape), labels: [0, 1, 0, 1, 1])
        }
    }
}
