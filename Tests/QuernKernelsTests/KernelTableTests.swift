import CKernels
import Testing

@testable import QuernKernels

/// One table of kernels per path: each holds the kernels that path is meant to run
/// (written out here a second time, so a slip in either place shows), and every entry
/// of every table agrees with the scalar table's twin on small inputs.
@Suite("kernel tables")
struct KernelTableTests {
    /// A table under test, named for the test report.
    struct Path: Sendable, CustomStringConvertible, CustomTestStringConvertible {
        let name: String
        let table: KernelTable
        var description: String { name }
        var testDescription: String { name }
    }

    /// Every path this CPU runs, plus the emulated AVX-512 table where AVX2 runs.
    static let paths: [Path] =
        ISA.supported.map { Path(name: $0.rawValue, table: $0.kernels) }
        + (ISA.supported.contains(.avx2) ? [Path(name: "avx512Emulated", table: .avx512Emulated)] : [])

    // MARK: which kernels

    /// The table's entries by address, so two tables compare kernel by kernel.
    static func entries(_ t: KernelTable) -> [String: UnsafeRawPointer] {
        func address<F>(_ f: F) -> UnsafeRawPointer { unsafeBitCast(f, to: UnsafeRawPointer.self) }
        var out: [String: UnsafeRawPointer] = [
            "sgemmTile": address(t.sgemmTile), "biasActivation": address(t.biasActivation),
            "q4DequantPanel": address(t.q4DequantPanel),
            "qgemmPairTile": address(t.qgemmPairTile), "qgemmQuadTile": address(t.qgemmQuadTile),
            "qgemmQuadTilePairBounded": address(t.qgemmQuadTilePairBounded),
            "quantizeRows": address(t.quantizeRows), "quantizeRowsFixed": address(t.quantizeRowsFixed),
            "dequantize": address(t.dequantize), "layerNorm": address(t.layerNorm),
            "residualLayerNorm": address(t.residualLayerNorm), "softmax": address(t.softmax),
            "attention": address(t.attention), "attentionCached": address(t.attentionCached),
            "gatedSiLU": address(t.gatedSiLU), "geluTanh": address(t.geluTanh),
            "spmmCSR": address(t.spmmCSR), "spmmQ1x4": address(t.spmmQ1x4),
            "spmmQCSR": address(t.spmmQCSR), "transpose": address(t.transpose)
        ]
        if let wide = t.sgemmWideTile { out["sgemmWideTile"] = address(wide) }
        if let wide = t.qgemmWideQuadTile { out["qgemmWideQuadTile"] = address(wide) }
        if let quads = t.spmmQ1x4Quads { out["spmmQ1x4Quads"] = address(quads) }
        if let bf16 = t.attentionBF16 { out["attentionBF16"] = address(bf16) }
        return out
    }

    /// The AVX2 kernels, with the given fp32 wide tile and int8 quad tiles.
    static func expectedSIMD(
        wide: KernelTable.SGEMMWideTile?, quads: KernelTable.QGEMMQuadTile,
        pairBoundedQuads: KernelTable.QGEMMQuadTile, wideQuads: KernelTable.QGEMMWideQuadTile? = nil,
        sparseQuads: KernelTable.SpmmQ1x4Quads? = nil, lanes: KernelTable.VectorKernels = .ymm
    ) -> KernelTable {
        KernelTable(
            sgemmTile: quern_sgemm_tile_avx2, sgemmWideTile: wide, biasActivation: lanes.biasActivation,
            q4DequantPanel: quern_q4_dequant_panel_avx2,
            qgemmPairTile: quern_qgemm_tile_avx2, qgemmQuadTile: quads, qgemmQuadTilePairBounded: pairBoundedQuads,
            qgemmWideQuadTile: wideQuads,
            quantizeRows: quern_quantize_rows_u8_avx2, quantizeRowsFixed: quern_quantize_rows_u8_fixed_avx2,
            dequantize: lanes.dequantize, layerNorm: quern_layernorm_avx2,
            residualLayerNorm: quern_residual_layernorm_avx2, softmax: quern_softmax_avx2,
            attention: lanes.attention, attentionBF16: lanes.attentionBF16,
            attentionCached: quern_attention_cached_avx2,
            gatedSiLU: quern_gated_silu_avx2, geluTanh: quern_gelu_tanh_avx2,
            spmmCSR: lanes.spmmCSR, spmmQ1x4: quern_spmm_q1x4_avx2, spmmQ1x4Quads: sparseQuads,
            spmmQCSR: quern_spmm_qcsr_avx2, transpose: quern_transpose_f32_avx2)
    }

    /// What each path runs: the scalar twins only on `.scalar`; on AVX2 and AVX-512
    /// vpmaddubsw for pair-bounded quads and emulated vpdpbusd for other quads; on
    /// `.vnni` vpdpbusd in the form the CPU has (EVEX with AVX512-VNNI, else VEX) for all
    /// quads, and with AVX512-VNNI the 12×32 zmm int8 tile; the 6×32 fp32 tile on
    /// `.avx512` and `.vnni` where the CPU has AVX-512.
    static func expected(_ isa: ISA) -> KernelTable {
        let wide: KernelTable.SGEMMWideTile? = ISA.has(QUERN_CPU_AVX512) ? quern_sgemm_tile2_avx512 : nil
        let lanes: KernelTable.VectorKernels = ISA.has(QUERN_CPU_AVX512) ? .zmm : .ymm
        switch isa {
        case .scalar:
            return KernelTable(
                sgemmTile: quern_sgemm_tile_scalar, sgemmWideTile: nil, biasActivation: quern_bias_act_scalar,
                q4DequantPanel: quern_q4_dequant_panel_scalar,
                qgemmPairTile: quern_qgemm_tile_scalar, qgemmQuadTile: quern_qgemm4_tile_scalar,
                qgemmQuadTilePairBounded: quern_qgemm4_tile_scalar, qgemmWideQuadTile: nil,
                quantizeRows: quern_quantize_rows_u8_scalar,
                quantizeRowsFixed: quern_quantize_rows_u8_fixed_scalar, dequantize: quern_dequantize_scalar,
                layerNorm: quern_layernorm_scalar, residualLayerNorm: quern_residual_layernorm_scalar,
                softmax: quern_softmax_scalar, attention: quern_attention_seq_scalar, attentionBF16: nil,
                attentionCached: quern_attention_cached_scalar, gatedSiLU: quern_gated_silu_scalar,
                geluTanh: quern_gelu_tanh_scalar, spmmCSR: quern_spmm_csr_scalar,
                spmmQ1x4: quern_spmm_q1x4_scalar, spmmQ1x4Quads: nil, spmmQCSR: quern_spmm_qcsr_scalar,
                transpose: quern_transpose_f32_scalar)
        case .avx2:
            return expectedSIMD(
                wide: nil, quads: quern_qgemm4_tile_avx2,
                pairBoundedQuads: quern_qgemm4_tile_maddubs_avx2)
        case .avx512:
            return expectedSIMD(
                wide: wide, quads: quern_qgemm4_tile_avx2,
                pairBoundedQuads: quern_qgemm4_tile_maddubs_avx2, lanes: lanes)
        case .vnni:
            let quads: KernelTable.QGEMMQuadTile =
                ISA.has(QUERN_CPU_VNNI)
                ? quern_qgemm4_tile_avx512vnni : quern_qgemm4_tile_avxvnni
            return expectedSIMD(
                wide: wide, quads: quads, pairBoundedQuads: quads,
                wideQuads: ISA.has(QUERN_CPU_VNNI) ? quern_qgemm4_tile2_avx512vnni : nil,
                sparseQuads: ISA.has(QUERN_CPU_VNNI) ? quern_spmm_q1x4_avx512vnni : nil, lanes: lanes)
        }
    }

    @Test("each supported path's table holds that path's kernels", arguments: ISA.supported)
    func holdsExpectedKernels(isa: ISA) {
        let got = Self.entries(isa.kernels), want = Self.entries(Self.expected(isa))
        for name in Set(got.keys).union(want.keys).sorted() {
            #expect(got[name] == want[name], "\(isa).\(name)")
        }
        if isa != .scalar {
            // No SIMD path falls back to a plain twin for any kernel.
            let plain = Set(Self.entries(.scalar).values)
            for (name, kernel) in got { #expect(!plain.contains(kernel), "\(isa).\(name) is a scalar twin") }
        }
    }

    @Test("the emulated AVX-512 table is AVX2's with the emulated wide tiles")
    func emulatedTable() {
        let got = Self.entries(.avx512Emulated)
        let want = Self.entries(
            Self.expectedSIMD(
                wide: quern_sgemm_tile2_avx512_emulated, quads: quern_qgemm4_tile_avx2,
                pairBoundedQuads: quern_qgemm4_tile_maddubs_avx2,
                wideQuads: quern_qgemm4_tile2_avx512vnni_emulated,
                sparseQuads: quern_spmm_q1x4_avx512vnni_emulated, lanes: .zmmEmulated))
        #expect(got == want)
    }

    // MARK: every entry agrees with its scalar twin (tolerances as the driver tests name them)

    /// Deterministic inputs (SplitMix64).
    struct Bits: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
            (0..<count).map { _ in Float.random(in: range, using: &self) }
        }
    }

    /// `body` with `array`'s storage, or with nil.
    func withPointer<T, R>(to array: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
        guard let array else { return body(nil) }
        return array.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// `|got − want| ≤ tolerance(want)` everywhere, reported at the worst place.
    func expectClose(_ got: [Float], _ want: [Float], _ what: String, tolerance: (Float) -> Float) {
        #expect(got.count == want.count)
        var worst: Float = 0, at = 0
        for i in 0..<min(got.count, want.count) {
            let ratio = got[i] == want[i] ? 0 : abs(got[i] - want[i]) / tolerance(want[i])
            if !(ratio <= worst) { (worst, at) = (ratio, i) }
        }
        #expect(worst <= 1, "\(what): \(worst)× the tolerance at \(at)")
    }

    @Test("fp32 tiles agree with the scalar tile: every row count, narrow and full panels", arguments: paths)
    func sgemmTiles(path: Path) {
        let t = path.table, s = KernelTable.scalar
        var bits = Bits(state: 1)
        let mr = Int(QUERN_SGEMM_MR), nr = Int(QUERN_SGEMM_NR), k = 37
        let a = bits.floats(k * mr), b0 = bits.floats(k * nr), b1 = bits.floats(k * nr)
        let allowed = sgemmRelativeTolerance * Float(k + 1)  // Σ|a·b| + |c| ≤ k + 1
        for m in 1...mr {
            for n in [5, nr] {
                for accumulate: Int32 in [0, 1] {
                    let ldc = n + 3
                    let c0 = bits.floats(mr * ldc)
                    var got = c0, want = c0
                    t.sgemmTile(k, a, b0, &got, ldc, m, n, accumulate)
                    s.sgemmTile(k, a, b0, &want, ldc, m, n, accumulate)
                    expectClose(got, want, "\(path) sgemmTile m=\(m) n=\(n)") { _ in allowed }
                }
            }
            // The wide tile against two scalar tiles, with one panel (b1 nil) and two.
            guard let wide = t.sgemmWideTile else { continue }
            for n in [9, nr, 2 * nr - 3, 2 * nr] {
                let ldc = n + 3
                let c0 = bits.floats(mr * ldc)
                var got = c0, want = c0
                withPointer(to: n > nr ? b1 : nil) { wide(k, a, b0, $0, &got, ldc, m, n, 1) }
                want.withUnsafeMutableBufferPointer { c in
                    s.sgemmTile(k, a, b0, c.baseAddress, ldc, m, min(n, nr), 1)
                    if n > nr { s.sgemmTile(k, a, b1, c.baseAddress! + nr, ldc, m, n - nr, 1) }
                }
                expectClose(got, want, "\(path) sgemmWideTile m=\(m) n=\(n)") { _ in allowed }
            }
        }
    }

    @Test("fp32 and int8 epilogues agree with the scalar ones, every activation", arguments: paths)
    func epilogues(path: Path) {
        let t = path.table, s = KernelTable.scalar
        var bits = Bits(state: 2)
        let (rows, cols, ld) = (3, 37, 39)  // 37: whole 8- and 16-float vectors and a tail
        let bias = bits.floats(cols)
        let acc = (0..<(rows * cols)).map { _ in Int32.random(in: -50_000...50_000, using: &bits) }
        let rowScale = bits.floats(rows, in: 0.005...0.02), colScale = bits.floats(cols, in: 0.0002...0.001)
        let rowZero = (0..<rows).map { _ in Int32.random(in: 0...255, using: &bits) }
        let colsum = (0..<cols).map { _ in Int32.random(in: -1000...1000, using: &bits) }
        let close = { (v: Float) in activationAbsoluteTolerance * (1 + abs(v)) }
        for activation in Activation.allCases {
            for withBias in [false, true] {
                let c0 = bits.floats(rows * ld, in: -3...3)
                var got = c0, want = c0
                var gotY = [Float](repeating: .nan, count: rows * cols), wantY = gotY
                withPointer(to: withBias ? bias : nil) { bp in
                    t.biasActivation(&got, ld, rows, cols, bp, activation.code)
                    s.biasActivation(&want, ld, rows, cols, bp, activation.code)
                    t.dequantize(
                        acc, cols, rows, cols, &gotY, cols, rowScale, rowZero, colScale, colsum, bp,
                        activation.code)
                    s.dequantize(
                        acc, cols, rows, cols, &wantY, cols, rowScale, rowZero, colScale, colsum, bp,
                        activation.code)
                }
                expectClose(got, want, "\(path) biasActivation \(activation) bias=\(withBias)", tolerance: close)
                expectClose(gotY, wantY, "\(path) dequantize \(activation) bias=\(withBias)", tolerance: close)
            }
        }
    }

    @Test("int8 tiles and quantization equal the scalar ones exactly", arguments: paths)
    func int8(path: Path) {
        let t = path.table, s = KernelTable.scalar
        var bits = Bits(state: 3)
        let mr = Int(QUERN_QGEMM_MR), nr = Int(QUERN_QGEMM_NR), k = 45
        let u8 = (0..<(mr * k)).map { _ in UInt8.random(in: 0...255, using: &bits) }
        func packedA(group: Int) -> [UInt32] {
            var out = [UInt32](repeating: 0, count: mr * ((k + group - 1) / group))
            quern_qgemm_pack_a(u8, k, mr, k, Int32(group), &out)
            return out
        }
        let pairA = packedA(group: Int(QUERN_QGEMM_PAIR_K)), quadA = packedA(group: Int(QUERN_QGEMM_QUAD_K))
        let kp = pairA.count / mr, kq = quadA.count / mr
        let pairB = (0..<(kp * nr * 2)).map { _ in Int16.random(in: -127...127, using: &bits) }
        let quadB = (0..<(kq * nr * 4)).map { _ in Int8.random(in: -127...127, using: &bits) }
        let boundedB = (0..<(kq * nr * 4)).map { _ in Int8.random(in: -64...64, using: &bits) }  // |w0| + |w1| ≤ 128
        for m in 1...mr {
            for n in [7, nr] {
                for accumulate: Int32 in [0, 1] {
                    let ldc = n + 2
                    let c0 = (0..<(mr * ldc)).map { _ in Int32.random(in: -1000...1000, using: &bits) }
                    var got = c0, want = c0
                    t.qgemmPairTile(kp, pairA, pairB, &got, ldc, m, n, accumulate)
                    s.qgemmPairTile(kp, pairA, pairB, &want, ldc, m, n, accumulate)
                    #expect(got == want, "\(path) qgemmPairTile m=\(m) n=\(n)")
                    (got, want) = (c0, c0)
                    t.qgemmQuadTile(kq, quadA, quadB, &got, ldc, m, n, accumulate)
                    s.qgemmQuadTile(kq, quadA, quadB, &want, ldc, m, n, accumulate)
                    #expect(got == want, "\(path) qgemmQuadTile m=\(m) n=\(n)")
                    (got, want) = (c0, c0)
                    t.qgemmQuadTilePairBounded(kq, quadA, boundedB, &got, ldc, m, n, accumulate)
                    s.qgemmQuadTilePairBounded(kq, quadA, boundedB, &want, ldc, m, n, accumulate)
                    #expect(got == want, "\(path) qgemmQuadTilePairBounded m=\(m) n=\(n)")
                }
            }
        }
        // The wide tile (up to two A panels of rows × two B panels) against scalar tiles,
        // with one B panel (b1 nil) and two; the second holds the extremes (-128 against
        // 255) that would saturate vpdpbusds.
        if let wide = t.qgemmWideQuadTile {
            let u8Next = (0..<(mr * k)).map { _ in UInt8.random(in: 0...255, using: &bits) }
            var quadNext = [UInt32](repeating: 0, count: quadA.count)
            quern_qgemm_pack_a(u8Next, k, mr, k, Int32(QUERN_QGEMM_QUAD_K), &quadNext)
            let extremeB = (0..<(kq * nr * 4)).map { i in
                i % 3 == 0 ? Int8.min : Int8.random(in: -128...127, using: &bits)
            }
            for m in 1...(2 * mr) {
                for n in [9, nr, 2 * nr - 3, 2 * nr] {
                    for accumulate: Int32 in [0, 1] {
                        let ldc = n + 2
                        let c0 = (0..<(2 * mr * ldc)).map { _ in Int32.random(in: -1000...1000, using: &bits) }
                        var got = c0, want = c0
                        withPointer(to: n > nr ? extremeB : nil) {
                            wide(kq, quadA, quadNext, quadB, $0, &got, ldc, m, n, accumulate)
                        }
                        want.withUnsafeMutableBufferPointer { c in
                            for (a, r0) in [(quadA, 0), (quadNext, mr)] where m > r0 {
                                let rows = min(mr, m - r0), cr = c.baseAddress! + r0 * ldc
                                s.qgemmQuadTile(kq, a, quadB, cr, ldc, rows, min(n, nr), accumulate)
                                if n > nr { s.qgemmQuadTile(kq, a, extremeB, cr + nr, ldc, rows, n - nr, accumulate) }
                            }
                        }
                        #expect(got == want, "\(path) qgemmWideQuadTile m=\(m) n=\(n) accumulate=\(accumulate)")
                    }
                }
            }
        }

        // Mixed, all-positive, all-negative and all-zero rows; the fixed range [-1, 1]
        // makes some values saturate.
        let rows = 4
        let x = bits.floats(rows * k, in: -3...2).enumerated().map { i, v in [v, abs(v), -abs(v), 0][i / k] }
        var gotQ = [UInt8](repeating: 0, count: rows * k), wantQ = [UInt8](repeating: 1, count: rows * k)
        var gotScale = [Float](repeating: 0, count: rows), wantScale = [Float](repeating: 1, count: rows)
        var gotZero = [Int32](repeating: 0, count: rows), wantZero = [Int32](repeating: 1, count: rows)
        t.quantizeRows(x, rows, k, k, &gotQ, k, &gotScale, &gotZero)
        s.quantizeRows(x, rows, k, k, &wantQ, k, &wantScale, &wantZero)
        #expect(gotQ == wantQ && gotScale == wantScale && gotZero == wantZero, "\(path) quantizeRows")
        // One multiplier for all columns, and a smoothing multiplier per column.
        let flat = [Float](repeating: 255 / 2, count: k)
        let smoothed = bits.floats(k, in: 0.25...4).map { 255 / 2 * $0 }
        for inv in [flat, smoothed] {
            t.quantizeRowsFixed(x, rows, k, k, &gotQ, k, inv, 128)
            s.quantizeRowsFixed(x, rows, k, k, &wantQ, k, inv, 128)
            #expect(gotQ == wantQ, "\(path) quantizeRowsFixed")
        }
        #expect(wantQ[0] == UInt8(max(0, min(255, Int32((x[0] * smoothed[0]).rounded(.toNearestOrEven)) + 128))))
    }

    @Test("norms, softmax and attention agree with the scalar ones", arguments: paths)
    func normsAndAttention(path: Path) {
        let t = path.table, s = KernelTable.scalar
        var bits = Bits(state: 4)
        // Rows of 37 (a vector tail) in a wider leading dimension.
        let (rows, n, ld) = (3, 37, 40)
        let x = bits.floats(rows * ld, in: -3...3), d = bits.floats(rows * n)
        let gamma = bits.floats(n, in: 0.5...1.5), beta = bits.floats(n)
        for affine in [false, true] {
            var got = x, want = x
            withPointer(to: affine ? gamma : nil) { g in
                withPointer(to: affine ? beta : nil) { b in
                    t.layerNorm(x, rows, n, ld, g, b, 1e-5, &got)
                    s.layerNorm(x, rows, n, ld, g, b, 1e-5, &want)
                }
            }
            expectClose(got, want, "\(path) layerNorm affine=\(affine)") { layerNormTolerance * (1 + abs($0)) }
        }
        var got = Array(x[0..<(rows * n)]), want = got
        t.residualLayerNorm(&got, d, rows, n, gamma, beta, 1e-5)
        s.residualLayerNorm(&want, d, rows, n, gamma, beta, 1e-5)
        expectClose(got, want, "\(path) residualLayerNorm") { layerNormTolerance * (1 + abs($0)) }
        let keep = (0..<n).map { UInt8($0 % 3 == 1 ? 0 : 1) }
        for masked in [false, true] {
            var got = x, want = x
            withPointer(to: masked ? keep : nil) { kp in
                t.softmax(&got, rows, n, ld, kp)
                s.softmax(&want, rows, n, ld, kp)
            }
            expectClose(got, want, "\(path) softmax masked=\(masked)") { _ in softmaxTolerance }
        }

        // Sequences with vector tails in their length (8 and 16 keys a vector, 8 rows a pass)
        // and head widths of 8-, 16- and 32-float multiples and neither.
        for (seq, heads, headDim) in [(11, 2, 20), (1, 2, 32), (17, 2, 16), (33, 3, 32), (9, 2, 48), (40, 1, 64)] {
            let qkv = bits.floats(seq * 3 * heads * headDim, in: -2...2)
            var scratch = [Float](repeating: 0, count: quern_attention_scratch(seq, headDim))
            var gotOut = [Float](repeating: .nan, count: seq * heads * headDim), wantOut = gotOut
            let scale = 1 / Float(headDim).squareRoot()
            t.attention(qkv, seq, heads, headDim, scale, &scratch, &gotOut)
            s.attention(qkv, seq, heads, headDim, scale, &scratch, &wantOut)
            expectClose(gotOut, wantOut, "\(path) attention \(seq)×\(heads)×\(headDim)") { _ in attentionTolerance }
            if let bf16 = t.attentionBF16 {
                bf16(qkv, seq, heads, headDim, scale, &scratch, &gotOut)
                expectClose(gotOut, wantOut, "\(path) bf16 attention \(seq)×\(heads)×\(headDim)") { _ in
                    bf16AttentionTolerance
                }
            }
        }
    }

    @Test("sparse kernels agree with the scalar ones on a full block and a narrow one", arguments: paths)
    func sparse(path: Path) {
        let t = path.table, s = KernelTable.scalar
        var bits = Bits(state: 5)
        let block = Int(QUERN_SPMM_BLOCK), (k, n) = (50, 9)  // K ≤ panelWidth: one CSR panel
        let w = (0..<(n * k)).map { _ in
            Float.random(in: 0...1, using: &bits) < 0.3 ? Float.random(in: -1...1, using: &bits) : 0
        }
        let csr = SparseWeights(Tensor(shape: [n, k], data: w))
        let quantized = QuantizedWeights(
            values: w.map { Int8(($0 * 127).rounded()) },
            scales: [Float](repeating: 1, count: n), n: n, k: k)
        let q1x4 = BlockSparseWeights(quantized), qcsr = SparseQuantizedWeights(quantized)
        let xt = bits.floats(k * block)
        let q = (0..<(block * k)).map { _ in UInt8.random(in: 0...255, using: &bits) }
        let pairCount = 2 * ((k + 3) / 4)
        var pairs = [UInt32](repeating: 0, count: pairCount * block), widened = [Int16](repeating: 0, count: k * block)
        // A full block runs the vector kernels; a narrower one their scalar fallback.
        for mb in [block, 20] {
            for accumulate: Int32 in [0, 1] {
                let y0 = bits.floats(n * block)
                var got = y0, want = y0
                t.spmmCSR(xt, block, mb, csr.rowptr, csr.cols, csr.vals, 0, n, &got, block, accumulate)
                s.spmmCSR(xt, block, mb, csr.rowptr, csr.cols, csr.vals, 0, n, &want, block, accumulate)
                expectClose(got, want, "\(path) spmmCSR mb=\(mb)") { _ in sgemmRelativeTolerance * Float(k) + 1e-6 }
            }
            quern_pack_pairs_t(q, k, mb, k, pairCount, &pairs, block)
            var got = [Int32](repeating: -1, count: n * block), want = got
            t.spmmQ1x4(pairs, block, mb, q1x4.rowptr, q1x4.groups, q1x4.lo, q1x4.hi, 0, n, &got, block)
            s.spmmQ1x4(pairs, block, mb, q1x4.rowptr, q1x4.groups, q1x4.lo, q1x4.hi, 0, n, &want, block)
            #expect(got == want, "\(path) spmmQ1x4 mb=\(mb)")
            // The quad layout gives the same integer sums, in its scalar twin and its vector kernel.
            let groupCount = (k + 3) / 4
            var quadRows = [UInt32](repeating: 0, count: groupCount * block)
            quern_pack_quads_t(q, k, mb, k, groupCount, &quadRows, block)
            var plain = [Int32](repeating: -1, count: n * block)
            quern_spmm_q1x4_quads_scalar(
                quadRows, block, mb, q1x4.rowptr, q1x4.groups, q1x4.quads, 0, n, &plain, block)
            #expect(plain == want, "quad-layout scalar spmmQ1x4 mb=\(mb)")
            if let quads = t.spmmQ1x4Quads {
                got = [Int32](repeating: -1, count: n * block)
                quads(quadRows, block, mb, q1x4.rowptr, q1x4.groups, q1x4.quads, 0, n, &got, block)
                #expect(got == want, "\(path) spmmQ1x4Quads mb=\(mb)")
            }
            quern_transpose_u8_i16(q, k, mb, k, &widened, block)
            (got, want) = ([Int32](repeating: -1, count: n * block), [Int32](repeating: -1, count: n * block))
            t.spmmQCSR(widened, block, mb, qcsr.rowptr, qcsr.cols, qcsr.pairs, 0, n, &got, block)
            s.spmmQCSR(widened, block, mb, qcsr.rowptr, qcsr.cols, qcsr.pairs, 0, n, &want, block)
            #expect(got == want, "\(path) spmmQCSR mb=\(mb)")
        }
    }

    @Test("transpose equals the scalar one, ragged edges on both sides of the 8×8 blocks", arguments: paths)
    func transpose(path: Path) {
        var bits = Bits(state: 6)
        let (rows, cols) = (13, 21)
        let src = bits.floats(rows * cols)
        var got = [Float](repeating: .nan, count: rows * cols), want = got
        path.table.transpose(src, cols, rows, cols, &got, rows)
        KernelTable.scalar.transpose(src, cols, rows, cols, &want, rows)
        #expect(got == want, "\(path) transpose")
    }
}
