import Testing

@testable import QuernKernels

/// Float GEMMs + vector exp against the Double reference, for values of order 1.
let attentionTolerance: Float = 2e-5

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
        for isa in ISA.supported {
            for pool in [ThreadPool.single, ThreadPool(threads: 2)] {
                var out = [Float](repeating: .nan, count: offsets.last! * hidden)
                qkv.withUnsafeBufferPointer { q in
                    out.withUnsafeMutableBufferPointer { o in
                        Attention.sequences(
                            qkv: q.baseAddress!, offsets: offsets, heads: heads, headDim: headDim,
                            into: o.baseAddress!, isa: isa, pool: pool)
                    }
                }
                let worst = zip(out, expected).map { abs($0 - $1) }.max() ?? .nan
                #expect(worst <= attentionTolerance, "\(isa) \(p) threads \(pool.threads): worst error \(worst)")
            }
        }
    }
}
