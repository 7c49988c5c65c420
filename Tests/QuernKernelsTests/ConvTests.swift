import Testing

@testable import QuernKernels

@Suite("conv2d and pooling")
struct ConvTests {
    @Test(
        "im2col + GEMM convolution, as the conv2d layer kind runs it, against direct convolution",
        arguments: [
            (1, 1, 5, 5, 1, 3, 1, 0), (2, 3, 8, 7, 4, 3, 1, 1), (1, 2, 9, 9, 5, 5, 2, 2), (3, 1, 28, 28, 6, 5, 1, 0)
        ])
    func conv(_ p: (Int, Int, Int, Int, Int, Int, Int, Int)) {
        let (batch, inC, h, w, outC, k, stride, padding) = p
        var r = Rand(state: UInt64(batch * 100 + inC * 10 + k))
        let x = Tensor(shape: [batch, inC, h, w], data: (0..<(batch * inC * h * w)).map { _ in r.next() })
        let weight = Tensor(shape: [outC, inC, k, k], data: (0..<(outC * inC * k * k)).map { _ in r.next() })
        let bias = Tensor(shape: [outC], data: (0..<outC).map { _ in r.next() })
        let expected = Reference.conv2d(
            x, weight: weight, bias: bias, stride: stride, padding: padding, activation: .relu)
        let positions = expected.shape[2] * expected.shape[3], patch = inC * k * k
        let columns = ConvLayout.im2col(
            x.data, batch: batch, channels: inC, height: h, width: w, kernelH: k, kernelW: k, stride: stride,
            padding: padding)
        let weights = PackedWeights(weight.data, n: outC, k: patch)
        for isa in ISA.supported {
            var flat = [Float](repeating: .nan, count: batch * positions * outC)
            columns.withUnsafeBufferPointer { c in
                bias.data.withUnsafeBufferPointer { b in
                    flat.withUnsafeMutableBufferPointer { f in
                        SGEMM.linear(
                            c.baseAddress!, m: batch * positions, weights, bias: b.baseAddress, activation: .relu,
                            into: f.baseAddress!, isa: isa, pool: ThreadPool(threads: 2))
                    }
                }
            }
            let got = ConvLayout.transposeImages(flat, batch: batch, rows: positions, cols: outC)
            #expect(got.count == expected.count)
            for (a, b) in zip(got, expected.data) {
                #expect(abs(a - b) <= sgemmRelativeTolerance * Float(patch) + 1e-6, "\(isa) \(p)")
            }
        }
    }

    @Test("max and average pooling")
    func pooling() {
        // One 4x4 plane: 1...16.
        let x = Tensor(shape: [1, 1, 4, 4], data: (1...16).map(Float.init))
        #expect(Pool2D.forward(x, kind: .max, size: 2).data == [6, 8, 14, 16])
        #expect(Pool2D.forward(x, kind: .average, size: 2).data == [3.5, 5.5, 11.5, 13.5])
        #expect(Pool2D.forward(x, kind: .max, size: 3, stride: 1).data == [11, 12, 15, 16])
    }
}
