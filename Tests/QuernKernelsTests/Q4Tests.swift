import CKernels
import Testing

@testable import QuernKernels

@Suite("4-bit weights")
struct Q4Tests {
    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: s >> 11) % 2_000_000) / 1_000_000
        }
    }

    @Test("every path's panel expansion equals the scalar twin bit for bit", arguments: KernelTableTests.paths)
    func panelExpansion(path: KernelTableTests.Path) {
        let w = Q4Weights(quantizing: Tensor(shape: [37, 100], data: Self.values(3700, seed: 1)))
        for j in 0..<w.panelCount {
            for (pc, count) in [(0, 100), (32, 64), (96, 4)] {
                var a = [Float](repeating: .nan, count: count * 16), b = a
                a.withUnsafeMutableBufferPointer {
                    _ = w.panel(j, rows: pc, count, scratch: $0.baseAddress!, kernels: .scalar)
                }
                b.withUnsafeMutableBufferPointer {
                    _ = w.panel(j, rows: pc, count, scratch: $0.baseAddress!, kernels: path.table)
                }
                #expect(a.elementsEqual(b), "\(path) panel \(j) rows \(pc)..<\(pc + count)")
            }
        }
    }

    @Test("a 4-bit product is exactly the fp32 product with the dequantized weights, on every path and M")
    func productEqualsDequantized() {
        for (n, k) in [(16, 32), (45, 100), (70, 300), (33, 513)] {
            let w = Q4Weights(quantizing: Tensor(shape: [n, k], data: Self.values(n * k, seed: UInt64(n * k))))
            let dense = PackedWeights(w.dequantized())
            let bias = Self.values(n, seed: 9)
            for m in [1, 5, 16, 64, 130] {
                let x = Self.values(m * k, seed: UInt64(m))
                for path in KernelTableTests.paths {
                    var got = [Float](repeating: 0, count: m * n), want = got
                    SGEMM.linear(
                        x, m: m, w, bias: bias, activation: .relu, into: &got, kernels: path.table, pool: .shared)
                    SGEMM.linear(
                        x, m: m, dense, bias: bias, activation: .relu, into: &want, kernels: path.table, pool: .shared)
                    let differing = zip(got, want).filter { $0 != $1 }.count
                    #expect(differing == 0, "\(path) \(m)×\(k)·\(n): \(differing) values differ")
                }
            }
        }
    }

    @Test("quantization keeps each weight within half a step of its group's scale; groups store what they were given")
    func quantization() {
        let data = Self.values(20 * 70, seed: 5)
        let w = Q4Weights(quantizing: Tensor(shape: [20, 70], data: data))
        let back = w.dequantized().data
        for row in 0..<20 {
            for g in 0..<3 {
                let lo = row * 70 + g * 32, hi = row * 70 + min(70, (g + 1) * 32)
                let group = data[lo..<hi]
                let step = (group.max()! - group.min()!) / 15
                for i in lo..<hi { #expect(abs(back[i] - data[i]) <= step / 2 * 1.0001) }
            }
        }
        // From stored groups: Q4_0's offset −8·scale gives scale·(q − 8) exactly.
        let stored = Q4Weights(n: 3, k: 40) { row, g in
            let width = g == 0 ? 32 : 8
            return (Float(row + 1) * 0.125, -8 * Float(row + 1) * 0.125, (0..<width).map { UInt8(($0 + row) % 16) })
        }
        let d = stored.dequantized().data
        for row in 0..<3 {
            for p in 0..<40 {
                let q = Float((p % 32 + row) % 16)
                #expect(d[row * 40 + p] == Float(row + 1) * 0.125 * (q - 8))
            }
        }
    }
}
