import CKernels
import Testing

@testable import QuernKernels

@Suite("sparse GEMM")
struct SparseTests {
    @Test(
        "CSR GEMM against the dense reference, densities 0 to 1, every path",
        arguments: [0.0, 0.05, 0.2, 0.5, 1.0])
    func csr(density: Double) {
        // Shapes reach: the scalar kernel (m < 16 rows), zero-padded blocks (63, 20, 100), K in
        // several panels with a partial last one, and output rows split into slices (100 × 200).
        for (m, k, n) in [(1, 5, 3), (63, 40, 17), (64, 384, 96), (130, 100, 33), (20, 130, 70), (100, 70, 200)] {
            var r = Rand(state: UInt64(m * k * n) + UInt64(density * 100))
            let x = (0..<(m * k)).map { _ in r.next() }
            var state: UInt64 = 12345
            let w = (0..<(n * k)).map { _ -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1
                let keep = Double(state >> 11) / Double(1 << 53) < density
                return keep ? r.next() : 0
            }
            let bias = (0..<n).map { _ in r.next() }
            let expected = Reference.linear(
                Tensor(shape: [m, k], data: x), Tensor(shape: [n, k], data: w),
                bias: Tensor(shape: [n], data: bias), activation: .relu)
            let sparse = SparseWeights(Tensor(shape: [n, k], data: w))
            #expect(sparse.nonzeros == w.filter { $0 != 0 }.count)
            for isa in ISA.supported {
                let y = linearOutputs(x, m: m, n: n, bias: bias) {
                    SparseGEMM.linear(
                        $0, m: m, sparse, bias: $1, activation: .relu, into: $2, isa: isa, pool: ThreadPool(threads: 2))
                }
                for i in 0..<(m * n) {
                    #expect(
                        abs(y[i] - expected.data[i]) <= sgemmRelativeTolerance * Float(k) + 1e-6,
                        "\(isa) \(m)x\(k)x\(n) density \(density)")
                }
            }
        }
    }
}

/// Runs a linear kernel `(x, bias, y)` on x `[m, k]` and returns y `[m, n]` (NaN-filled
/// first, so an output the kernel skips cannot pass as correct).
func linearOutputs(
    _ x: [Float], m: Int, n: Int, bias: [Float],
    _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
) -> [Float] {
    var y = [Float](repeating: .nan, count: m * n)
    x.withUnsafeBufferPointer { xp in
        bias.withUnsafeBufferPointer { bp in
            y.withUnsafeMutableBufferPointer { body(xp.baseAddress!, bp.baseAddress!, $0.baseAddress!) }
        }
    }
    return y
}

@Suite("block-sparse int8 GEMM")
struct BlockSparseTests {
    @Test(
        "1×4 block-sparse int8 equals dense int8 bit for bit, every path",
        arguments: [0.0, 0.1, 0.2, 0.5, 1.0])
    func equalsDense(blockDensity: Double) {
        for (m, k, n) in [(1, 5, 3), (63, 40, 17), (64, 384, 96), (130, 101, 33), (20, 70, 30)] {
            var r = Rand(state: UInt64(m + k + n) + UInt64(blockDensity * 1000))
            let x = (0..<(m * k)).map { _ in r.next() }
            var state: UInt64 = 99
            var w = [Float](repeating: 0, count: n * k)
            for row in 0..<n {
                for g in 0..<((k + 3) / 4) {
                    state = state &* 6_364_136_223_846_793_005 &+ 1
                    guard Double(state >> 11) / Double(1 << 53) < blockDensity else { continue }
                    for t in 0..<4 where 4 * g + t < k { w[row * k + 4 * g + t] = r.next() }
                }
            }
            let bias = (0..<n).map { _ in r.next() }
            let quantized = QuantizedWeights(quantizing: Tensor(shape: [n, k], data: w))
            let sparse = BlockSparseWeights(quantized)
            for isa in ISA.supported {
                let dense = linearOutputs(x, m: m, n: n, bias: bias) {
                    QGEMM.linear(
                        $0, m: m, quantized, bias: $1, activation: .gelu, into: $2, isa: isa,
                        pool: ThreadPool(threads: 2))
                }
                let got = linearOutputs(x, m: m, n: n, bias: bias) {
                    SparseQGEMM.linear(
                        $0, m: m, sparse, bias: $1, activation: .gelu, into: $2, isa: isa, pool: ThreadPool(threads: 2))
                }
                #expect(got == dense, "\(isa) \(m)x\(k)x\(n) block density \(blockDensity)")
            }
        }
    }
}

@Suite("CSR int8 GEMM")
struct SparseQuantizedTests {
    @Test(
        "unstructured sparse int8 equals dense int8 bit for bit, every path, odd rows included",
        arguments: [0.0, 0.05, 0.2, 0.5, 1.0])
    func equalsDense(density: Double) {
        for (m, k, n) in [(1, 5, 3), (63, 40, 17), (64, 384, 96), (130, 101, 33), (65, 1, 7), (20, 70, 30)] {
            var r = Rand(state: UInt64(m * 3 + k + n) + UInt64(density * 1000))
            let x = (0..<(m * k)).map { _ in r.next() }
            var state: UInt64 = 7
            let w = (0..<(n * k)).map { _ -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1
                return Double(state >> 11) / Double(1 << 53) < density ? r.next() : 0
            }
            let bias = (0..<n).map { _ in r.next() }
            let quantized = QuantizedWeights(quantizing: Tensor(shape: [n, k], data: w))
            let sparse = SparseQuantizedWeights(quantized)
            #expect(sparse.nonzeros == quantized.values.filter { $0 != 0 }.count)
            for isa in ISA.supported {
                let dense = linearOutputs(x, m: m, n: n, bias: bias) {
                    QGEMM.linear(
                        $0, m: m, quantized, bias: $1, activation: .relu, into: $2, isa: isa,
                        pool: ThreadPool(threads: 2))
                }
                let got = linearOutputs(x, m: m, n: n, bias: bias) {
                    SparseQGEMM.linear(
                        $0, m: m, sparse, bias: $1, activation: .relu, into: $2, isa: isa, pool: ThreadPool(threads: 2))
                }
                #expect(got == dense, "\(isa) \(m)x\(k)x\(n) density \(density)")
            }
        }
    }
}

@Suite("layout helpers")
struct LayoutTests {
    @Test("the AVX2 transpose equals the scalar one on odd shapes")
    func transpose() {
        guard ISA.supported.contains(.avx2) else { return }
        for (rows, cols) in [(1, 1), (7, 9), (8, 8), (17, 33), (64, 384), (100, 3)] {
            var r = Rand(state: UInt64(rows * cols))
            let a = (0..<(rows * cols)).map { _ in r.next() }
            var fast = [Float](repeating: .nan, count: rows * cols), plain = fast
            a.withUnsafeBufferPointer { ap in
                fast.withUnsafeMutableBufferPointer {
                    quern_transpose_f32_avx2(ap.baseAddress!, cols, rows, cols, $0.baseAddress!, rows)
                }
                plain.withUnsafeMutableBufferPointer {
                    quern_transpose_f32_scalar(ap.baseAddress!, cols, rows, cols, $0.baseAddress!, rows)
                }
            }
            #expect(fast == plain, "\(rows)x\(cols)")
            #expect(plain[0] == a[0] && plain[rows * cols - 1] == a[rows * cols - 1])
            if rows > 1 && cols > 1 { #expect(plain[1] == a[cols]) }
        }
    }
}
