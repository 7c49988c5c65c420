import Foundation
import QuernKernels
import Testing

@Suite("Reference kernels")
struct ReferenceTests {
    @Test func linearMatchesAHandComputedCase() {
        // x: [2, 3], w: [2, 3] (out, in), bias: [2].
        let x = Tensor(
            shape: [2, 3],
            data: [
                1, 2, 3,
                -1, 0.5, 2
            ])
        let w = Tensor(
            shape: [2, 3],
            data: [
                0.5, -1, 2,
                1, 1, 1
            ])
        let b = Tensor(shape: [2], data: [0.25, -4])
        let y = Reference.linear(x, w, bias: b)
        // row 0: 0.5 - 2 + 6 + 0.25 = 4.75;   1 + 2 + 3 - 4 = 2
        // row 1: -0.5 - 0.5 + 4 + 0.25 = 3.25; -1 + 0.5 + 2 - 4 = -2.5
        #expect(y.shape == [2, 2])
        #expect(y.data == [4.75, 2, 3.25, -2.5])

        let relu = Reference.linear(x, w, bias: b, activation: .relu)
        #expect(relu.data == [4.75, 2, 3.25, 0])

        let noBias = Reference.linear(x, w, bias: nil)
        #expect(noBias.data == [4.5, 6, 3, 1.5])
    }

    @Test func linearWithOneOutputAndManyRows() {
        let x = Tensor(shape: [4, 2], data: [1, 0, 0, 1, 1, 1, 2, -3])
        let w = Tensor(shape: [1, 2], data: [3, -2])
        let y = Reference.linear(x, w, bias: Tensor(shape: [1], data: [1]))
        #expect(y.shape == [4, 1])
        #expect(y.data == [4, -1, 2, 13])
    }

    @Test func linearAccumulatesInDouble() {
        // 1e8 + 1 - 1e8 in fp32 loses the 1; the reference must not.
        let x = Tensor(shape: [1, 3], data: [1e8, 1, -1e8])
        let w = Tensor(shape: [1, 3], data: [1, 1, 1])
        #expect(Reference.linear(x, w, bias: nil).data == [1])
    }

    @Test func relu() {
        #expect(Activation.relu.apply(-3) == 0)
        #expect(Activation.relu.apply(0) == 0)
        #expect(Activation.relu.apply(2.5) == 2.5)
        #expect(Activation.none.apply(-2.5) == -2.5)
    }

    @Test(
        arguments: [
            // x, 0.5 * x * (1 + erf(x / sqrt(2))) computed in double precision (Python math.erf).
            (Float(0), 0.0),
            (1, 0.8413447460685429),
            (-1, -0.15865525393145707),
            (0.5, 0.34573123063700656),
            (2, 1.9544997361036416),
            (-3, -0.00404969409489031)
        ] as [(Float, Double)])
    func exactGELU(_ x: Float, _ expected: Double) {
        let y = Activation.gelu.apply(x)
        #expect(abs(Double(y) - expected) <= 1e-6 * max(1, abs(expected)), "gelu(\(x)) = \(y)")
    }

    @Test func geluIsTheErfFormNotTheTanhApproximation() {
        // The tanh approximation gives 1.954597694 at x = 2, off by ~1e-4 from the exact 1.954499736.
        #expect(abs(Activation.gelu.apply(2) - 1.9544997) < 2e-6)
        #expect(abs(Activation.gelu.apply(2) - 1.9545977) > 5e-5)
    }

    @Test func sigmoid() {
        #expect(Activation.sigmoid.apply(0) == 0.5)
        #expect(abs(Activation.sigmoid.apply(2) - 0.880797078) < 1e-6)
        #expect(abs(Activation.sigmoid.apply(-2) - 0.119202922) < 1e-6)
        #expect(Activation.sigmoid.apply(100) == 1)
        #expect(Activation.sigmoid.apply(-100) >= 0)
        #expect(Activation.sigmoid.apply(-100) < 1e-30)
        #expect(!Activation.sigmoid.apply(-1000).isNaN)
    }

    @Test func tanh() {
        #expect(Activation.tanh.apply(0) == 0)
        #expect(abs(Activation.tanh.apply(0.5) - 0.462117157) < 1e-6)
        #expect(abs(Activation.tanh.apply(-1) + 0.761594156) < 1e-6)
        #expect(Activation.tanh.apply(50) == 1)
    }

    @Test func activationsByName() {
        #expect(Activation(rawValue: "gelu") == .gelu)
        #expect(Set(Activation.allCases.map(\.rawValue)) == ["none", "relu", "gelu", "tanh", "sigmoid"])
    }

    @Test func softmaxRowsSumToOne() {
        let x = Tensor(
            shape: [3, 4],
            data: [
                1, 2, 3, 4,
                0, 0, 0, 0,
                -5, 10, 0.5, 3
            ])
        let p = Reference.softmax(x)
        #expect(p.shape == [3, 4])
        for r in 0..<3 {
            let row = p.row(r)
            #expect(abs(row.reduce(0, +) - 1) < 1e-6)
            let inRange = row.allSatisfy { $0 >= 0 && $0 <= 1 }
            #expect(inRange)
        }
        // Row 0 by hand: e^k / (e + e^2 + e^3 + e^4).
        let denominator = [1.0, 2, 3, 4].map { exp($0) }.reduce(0, +)
        for k in 0..<4 {
            #expect(abs(Double(Array(p.row(0))[k]) - exp(Double(k + 1)) / denominator) < 1e-7)
        }
        #expect(Array(p.row(1)) == [0.25, 0.25, 0.25, 0.25])
        // Order is preserved.
        let row2 = Array(p.row(2))
        #expect(row2[1] > row2[3] && row2[3] > row2[2] && row2[2] > row2[0])
    }

    @Test func softmaxIsStableForLargeLogits() {
        let p = Reference.softmax(Tensor(shape: [2, 2], data: [1000, 1001, -1000, -1001]))
        let finite = p.data.allSatisfy { $0.isFinite }
        #expect(finite)
        // 1 / (1 + e) and e / (1 + e).
        #expect(abs(p.data[0] - 0.268941421) < 1e-6)
        #expect(abs(p.data[1] - 0.731058579) < 1e-6)
        #expect(abs(p.data[2] - 0.731058579) < 1e-6)
        #expect(abs(p.data[3] - 0.268941421) < 1e-6)
        let huge = Reference.softmax(Tensor(shape: [1, 3], data: [3e38, 3e38, -3e38]))
        #expect(huge.data == [0.5, 0.5, 0])
    }

    @Test func tensorRowsAndShapes() {
        let t = Tensor(shape: [2, 3, 2], data: (0..<12).map(Float.init))
        #expect(t.rows == 2)
        #expect(t.rowLength == 6)
        #expect(Array(t.row(1)) == [6, 7, 8, 9, 10, 11])
        #expect(Tensor(zeros: [2, 2]).data == [0, 0, 0, 0])
    }
}
