import Testing

@testable import QuernKernels

/// Float two-pass layer norm against the Double reference, relative to the output scale.
let layerNormTolerance: Float = 2e-5
/// Vector exp (about 1 ulp) and float sums against the Double reference.
let softmaxTolerance: Float = 2e-6

@Suite("layer norm and softmax")
struct NormsTests {
    static let widths = [1, 3, 8, 17, 384, 1000]

    @Test("layer norm: every path against the reference", arguments: ISA.supported)
    func layerNorm(isa: ISA) {
        for n in Self.widths {
            var r = Rand(state: UInt64(n))
            let rows = 5
            // An offset of 100 (σ ≈ 1.7) tests the two-pass variance: one pass would cancel.
            let x = (0..<(rows * n)).map { _ in r.next() * 3 + 100 }
            let gamma = (0..<n).map { _ in r.next() + 1.5 }, beta = (0..<n).map { _ in r.next() }
            let expected = Reference.layerNorm(Tensor(shape: [rows, n], data: x), gamma: gamma, beta: beta, eps: 1e-12)
            var y = [Float](repeating: .nan, count: rows * n)
            x.withUnsafeBufferPointer { xp in
                gamma.withUnsafeBufferPointer { g in
                    beta.withUnsafeBufferPointer { b in
                        y.withUnsafeMutableBufferPointer { yp in
                            Norms.layerNorm(
                                xp.baseAddress!, rows: rows, n: n, gamma: g.baseAddress, beta: b.baseAddress,
                                eps: 1e-12, into: yp.baseAddress!, isa: isa)
                        }
                    }
                }
            }
            for i in 0..<(rows * n) {
                #expect(
                    abs(y[i] - expected.data[i]) <= layerNormTolerance * (1 + abs(expected.data[i])), "n=\(n) i=\(i)")
            }
        }
    }

    @Test("residual + layer norm: every path against add-then-reference", arguments: ISA.supported)
    func residualLayerNorm(isa: ISA) {
        for n in Self.widths {
            var r = Rand(state: UInt64(n) + 7)
            let rows = 5
            var x = (0..<(rows * n)).map { _ in r.next() * 3 + 50 }
            let d = (0..<(rows * n)).map { _ in r.next() * 3 + 50 }
            let gamma = (0..<n).map { _ in r.next() + 1.5 }, beta = (0..<n).map { _ in r.next() }
            let expected = Reference.layerNorm(
                Tensor(shape: [rows, n], data: zip(x, d).map { $0 + $1 }), gamma: gamma, beta: beta, eps: 1e-12)
            x.withUnsafeMutableBufferPointer { xp in
                d.withUnsafeBufferPointer { dp in
                    Norms.residualLayerNorm(
                        xp.baseAddress!, adding: dp.baseAddress!, rows: rows, n: n, gamma: gamma, beta: beta,
                        eps: 1e-12, isa: isa)
                }
            }
            let worst = (0..<(rows * n)).map { abs(x[$0] - expected.data[$0]) / (1 + abs(expected.data[$0])) }.max()!
            #expect(worst <= layerNormTolerance, "n=\(n): worst relative error \(worst)")
        }
    }

    @Test("softmax: every path, large logits, masks", arguments: ISA.supported)
    func softmax(isa: ISA) {
        for n in Self.widths {
            var r = Rand(state: UInt64(n) + 99)
            let rows = 4
            var x = (0..<(rows * n)).map { _ in r.next() * 20 }
            x[0] = 1000  // would overflow exp without the max shift
            for masked in [false, true] {
                let keep: [Bool]? = masked ? (0..<n).map { $0 % 3 != 1 } : nil
                let expected = Reference.softmax(Tensor(shape: [rows, n], data: x), keep: keep)
                var y = x
                let flags = keep?.map { UInt8($0 ? 1 : 0) }
                y.withUnsafeMutableBufferPointer { yp in
                    if let flags {
                        flags.withUnsafeBufferPointer {
                            Norms.softmax(yp.baseAddress!, rows: rows, n: n, keep: $0.baseAddress, isa: isa)
                        }
                    } else {
                        Norms.softmax(yp.baseAddress!, rows: rows, n: n, isa: isa)
                    }
                }
                for i in 0..<(rows * n) {
                    #expect(abs(y[i] - expected.data[i]) <= softmaxTolerance, "n=\(n) masked=\(masked) i=\(i)")
                }
            }
        }
    }

    @Test("norms split across a pool equal the norms of one thread, bit for bit, ragged blocks included")
    func pooled() {
        let pool = ThreadPool(threads: 2)
        for (rows, n) in [(1, 384), (7, 3), (301, 384), (1000, 32)] {
            var r = Rand(state: UInt64(rows + n))
            let x = (0..<(rows * n)).map { _ in r.next() * 3 }, d = (0..<(rows * n)).map { _ in r.next() }
            let gamma = (0..<n).map { _ in r.next() + 1.5 }, beta = (0..<n).map { _ in r.next() }
            func run(_ pool: ThreadPool) -> ([Float], [Float]) {
                var y = [Float](repeating: .nan, count: rows * n), z = x
                Norms.layerNorm(x, rows: rows, n: n, gamma: gamma, beta: beta, eps: 1e-12, into: &y, pool: pool)
                Norms.residualLayerNorm(
                    &z, adding: d, rows: rows, n: n, gamma: gamma, beta: beta, eps: 1e-12, pool: pool)
                return (y, z)
            }
            let (one, two) = (run(.single), run(pool))
            #expect(one.0 == two.0 && one.1 == two.1, "\(rows)x\(n)")
        }
    }

    @Test("a row with every position masked becomes zeros")
    func allMasked() {
        var x: [Float] = [1, 2, 3]
        let keep: [UInt8] = [0, 0, 0]
        x.withUnsafeMutableBufferPointer { xp in
            keep.withUnsafeBufferPointer { Norms.softmax(xp.baseAddress!, rows: 1, n: 3, keep: $0.baseAddress) }
        }
        #expect(x == [0, 0, 0])
    }
}
