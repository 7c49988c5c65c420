import Foundation
import Testing

@testable import QuernKernels

/// Float GEMMs + vector exp against the Double reference, for values of order 1.
let attentionTolerance: Float = 2e-5
/// bfloat16 operands (8 significant bits, relative rounding 2⁻⁹) in Q·Kᵀ and P·V, fp32
/// sums, for values of order 1 and heads of up to 64.
let bf16AttentionTolerance: Float = 2e-2

@Suite("attention")
struct AttentionTests {
    @Test(
        "unpadded packed sequences against the reference on each sequence alone",
        arguments: [(1, 2, 8), (3, 4, 16), (12, 12, 32), (5, 2, 12), (4, 2, 64), (3, 1, 24)])
    func sequences(_ p: (Int, Int, Int)) {
        let (count, heads, headDim) = p
        var r = Rand(state: UInt64(count * 100 + headDim))
        let lengths = (0..<count).map { [1, 7, 8, 9, 33, 130][($0 * 5 + heads) % 6] }
        var offsets = [0]
        for l in lengths { offsets.append(offsets.last! + l) }
        let row = 3 * heads * headDim, hidden = heads * headDim
        let qkv = (0..<(offsets.last! * row)).map { _ in r.next() * 2 }
        var expected: [Float] = []
        for (i, l) in lengths.enumerated() {
            expected += Reference.attention(
                qkv: Array(qkv[(offsets[i] * row)..<(offsets[i + 1] * row)]), batch: 1, seq: l,
                heads: heads, headDim: headDim, keep: [UInt8](repeating: 1, count: l))
        }
        // Every path, the emulated zmm bodies, and each one's bf16 kernel where it has one.
        let tables =
            ISA.supported.map { ("\($0)", $0.kernels) }
            + (ISA.supported.contains(.avx2) ? [("avx512Emulated", KernelTable.avx512Emulated)] : [])
        for (name, table) in tables {
            for bf16 in [false, true] where !bf16 || table.attentionBF16 != nil {
                for pool in [ThreadPool.single, ThreadPool(threads: 2)] {
                    var out = [Float](repeating: .nan, count: offsets.last! * hidden)
                    qkv.withUnsafeBufferPointer { q in
                        out.withUnsafeMutableBufferPointer { o in
                            Attention.sequences(
                                qkv: q.baseAddress!, offsets: offsets, heads: heads, headDim: headDim,
                                into: o.baseAddress!, bf16: bf16, kernels: table, pool: pool)
                        }
                    }
                    let worst = zip(out, expected).map { abs($0 - $1) }.max() ?? .nan
                    let tolerance = bf16 ? bf16AttentionTolerance : attentionTolerance
                    #expect(
                        worst <= tolerance, "\(name) bf16 \(bf16) \(p) threads \(pool.threads): worst error \(worst)")
                }
            }
        }
    }

    @Test(
        "cached attention: every path agrees with the scalar twin (GQA, a window, ragged and long heads) and with a plain softmax",
        arguments: KernelTableTests.paths)
    func cachedAgreesWithTwin(path: KernelTableTests.Path) {
        var seed: UInt64 = 7
        func values(_ n: Int) -> [Float] {
            (0..<n).map { _ in
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: seed >> 11) % 2_000_000) / 1_000_000
            }
        }
        for (heads, kvHeads, hd, window) in [
            (4, 2, 16, nil), (9, 3, 64, nil), (2, 1, 12, nil), (2, 2, 136, nil), (4, 4, 32, 5), (8, 2, 128, nil),
            (3, 1, 40, 7), (2, 1, 96, nil), (14, 2, 64, nil), (6, 1, 24, 9)
        ]
            as [(Int, Int, Int, Int?)]
        {
            let positions = 23, rows = 4, first = positions - rows
            let keys = values(positions * kvHeads * hd), vals = values(positions * kvHeads * hd)
            let q = values(rows * heads * hd)
            var got = [Float](repeating: 0, count: rows * heads * hd), want = got
            var scores = [Float](repeating: 0, count: Attention.cachedScratch(positions: positions))
            for (table, into) in [(path.table, 0), (KernelTable.scalar, 1)] {
                var out = [Float](repeating: 0, count: rows * heads * hd)
                Attention.cached(
                    q: q, qStride: heads * hd, rows: rows, first: first, keys: keys, values: vals, heads: heads,
                    kvHeads: kvHeads, headDim: hd, window: window, scale: 0.25, into: &out, outStride: heads * hd,
                    scores: &scores, kernels: table)
                if into == 0 { got = out } else { want = out }
            }
            // The plain definition for the last row and first head.
            let pos = positions - 1, start = window.map { max(0, pos - $0 + 1) } ?? 0
            let qRow = (rows - 1) * heads * hd
            var s: [Double] = []
            for j in start...pos {
                var dot = 0.0
                for d in 0..<hd { dot += Double(q[qRow + d]) * Double(keys[j * kvHeads * hd + d]) }
                s.append(dot * 0.25)
            }
            let top = s.max()!
            let e = s.map { Foundation.exp($0 - top) }
            let total = e.reduce(0, +)
            for d in 0..<hd {
                var plain = 0.0
                for (j, w) in zip(start...pos, e) { plain += w / total * Double(vals[j * kvHeads * hd + d]) }
                #expect(abs(Double(want[qRow + d]) - plain) < 1e-5)
            }
            let worst = zip(got, want).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "\(path) heads \(heads)/\(kvHeads) hd \(hd): \(worst)")
        }
    }
}
