import CKernels

/// Weights `[N, K]` quantized per output channel to symmetric int8 in [-127, 127] with an
/// fp32 scale each (`w ≈ scale[n] · q[n, k]`), plus what the int8 GEMM needs, made once
/// at load: column sums (to fold the activations' zero point out of the integer sums) and
/// the panels the tile kernel streams, 16 columns a panel, in the layout of the path the
/// weights will run on.
public struct QuantizedWeights: Sendable {
    /// How a panel holds K: in pairs widened to int16 (vpmaddwd) or in groups of four
    /// int8 (VNNI's vpdpbusd, or AVX2's vpmaddubsw for pair-bounded weights). Either
    /// layout runs on every path (the tile kernels of both have scalar and AVX2 forms).
    public enum Layout: Sendable, CaseIterable {
        case pairs, quads

        /// The fast layout here: quads with VNNI, and on AVX2 too when the weights are
        /// pair-bounded (vpmaddubsw is then exact and a quarter fewer instructions than
        /// pairs); other weights take pairs on AVX2.
        public static func preferred(pairBounded: Bool) -> Layout {
            ISA.active == .vnni || (pairBounded && ISA.active >= .avx2) ? .quads : .pairs
        }
        /// K values per step of a panel.
        var group: Int { Int(self == .pairs ? QUERN_QGEMM_PAIR_K : QUERN_QGEMM_QUAD_K) }
        /// Bytes of one weight in a panel: int16 for pairs, int8 for quads.
        var elementBytes: Int { self == .pairs ? MemoryLayout<Int16>.size : MemoryLayout<Int8>.size }
    }

    /// The largest |w[2t]| + |w[2t+1]| of a column's K pair for which AVX2's vpmaddubsw
    /// cannot saturate: 255 · 128 = 32640 ≤ 32767.
    public static let pairBound = 128

    public let n: Int
    public let k: Int
    /// The stored form: `[N, K]` row-major.
    public let values: [Int8]
    public let scales: [Float]
    public let layout: Layout
    /// Whether every K pair of every column is within `pairBound`.
    public let pairBounded: Bool
    let colsum: AlignedBuffer<Int32>
    let paddedScales: AlignedBuffer<Float>
    /// Every step of a panel is `stepBytes` in both layouts: 16 columns × 2 int16 or × 4 int8.
    let panels: AlignedBuffer<UInt8>
    static let nr = Int(QUERN_QGEMM_NR)
    /// The tile kernels read B at this stride (64 bytes; ckernels.h asserts it for both layouts).
    static let stepBytes = Int(QUERN_QGEMM_STEP_BYTES)

    /// Steps of K per panel.
    var steps: Int { (k + layout.group - 1) / layout.group }

    /// Symmetric per-channel quantization of fp32 weights, pair-bounded so that every
    /// path can run them exactly: scale = max(max|w|/127, max pair |w[2t]|+|w[2t+1]| / 128)
    /// over the channel, and a rounded pair that lands above the bound gives up one step
    /// on its larger member. Only channels with two large neighbours get a coarser grid;
    /// on all-MiniLM-L6-v2 the embeddings' cosine to fp32 averages 0.99886 (5,000 texts;
    /// 0.99906 without the bound) and its worst case is 0.99768 (0.99758 without).
    public init(quantizing w: Tensor, layout: Layout? = nil) {
        precondition(w.shape.count == 2, "QuantizedWeights: weights must be [N, K], got \(w.shape)")
        let n = w.shape[0], k = w.shape[1], bound = Self.pairBound
        var q = [Int8](repeating: 0, count: n * k)
        var scales = [Float](repeating: 1, count: n)
        w.data.withUnsafeBufferPointer { data in
            for r in 0..<n {
                let row = data.baseAddress! + r * k
                var maxAbs: Float = 0, maxPair: Float = 0
                for i in 0..<k { maxAbs = max(maxAbs, abs(row[i])) }
                for i in stride(from: 0, to: k - 1, by: 2) { maxPair = max(maxPair, abs(row[i]) + abs(row[i + 1])) }
                let s = max(maxAbs / 127, maxPair / Float(bound))
                scales[r] = s > 0 ? s : 1
                for i in 0..<k { q[r * k + i] = Int8(max(-127, min(127, (row[i] / scales[r]).rounded()))) }
                for i in stride(from: r * k, to: r * k + k - 1, by: 2) where abs(Int(q[i])) + abs(Int(q[i + 1])) > bound
                {
                    // Both rounded up past the bound (by one step at most): the larger gives way.
                    let j = abs(q[i]) >= abs(q[i + 1]) ? i : i + 1
                    q[j] += q[j] > 0 ? -1 : 1
                }
            }
        }
        self.init(values: q, scales: scales, n: n, k: k, layout: layout)
    }

    /// `layout` nil: the preferred one for these values on this machine.
    public init(values: [Int8], scales: [Float], n: Int, k: Int, layout: Layout? = nil) {
        precondition(values.count == n * k && scales.count == n)
        self.n = n
        self.k = k
        self.values = values
        self.scales = scales
        var bounded = true
        for r in 0..<n where bounded {
            for i in stride(from: r * k, to: r * k + k - 1, by: 2)
            where abs(Int(values[i])) + abs(Int(values[i + 1])) > Self.pairBound {
                bounded = false
                break
            }
        }
        pairBounded = bounded
        let layout = layout ?? .preferred(pairBounded: bounded)
        self.layout = layout
        let nr = Self.nr
        let panelCount = (n + nr - 1) / nr
        let group = layout.group
        let steps = (k + group - 1) / group
        precondition(
            nr * group * layout.elementBytes == Self.stepBytes,
            "QuantizedWeights: a \(layout) step of \(nr) columns is not the \(Self.stepBytes) bytes the tiles read")
        colsum = AlignedBuffer(count: panelCount * nr)
        paddedScales = AlignedBuffer(count: panelCount * nr)
        panels = AlignedBuffer(count: panelCount * steps * Self.stepBytes)
        for r in 0..<n {
            var sum: Int32 = 0
            for i in 0..<k { sum += Int32(values[r * k + i]) }
            colsum.pointer[r] = sum
            paddedScales.pointer[r] = scales[r]
        }
        for j in 0..<panelCount {
            let bytes = UnsafeMutableRawPointer(panels.pointer + j * steps * Self.stepBytes)
            for c in 0..<min(nr, n - j * nr) {
                let row = (j * nr + c) * k
                for p in 0..<k {
                    // Value p of column c: step p / group, slot p % group within the column's group.
                    let slot = (p / group * nr + c) * group + p % group
                    switch layout {
                    case .pairs: bytes.storeBytes(of: Int16(values[row + p]), toByteOffset: slot * 2, as: Int16.self)
                    case .quads: bytes.storeBytes(of: values[row + p], toByteOffset: slot, as: Int8.self)
                    }
                }
            }
        }
    }

    func panel(_ j: Int) -> UnsafeRawPointer { UnsafeRawPointer(panels.pointer + j * steps * Self.stepBytes) }
}

/// int8 GEMM with dynamic activation quantization: `y[M, N] ≈ act(x[M, K] · wᵀ + bias)`.
/// Each row of x is quantized to u8 with its own scale and zero point; the integer sums
/// are exact (see ckernels.h), and the epilogue rescales, removes the zero point through
/// the weights' column sums, adds the bias and applies the activation.
public enum QGEMM {
    static let mr = Int(QUERN_QGEMM_MR), nr = Int(QUERN_QGEMM_NR)

    /// A calibrated activation range: static quantization uses it for every row instead
    /// of measuring each row. With SmoothQuant's smoothing, input channel p is divided by
    /// `smoothing[p]` before it is quantized (the weights' column p was multiplied by it,
    /// so the product is unchanged), and the range is that of the divided values.
    public struct InputRange: Sendable, Equatable {
        public let scale: Float
        public let zeroPoint: Int32
        public let smoothing: [Float]?

        /// The u8 grid for [lo, hi] widened to include 0 (so zero padding stays exact).
        public init(lo: Float, hi: Float, smoothing: [Float]? = nil) {
            let l = min(lo, 0), h = max(hi, 0)
            let s = (h - l) / 255
            scale = s > 0 ? s : 1
            zeroPoint = Int32(max(0, min(255, (-l / scale).rounded())))
            self.smoothing = smoothing
        }

        public init(scale: Float, zeroPoint: Int32, smoothing: [Float]? = nil) {
            self.scale = scale
            self.zeroPoint = zeroPoint
            self.smoothing = smoothing
        }

        /// What the quantizer multiplies input channel p by: 1 / (scale · smoothing[p]).
        public func multipliers(k: Int) -> [Float] {
            guard let smoothing else { return [Float](repeating: 1 / scale, count: k) }
            precondition(smoothing.count == k, "smoothing has \(smoothing.count) channels, the input \(k)")
            return smoothing.map { 1 / (scale * $0) }
        }
    }

    public static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: QuantizedWeights, bias: UnsafePointer<Float>?,
        activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
        input range: InputRange? = nil, isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        linear(x, m: m, w, bias: bias, activation: activation, into: y, input: range, kernels: isa.kernels, pool: pool)
    }

    /// The same through a given table (tests pass `KernelTable.avx512Emulated`). With a
    /// wide tile, tiles of up to 12 rows run over pairs of quad panels, else 6×16 tiles
    /// over each panel.
    static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: QuantizedWeights, bias: UnsafePointer<Float>?,
        activation: Activation, into y: UnsafeMutablePointer<Float>, input range: InputRange?,
        kernels: KernelTable, pool: ThreadPool
    ) {
        let k = w.k, n = w.n, kp = w.steps
        guard m > 0, n > 0 else { return }
        let tile = kernels.qgemmTile(for: w), wide = kernels.qgemmWideTile(for: w)
        let step = wide == nil ? 1 : 2
        let quantize = kernels.quantizeRows, quantizeFixed = kernels.quantizeRowsFixed
        let dequantize = kernels.dequantize
        let act = activation.code
        let panelCount = (n + nr - 1) / nr
        let multipliers = range?.multipliers(k: k) ?? []

        /// Quantizes rows [r0, r0+rows) per row and packs them into K-pair panels.
        struct PackedRows {
            let packed: UnsafeMutablePointer<UInt32>
            let scale: UnsafeMutablePointer<Float>
            let zeroPoint: UnsafeMutablePointer<Int32>
            func free() { packed.deallocate(); scale.deallocate(); zeroPoint.deallocate() }
        }
        func quantizeAndPack(rows r0: Int, _ rows: Int) -> PackedRows {
            let padded = (rows + mr - 1) / mr * mr
            let q = UnsafeMutablePointer<UInt8>.allocate(capacity: max(rows * k, 1))
            defer { q.deallocate() }
            let out = PackedRows(
                packed: .allocate(capacity: max(padded * kp, 1)), scale: .allocate(capacity: rows),
                zeroPoint: .allocate(capacity: rows))
            if let range {
                quantizeFixed(x + r0 * k, rows, k, k, q, k, multipliers, range.zeroPoint)
                out.scale.update(repeating: range.scale, count: rows)
                out.zeroPoint.update(repeating: range.zeroPoint, count: rows)
            } else {
                quantize(x + r0 * k, rows, k, k, q, k, out.scale, out.zeroPoint)
            }
            packA(q, rows: rows, k: k, layout: w.layout, into: out.packed)
            return out
        }

        /// Tiles of rows [r0, r0+rows) × panels [p0, p1) from already packed rows. Each
        /// panel's (or panel pair's, with a wide tile) int32 sums for all the rows (at most
        /// 96 × 32, in L1) are rescaled by one epilogue call: per tile, the call would cost
        /// as much as the tile's work.
        func tiles(_ a: PackedRows, rows r0: Int, _ rows: Int, panels p0: Int, _ p1: Int) {
            let block = min(rows, 96), ld = step * nr
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: ((block + mr - 1) / mr * mr) * ld) { acc in
                var b0 = 0
                while b0 < rows {
                    let bRows = min(block, rows - b0)
                    var j = p0
                    while j < p1 {
                        // The wide tile covers two panels only when both are in this range.
                        let pair = wide != nil && j + 1 < p1
                        let cols = min((pair ? 2 : 1) * nr, n - j * nr)
                        let b = w.panel(j)
                        var i = 0
                        while i < bRows {
                            let c = acc.baseAddress! + i * ld, panelA = a.packed + (b0 + i) * kp
                            if let wide {
                                // Two A panels a call: each weight step loaded feeds 24 vpdpbusd.
                                let rowsHere = min(2 * mr, bRows - i)
                                let next = rowsHere > mr ? panelA + mr * kp : panelA
                                wide(kp, panelA, next, b, pair ? w.panel(j + 1) : nil, c, ld, rowsHere, cols, 0)
                                i += 2 * mr
                            } else {
                                tile(kp, panelA, b, c, ld, min(mr, bRows - i), cols, 0)
                                i += mr
                            }
                        }
                        dequantize(
                            acc.baseAddress!, ld, bRows, cols, y + (r0 + b0) * n + j * nr, n,
                            a.scale + b0, a.zeroPoint + b0, w.paddedScales.pointer + j * nr,
                            w.colsum.pointer + j * nr, bias.map { $0 + j * nr }, act)
                        j += pair ? 2 : 1
                    }
                    b0 += bRows
                }
            }
        }

        let threads = pool.threads
        if m >= 2 * mr * threads {
            // Large M: each task quantizes, packs and multiplies its own block of rows.
            let rowsPerTask = min(96, max(mr, (m / (threads * 2) + mr - 1) / mr * mr))
            let tasks = (m + rowsPerTask - 1) / rowsPerTask
            pool.parallelFor(tasks) { t in
                let r0 = t * rowsPerTask, rows = min(rowsPerTask, m - r0)
                let a = quantizeAndPack(rows: r0, rows)
                defer { a.free() }
                tiles(a, rows: r0, rows, panels: 0, panelCount)
            }
        } else {
            // Small M: quantize and pack once, then split the output columns.
            let a = quantizeAndPack(rows: 0, m)
            defer { a.free() }
            let groups = min(panelCount, threads * 4)
            // Whole panel pairs per task, so the wide tile never loses a pair at a border.
            let perGroup = ((panelCount + groups - 1) / groups + step - 1) / step * step
            let tasks = (panelCount + perGroup - 1) / perGroup
            pool.parallelFor(tasks) { t in
                tiles(a, rows: 0, m, panels: t * perGroup, min(panelCount, (t + 1) * perGroup))
            }
        }
    }

    /// An int32 tile kernel over one weight panel, whichever its layout: `(steps, a, b,
    /// c, ldc, m, n, accumulate)` (`KernelTable.qgemmTile(for:)` picks it).
    typealias Tile = (Int, UnsafePointer<UInt32>, UnsafeRawPointer, UnsafeMutablePointer<Int32>, Int, Int, Int, Int32)
        -> Void
    /// Up to 12 rows over two adjacent panels (`KernelTable.qgemmWideTile(for:)`): `(steps,
    /// a, aNext, b0, b1, c, ldc, m, n, accumulate)`, rows 6–11 from the next A panel
    /// `aNext` (read only when m > 6), b1 nil when only b0 is left.
    typealias WideTile = (
        Int, UnsafePointer<UInt32>, UnsafePointer<UInt32>, UnsafeRawPointer, UnsafeRawPointer?,
        UnsafeMutablePointer<Int32>, Int, Int, Int, Int32
    ) -> Void

    /// Packs u8 rows into MR-row panels of K groups (pairs or quads): word i of step p
    /// holds `q[i][g·p …]` little-endian, as 16-bit halves for pairs and bytes for quads
    /// (zeros past the last row or column).
    static func packA(
        _ q: UnsafePointer<UInt8>, rows: Int, k: Int, layout: QuantizedWeights.Layout,
        into dst: UnsafeMutablePointer<UInt32>
    ) {
        quern_qgemm_pack_a(q, k, rows, k, Int32(layout.group), dst)
    }

    /// Per-row u8 quantization through one path, for tests comparing paths byte for byte.
    static func quantizeRows(_ x: [Float], m: Int, k: Int, isa: ISA) -> (
        q: [UInt8], scale: [Float], zeroPoint: [Int32]
    ) {
        var q = [UInt8](repeating: 0, count: m * k), s = [Float](repeating: 0, count: m),
            z = [Int32](repeating: 0, count: m)
        let quantize = isa.kernels.quantizeRows
        x.withUnsafeBufferPointer { xp in
            q.withUnsafeMutableBufferPointer { qp in
                s.withUnsafeMutableBufferPointer { sp in
                    z.withUnsafeMutableBufferPointer { zp in
                        quantize(xp.baseAddress!, m, k, k, qp.baseAddress!, k, sp.baseAddress!, zp.baseAddress!)
                    }
                }
            }
        }
        return (q, s, z)
    }

    /// The exact integer sums `Σ_k q_x[i][k] · q_w[j][k]` through the tile kernel, for
    /// tests that hold every path to the scalar integer reference.
    static func integerSums(_ q: [UInt8], m: Int, _ w: QuantizedWeights, isa: ISA) -> [Int32] {
        let k = w.k, n = w.n, kp = w.steps
        let padded = (m + mr - 1) / mr * mr
        var packed = [UInt32](repeating: 0, count: max(padded * kp, 1))
        var out = [Int32](repeating: 0, count: m * n)
        let tile = isa.kernels.qgemmTile(for: w)
        q.withUnsafeBufferPointer { qp in
            packed.withUnsafeMutableBufferPointer { pp in
                packA(qp.baseAddress!, rows: m, k: k, layout: w.layout, into: pp.baseAddress!)
                out.withUnsafeMutableBufferPointer { op in
                    for j in 0..<((n + nr - 1) / nr) {
                        var i = 0
                        while i < m {
                            tile(
                                kp, pp.baseAddress! + i * kp, w.panel(j), op.baseAddress! + i * n + j * nr, n,
                                min(mr, m - i), min(nr, n - j * nr), 0)
                            i += mr
                        }
                    }
                }
            }
        }
        return out
    }
}
