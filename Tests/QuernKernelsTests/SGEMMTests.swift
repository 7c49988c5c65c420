import CKernels
import Foundation
import Testing

@testable import QuernKernels

/// fp32 kernels sum in a different order than the Double-accumulating reference: allow
/// this much relative error against Σ|x·w| for each output (a few ulps per term).
let sgemmRelativeTolerance: Float = 2e-6
/// GELU/tanh/sigmoid through libm in float: absolute slack on top.
let activationAbsoluteTolerance: Float = 2e-6

struct Rand {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
    }
}

@Suite("SGEMM against the reference")
struct SGEMMTests {
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 3, 17), (3, 17, 5), (7, 255, 33), (17, 1000, 3),
        (64, 384, 100), (100, 33, 255), (6, 256, 16), (13, 513, 47), (200, 70, 19)
    ]

    func check(
        m: Int, k: Int, n: Int, isa: ISA, activation: Activation, withBias: Bool, pool: ThreadPool,
        kernels: KernelTable? = nil
    ) {
        var r = Rand(state: UInt64(m * 1_000_003 + k * 1009 + n))
        let x = (0..<(m * k)).map { _ in r.next() }
        let w = (0..<(n * k)).map { _ in r.next() }
        let bias = (0..<n).map { _ in r.next() }
        let xt = Tensor(shape: [m, k], data: x), wt = Tensor(shape: [n, k], data: w)
        let expected = Reference.linear(
            xt, wt, bias: withBias ? Tensor(shape: [n], data: bias) : nil, activation: activation)
        let packed = PackedWeights(wt)
        var y = [Float](repeating: .nan, count: m * n)
        x.withUnsafeBufferPointer { xp in
            bias.withUnsafeBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    SGEMM.linear(
                        xp.baseAddress!, m: m, packed, bias: withBias ? bp.baseAddress! : nil,
                        activation: activation, into: yp.baseAddress!, kernels: kernels ?? isa.kernels, pool: pool)
                }
            }
        }
        var worst: Float = 0
        for i in 0..<m {
            for j in 0..<n {
                var magnitude: Float = withBias ? abs(bias[j]) : 0
                for p in 0..<k { magnitude += abs(x[i * k + p] * w[j * k + p]) }
                let err = abs(y[i * n + j] - expected.data[i * n + j])
                let allowed = sgemmRelativeTolerance * magnitude + activationAbsoluteTolerance
                worst = max(worst, err / allowed)
            }
        }
        #expect(worst <= 1, "\(isa) \(m)x\(k)x\(n) \(activation) bias=\(withBias): error \(worst)× the tolerance")
    }

    @Test("every supported ISA, odd shapes, one and two threads", arguments: ISA.supported)
    func allShapes(isa: ISA) {
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for (m, k, n) in Self.shapes {
                check(m: m, k: k, n: n, isa: isa, activation: .none, withBias: false, pool: pool)
            }
        }
    }

    /// The AVX-512 tile's body compiled with each zmm as two ymm halves: the same
    /// indexing, two-panel pairing and edge handling as the real one, runnable here.
    @Test("AVX-512 tile body (emulated zmm), odd shapes, one and two threads")
    func avx512Body() {
        guard ISA.supported.contains(.avx2) else { return }
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for (m, k, n) in Self.shapes + [(130, 384, 1536), (9, 600, 50)] {
                check(
                    m: m, k: k, n: n, isa: .avx2, activation: .none, withBias: false, pool: pool,
                    kernels: .avx512Emulated)
            }
            check(
                m: 37, k: 300, n: 70, isa: .avx2, activation: .gelu, withBias: true, pool: pool,
                kernels: .avx512Emulated)
        }
    }

    @Test("fused bias and activations", arguments: [Activation.none, .relu, .gelu, .tanh, .sigmoid])
    func epilogues(activation: Activation) {
        let pool = ThreadPool(threads: 2)
        for isa in ISA.supported {
            for (m, k, n) in [(5, 40, 37), (64, 96, 48)] {
                check(m: m, k: k, n: n, isa: isa, activation: activation, withBias: true, pool: pool)
            }
        }
    }

    /// Each vector width's GELU epilogue (ymm, zmm where the CPU has it, emulated zmm) over
    /// [-12, 12] in steps of 1/1024, against the erfc form in Double: relative error, so
    /// the small values of the negative tail count too.
    @Test("vector GELU within 1e-6 relative of erfc in Double (plus x² rounding), negative tail included")
    func vectorGELU() {
        guard ISA.supported.contains(.avx2) else { return }
        var widths: [(String, KernelTable.BiasActivation)] = [
            ("ymm", quern_bias_act_avx2), ("emulated zmm", quern_bias_act_avx512_emulated)
        ]
        if ISA.supported.contains(.avx512) { widths.append(("zmm", quern_bias_act_avx512)) }
        let xs = (-12 * 1024...12 * 1024).map { Float($0) / 1024 }
        func exact(_ x: Float) -> Double { 0.5 * Double(x) * erfc(-Double(x) / 2.0.squareRoot()) }
        for (name, epilogue) in widths {
            var y = xs
            y.withUnsafeMutableBufferPointer { epilogue($0.baseAddress!, xs.count, 1, xs.count, nil, QUERN_ACT_GELU) }
            // Allowed: 1e-6 relative, plus what rounding x²/2 to float costs e^{−x²/2} in
            // any form (about 6e-8 · x²/2 relative, so 2e-6 at −8 and 4e-6 at −12).
            var worst = 0.0, at: Float = 0
            for (x, got) in zip(xs, y) where abs(exact(x)) > 1e-30 {
                let rel = abs(Double(got) - exact(x)) / abs(exact(x))
                let ratio = rel / (1e-6 + 1.5e-7 * Double(x * x))
                if ratio > worst { (worst, at) = (ratio, x) }
            }
            #expect(worst <= 1, "\(name) gelu(\(at)): \(worst)× the allowed relative error")
        }
    }

    @Test("fast path equals its scalar twin within tolerance on MiniLM-sized shapes")
    func fastEqualsScalar() {
        guard ISA.supported.contains(.avx2) else { return }
        let pool = ThreadPool(threads: 2)
        check(m: 130, k: 384, n: 1536, isa: .avx2, activation: .gelu, withBias: true, pool: pool)
    }

    @Test("K = 0 gives the bias")
    func emptyK() {
        let packed = PackedWeights([], n: 3, k: 0)
        var y = [Float](repeating: .nan, count: 6)
        let bias: [Float] = [1, 2, 3]
        let x: [Float] = [0]
        x.withUnsafeBufferPointer { xp in
            bias.withUnsafeBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    SGEMM.linear(xp.baseAddress!, m: 2, packed, bias: bp.baseAddress!, into: yp.baseAddress!)
                }
            }
        }
        #expect(y == [1, 2, 3, 1, 2, 3])
    }
}

@Suite("ThreadPool")
struct ThreadPoolTests {
    final class Counts: @unchecked Sendable {
        var hits: [Int]
        init(_ n: Int) { hits = Array(repeating: 0, count: n) }
    }

    @Test("each index runs exactly once, over many back-to-back calls")
    func exactlyOnce() {
        let pool = ThreadPool(threads: 3)
        for n in [1, 2, 3, 7, 64, 1000] {
            for _ in 0..<200 {
                let counts = Counts(n)
                counts.hits.withUnsafeMutableBufferPointer { hits in
                    let h = hits
                    pool.parallelFor(n) { i in h[i] += 1 }  // distinct indices: no data race
                }
                #expect(counts.hits.allSatisfy { $0 == 1 })
            }
        }
    }

    @Test("workers that went to sleep wake up for the next call")
    func wakesSleepers() async throws {
        let pool = ThreadPool(threads: 2)
        for _ in 0..<3 {
            try await Task.sleep(for: .milliseconds(60))  // longer than the spin phase
            let counts = Counts(8)
            counts.hits.withUnsafeMutableBufferPointer { hits in
                let h = hits
                pool.parallelFor(8) { i in h[i] += 1 }
            }
            #expect(counts.hits == Array(repeating: 1, count: 8))
        }
    }
}

@Suite("vector activations")
struct ActivationTests {
    /// The erfc fit is good to 1.2e-7 relative; float rounding adds a few ulps.
    static let geluRelativeTolerance: Float = 1e-6
    /// Far left tail: rounding x/√2 to float alone moves erfc by 2z²·ε relative (≈ 1e-5 at
    /// x = −12), on values below 1e-20; an absolute floor far under any activation's scale.
    static let geluAbsoluteTolerance: Double = 1e-9
    /// tanh and sigmoid: exp is good to about 1 ulp, the division and subtraction add a
    /// few; the absolute floor covers sigmoid's far left tail.
    static let tanhSigmoidRelativeTolerance: Double = 1e-6
    static let tanhSigmoidAbsoluteTolerance: Double = 1e-12

    /// Runs `inputs` through the epilogue, 16 columns a row so the vector code is used
    /// (an identity weight matrix makes the GEMM exact).
    func apply(_ activation: Activation, to inputs: [Float], isa: ISA) -> [Float] {
        let width = 16
        var x = inputs
        while x.count % width != 0 { x.append(0) }
        let identity = PackedWeights((0..<(width * width)).map { $0 / width == $0 % width ? 1 : 0 }, n: width, k: width)
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                SGEMM.linear(
                    xp.baseAddress!, m: x.count / width, identity, bias: nil, activation: activation,
                    into: yp.baseAddress!, isa: isa, pool: ThreadPool(threads: 1))
            }
        }
        return Array(y.prefix(inputs.count))
    }

    @Test("exact GELU against erf in Double over [-12, 12]", arguments: ISA.supported)
    func gelu(isa: ISA) {
        let inputs = (0...2400).map { Float($0 - 1200) / 100 }
        for (x, got) in zip(inputs, apply(.gelu, to: inputs, isa: isa)) {
            let exact = Double(x) * 0.5 * erfc(-Double(x) / 2.0.squareRoot())
            let err = abs(Double(got) - exact)
            #expect(
                err <= Double(Self.geluRelativeTolerance) * abs(exact) + Self.geluAbsoluteTolerance,
                "gelu(\(x)) = \(got), exact \(exact)")
        }
    }

    @Test("tanh and sigmoid against Double over [-30, 30], tiny inputs included", arguments: ISA.supported)
    func tanhSigmoid(isa: ISA) {
        let inputs = (0...6000).map { Float($0 - 3000) / 100 } + [1e-7, -3e-5, 0.6249, 0.6251, -0.625, 1e-30]
        let th = apply(.tanh, to: inputs, isa: isa), sg = apply(.sigmoid, to: inputs, isa: isa)
        for (i, x) in inputs.enumerated() {
            let t = Foundation.tanh(Double(x)), s = 1 / (1 + Foundation.exp(-Double(x)))
            #expect(
                abs(Double(th[i]) - t) <= Self.tanhSigmoidRelativeTolerance * abs(t)
                    + Self.tanhSigmoidAbsoluteTolerance,
                "tanh(\(x)) = \(th[i]), exact \(t)")
            #expect(
                abs(Double(sg[i]) - s) <= Self.tanhSigmoidRelativeTolerance * abs(s)
                    + Self.tanhSigmoidAbsoluteTolerance,
                "sigmoid(\(x)) = \(sg[i]), exact \(s)")
        }
    }
}
