import Testing
@testable import QuernKernels

@Suite("sparse GEMM")
struct SparseTests {
    @Test("CSR GEMM against the dense reference, densities 0 to 1, every path",
          arguments: [0.0, 0.05, 0.2, 0.5, 1.0])
    func csr(density: Double) {
        for (m, k, n) in [(1, 5, 3), (63, 40, 17), (64, 384, 96), (130, 100, 33)] {
            var r = Rand(state: UInt64(m * k * n) + UInt64(density * 100))
            let x = (0..<(m * k)).map { _ in r.next() }
            var state: UInt64 = 12345
            let w = (0..<(n * k)).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1
                let keep = Double(state >> 11) / Double(1 << 53) < density
                return keep ? r.next() : 0
            }
            let bias = (0..<n).map { _ in r.next() }
            let expected = Reference.linear(Tensor(shape: [m, k], data: x), Tensor(shape: [n, k], data: w),
                                            bias: Tensor(shape: [n], data: bias), activation: .relu)
            let sparse = SparseWeights(Tensor(shape: [n, k], data: w))
            #expect(sparse.nonzeros == w.filter { $0 != 0 }.count)
            for isa in ISA.supported where isa <= .avx2 {
                var y = [Float](repeating: .nan, count: m * n)
                x.withUnsafeBufferPointer { xp in
                    bias.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { yp in
                            SparseGEMM.linear(xp.baseAddress!, m: m, sparse, bias: bp.baseAddress!, activation: .relu,
                                              into: yp.baseAddress!, isa: isa, pool: ThreadPool(threads: 2))
                        }
                    }
                }
                for i in 0..<(m * n) {
                    #expect(abs(y[i] - expected.data[i]) <= sgemmRelativeTolerance * Float(k) + 1e-6,
                            "\(isa) \(m)x\(k)x\(n) density \(density)")
                }
            }
        }
    }
}
