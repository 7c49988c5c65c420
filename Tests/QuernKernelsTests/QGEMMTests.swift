import Testing

@testable import QuernKernels

/// Slack on top of the analytic quantization error bound (float rounding in the epilogue).
let quantizedAbsoluteSlack: Float = 1e-4

@Suite("int8 GEMM")
struct QGEMMTests {
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 3, 17), (3, 17, 5), (7, 255, 33), (17, 1000, 3),
        (64, 384, 100), (100, 33, 255), (6, 256, 16), (13, 513, 47)
    ]

    func random(_ count: Int, seed: UInt64) -> [Float] {
        var r = Rand(state: seed)
        return (0..<count).map { _ in r.next() }
    }

    /// Both weight layouts on every path: pairs (vpmaddwd) and quads (vpdpbusd, emulated
    /// with vpmaddwd where the CPU has no VNNI, so the VNNI tile's body runs here too),
    /// and quads of pair-bounded weights, which AVX2 runs with vpmaddubsw.
    @Test(
        "integer sums equal the scalar integer reference exactly, every layout and ISA",
        arguments: QuantizedWeights.Layout.allCases, ISA.supported)
    func exactIntegers(layout: QuantizedWeights.Layout, isa: ISA) {
        for (m, k, n) in Self.shapes {
            var r = Rand(state: UInt64(m * 31 + k * 7 + n))
            // Extremes included: 255 × -127 everywhere would overflow any 16-bit shortcut.
            let q = (0..<(m * k)).map { i in
                i % 5 == 0 ? UInt8(255) : UInt8(truncatingIfNeeded: Int(r.next() * 1000) & 0xFF)
            }
            let wq = (0..<(n * k)).map { i in i % 7 == 0 ? Int8(-127) : Int8(max(-127, min(127, Int(r.next() * 127)))) }
            // Pair-bounded: every K pair sums to at most 128 in magnitude, with the
            // extremes that bound allows (255 · (127 + 1) and 255 · (64 + 64) on both signs).
            let extremes: [(Int8, Int8)] = [(127, 1), (-1, -127), (64, 64), (-64, -64), (-127, 1), (0, 127)]
            var bounded = [Int8](repeating: 0, count: n * k)
            for j in 0..<n {
                for p in stride(from: 0, to: k, by: 2) {
                    let t = p / 2 + j
                    let pair =
                        t % 4 == 3 ? (Int8(Int(r.next() * 60)), Int8(Int(r.next() * 60))) : extremes[t % extremes.count]
                    bounded[j * k + p] = pair.0
                    if p + 1 < k { bounded[j * k + p + 1] = pair.1 }
                }
            }
            for values in [wq, bounded] {
                let w = QuantizedWeights(
                    values: values, scales: Array(repeating: 1, count: n), n: n, k: k, layout: layout)
                #expect(values != bounded || w.pairBounded, "\(m)x\(k)x\(n)")
                let got = QGEMM.integerSums(q, m: m, w, isa: isa)
                var expected = [Int32](repeating: 0, count: m * n)
                for i in 0..<m {
                    for j in 0..<n {
                        var s: Int32 = 0
                        for p in 0..<k { s += Int32(q[i * k + p]) * Int32(values[j * k + p]) }
                        expected[i * n + j] = s
                    }
                }
                #expect(got == expected, "\(layout) \(isa) \(m)x\(k)x\(n) pair-bounded \(w.pairBounded)")
            }
        }
    }

    /// The zmm tile's body over panel pairs (compiled with emulated zmm registers where
    /// the CPU lacks them) inside the driver: pairs split across tasks, a last odd panel,
    /// ragged columns. Integer sums are exact, every table shares AVX2's quantization,
    /// and without an activation every epilogue width does the same two products and one
    /// sum per value, so the outputs equal AVX2's bit for bit.
    @Test("wide int8 tile body (emulated zmm) in the driver equals AVX2 exactly, one and two threads")
    func wideQuadBody() {
        guard ISA.supported.contains(.avx2) else { return }
        var tables: [(String, KernelTable)] = [("avx512Emulated", .avx512Emulated)]
        if ISA.supported.contains(.vnni) { tables.append(("vnni", ISA.vnni.kernels)) }
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for (m, k, n) in Self.shapes + [
                (16, 576, 1536), (64, 200, 95), (3, 129, 80), (150, 576, 100), (301, 1536, 70)
            ] {
                let x = random(m * k, seed: UInt64(m * 3 + k)), wf = random(n * k, seed: UInt64(n + k * 5)),
                    bias = random(n, seed: 4)
                let w = QuantizedWeights(quantizing: Tensor(shape: [n, k], data: wf), layout: .quads)
                func run(_ kernels: KernelTable) -> [Float] {
                    var y = [Float](repeating: .nan, count: m * n)
                    y.withUnsafeMutableBufferPointer { yp in
                        QGEMM.linear(
                            x, m: m, w, bias: bias, activation: .none, into: yp.baseAddress!, input: nil,
                            kernels: kernels, pool: pool)
                    }
                    return y
                }
                let want = run(.avx2)
                for (name, table) in tables {
                    #expect(run(table) == want, "\(name) \(m)x\(k)x\(n) threads \(threads)")
                }
            }
        }
    }

    @Test(
        "dequantized output within the quantization error bound of fp32, every layout and ISA",
        arguments: QuantizedWeights.Layout.allCases, ISA.supported)
    func againstFP32(layout: QuantizedWeights.Layout, isa: ISA) {
        let pool = ThreadPool(threads: 2)
        for (m, k, n) in Self.shapes {
            let x = random(m * k, seed: UInt64(m + k)), wf = random(n * k, seed: UInt64(n * k + 3)),
                bias = random(n, seed: 9)
            let w = QuantizedWeights(quantizing: Tensor(shape: [n, k], data: wf), layout: layout)
            let exact = Reference.linear(
                Tensor(shape: [m, k], data: x), Tensor(shape: [n, k], data: wf),
                bias: Tensor(shape: [n], data: bias))
            var y = [Float](repeating: .nan, count: m * n)
            x.withUnsafeBufferPointer { xp in
                bias.withUnsafeBufferPointer { bp in
                    y.withUnsafeMutableBufferPointer { yp in
                        QGEMM.linear(
                            xp.baseAddress!, m: m, w, bias: bp.baseAddress!, into: yp.baseAddress!, isa: isa, pool: pool
                        )
                    }
                }
            }
            for i in 0..<m {
                let row = x[(i * k)..<((i + 1) * k)]
                let sx = (max(row.max()!, 0) - min(row.min()!, 0)) / 255
                for j in 0..<n {
                    let sw = w.scales[j]
                    var bound: Float = 0
                    for p in 0..<k {
                        bound += abs(x[i * k + p]) * sw / 2 + abs(wf[j * k + p]) * sx / 2 + sx * sw / 4
                    }
                    let err = abs(y[i * n + j] - exact.data[i * n + j])
                    #expect(
                        err <= bound * 1.01 + quantizedAbsoluteSlack,
                        "\(isa) \(m)x\(k)x\(n) [\(i),\(j)]: \(err) > \(bound)")
                }
            }
        }
    }

    @Test(
        "row quantization: every path gives identical bytes, zero is exact, values within half a step",
        arguments: ISA.supported)
    func rowQuantization(isa: ISA) {
        for (m, k) in [(1, 1), (3, 7), (5, 33), (4, 100), (2, 1000)] {
            var x = random(m * k, seed: UInt64(m * k))
            x[0] = 0
            if k > 3 { x[3] = 1e-9 }
            let fast = QGEMM.quantizeRows(x, m: m, k: k, isa: isa)
            let plain = QGEMM.quantizeRows(x, m: m, k: k, isa: .scalar)
            #expect(fast.q == plain.q && fast.scale == plain.scale && fast.zeroPoint == plain.zeroPoint)
            #expect(Int32(fast.q[0]) == fast.zeroPoint[0])  // 0.0 maps to the zero point exactly
            for i in 0..<m {
                for p in 0..<k {
                    let back = Float(Int32(fast.q[i * k + p]) - fast.zeroPoint[i]) * fast.scale[i]
                    #expect(abs(back - x[i * k + p]) <= fast.scale[i] * 0.5001)
                }
            }
        }
    }

    @Test("per-channel weight quantization is symmetric, stays in [-127, 127] and is pair-bounded")
    func weightQuantization() {
        let w = QuantizedWeights(quantizing: Tensor(shape: [3, 3], data: [1, 0, 0.25, 0.5, -1, 0.25, 0, 0, 0]))
        // Channel 0: no large pair, scale max/127. Channel 1: the pair (0.5, -1) sets the
        // scale (1.5/128) and its rounded values 43 + 85 = 128 meet the bound exactly.
        #expect(w.values == [127, 0, 32, 43, -85, 21, 0, 0, 0])
        #expect(w.scales[0] == Float(1) / 127)
        #expect(w.scales[1] == Float(1.5) / 128)
        #expect(w.scales[2] == 1)  // an all-zero channel keeps a harmless scale
        #expect(w.pairBounded)
        // Stored int8 weights may break the bound: they keep it unset (and take a kernel
        // that is exact for them), whichever pair breaks it.
        #expect(!QuantizedWeights(values: [0, 0, 65, 64], scales: [1], n: 1, k: 4).pairBounded)
        #expect(!QuantizedWeights(values: [1, 2, 3, -127, -2], scales: [1], n: 1, k: 5).pairBounded)
        #expect(QuantizedWeights(values: [127, 1, -64, -64, 127], scales: [1], n: 1, k: 5).pairBounded)

        // Rounding can push a pair one step past the bound; the larger member gives way.
        var r = Rand(state: 5)
        let data = (0..<(64 * 50)).map { _ in r.next() }
        let many = QuantizedWeights(quantizing: Tensor(shape: [64, 50], data: data))
        #expect(many.pairBounded)
        for j in 0..<64 {
            for p in 0..<50 {
                let back = Float(many.values[j * 50 + p]) * many.scales[j]
                #expect(abs(back - data[j * 50 + p]) <= many.scales[j] * 1.5001)
            }
        }
    }
}

@Suite("static int8 (calibrated input range)")
struct StaticQuantizationTests {
    @Test("every path gives identical outputs, within the quantization bound of fp32 inside the range")
    func staticRange() {
        let (m, k, n) = (37, 100, 21)
        var r = Rand(state: 77)
        let x = (0..<(m * k)).map { _ in r.next() }, wf = (0..<(n * k)).map { _ in r.next() }
        let w = QuantizedWeights(quantizing: Tensor(shape: [n, k], data: wf))
        let range = QGEMM.InputRange(lo: -1, hi: 1)
        #expect(range.zeroPoint == 128 || range.zeroPoint == 127)
        let exact = Reference.linear(Tensor(shape: [m, k], data: x), Tensor(shape: [n, k], data: wf), bias: nil)
        let outputs = Self.everyPath(x, m: m, w, range)
        #expect(outputs.allSatisfy { $0 == outputs[0] })
        for i in 0..<m {
            for j in 0..<n {
                var bound: Float = 0
                for p in 0..<k {
                    bound +=
                        abs(x[i * k + p]) * w.scales[j] / 2 + abs(wf[j * k + p]) * range.scale / 2 + range.scale
                        * w.scales[j] / 4
                }
                #expect(abs(outputs[0][i * n + j] - exact.data[i * n + j]) <= bound * 1.01 + quantizedAbsoluteSlack)
            }
        }
    }

    @Test(
        "smoothing (x / s into the quantizer, W · s into the weights) keeps the product, and tames an outlier channel")
    func smoothedRange() {
        let (m, k, n) = (24, 64, 16)
        var r = Rand(state: 91)
        // Channel 5 carries values 40× the others': one static range for all channels
        // leaves the rest a few steps of the grid.
        let x = (0..<(m * k)).map { i in r.next() * (i % k == 5 ? 40 : 1) }
        let wf = (0..<(n * k)).map { _ in r.next() }
        let exact = Reference.linear(Tensor(shape: [m, k], data: x), Tensor(shape: [n, k], data: wf), bias: nil)
        func error(_ smoothing: [Float]?) -> (Float, [[Float]]) {
            let s = smoothing ?? [Float](repeating: 1, count: k)
            let scaled = (0..<(n * k)).map { wf[$0] * s[$0 % k] }
            let w = QuantizedWeights(quantizing: Tensor(shape: [n, k], data: scaled))
            let divided = (0..<(m * k)).map { x[$0] / s[$0 % k] }
            let range = QGEMM.InputRange(lo: divided.min()!, hi: divided.max()!, smoothing: smoothing)
            let outputs = Self.everyPath(x, m: m, w, range)
            let worst = zip(outputs[0], exact.data).map { abs($0 - $1) }.max()!
            return (worst, outputs)
        }
        let (plain, _) = error(nil)
        // SmoothQuant's α = 0.5: the outlier's range is split evenly between x and W.
        let smoothing = (0..<k).map { p -> Float in p == 5 ? Float(40).squareRoot() : 1 }
        let (smoothed, outputs) = error(smoothing)
        #expect(outputs.allSatisfy { $0 == outputs[0] }, "every ISA path gives the same bytes")
        #expect(smoothed < plain / 2, "smoothed worst error \(smoothed), plain \(plain)")
    }

    /// `x · wᵀ` through every supported ISA with a static range.
    static func everyPath(_ x: [Float], m: Int, _ w: QuantizedWeights, _ range: QGEMM.InputRange) -> [[Float]] {
        ISA.supported.map { isa in
            var y = [Float](repeating: .nan, count: m * w.n)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    QGEMM.linear(
                        xp.baseAddress!, m: m, w, bias: nil, into: yp.baseAddress!, input: range, isa: isa,
                        pool: ThreadPool(threads: 2))
                }
            }
            return y
        }
    }
}
