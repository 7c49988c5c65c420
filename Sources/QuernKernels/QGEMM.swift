import CKernels

/// Weights `[N, K]` quantized per output channel to symmetric int8 in [-127, 127] with an
/// fp32 scale each (`w ≈ scale[n] · q[n, k]`), plus what the int8 GEMM needs, made once
/// at load: column sums (to fold the activations' zero point out of the integer sums) and
/// the panels the tile kernel streams (pairs of K widened to int16, 16 columns a panel).
public struct QuantizedWeights: Sendable {
    public let n: Int
    public let k: Int
    /// The stored form: `[N, K]` row-major.
    public let values: [Int8]
    public let scales: [Float]
    let colsum: AlignedBuffer<Int32>
    let paddedScales: AlignedBuffer<Float>
    let panels: AlignedBuffer<Int16>
    static let nr = Int(QUERN_QGEMM_NR)

    var pairs: Int { (k + 1) / 2 }

    /// Symmetric per-channel quantization of fp32 weights: scale = max|w[n, :]| / 127.
    public init(quantizing w: Tensor) {
        precondition(w.shape.count == 2, "QuantizedWeights: weights must be [N, K], got \(w.shape)")
        let n = w.shape[0], k = w.shape[1]
        var q = [Int8](repeating: 0, count: n * k)
        var scales = [Float](repeating: 1, count: n)
        for r in 0..<n {
            let row = w.data[(r * k)..<((r + 1) * k)]
            let maxAbs = row.reduce(Float(0)) { max($0, abs($1)) }
            let s = maxAbs > 0 ? maxAbs / 127 : 1
            scales[r] = s
            for (i, v) in row.enumerated() { q[r * k + i] = Int8(max(-127, min(127, (v / s).rounded()))) }
        }
        self.init(values: q, scales: scales, n: n, k: k)
    }

    public init(values: [Int8], scales: [Float], n: Int, k: Int) {
        precondition(values.count == n * k && scales.count == n)
        self.n = n
        self.k = k
        self.values = values
        self.scales = scales
        let nr = Self.nr
        let panelCount = (n + nr - 1) / nr
        let kp = (k + 1) / 2
        colsum = AlignedBuffer(count: panelCount * nr)
        paddedScales = AlignedBuffer(count: panelCount * nr)
        panels = AlignedBuffer(count: panelCount * kp * nr * 2)
        for r in 0..<n {
            var sum: Int32 = 0
            for i in 0..<k { sum += Int32(values[r * k + i]) }
            colsum.pointer[r] = sum
            paddedScales.pointer[r] = scales[r]
        }
        for j in 0..<panelCount {
            let base = panels.pointer + j * kp * nr * 2
            for c in 0..<min(nr, n - j * nr) {
                let row = (j * nr + c) * k
                for p in 0..<k { base[(p / 2 * nr + c) * 2 + p % 2] = Int16(values[row + p]) }
            }
        }
    }

    func panel(_ j: Int) -> UnsafePointer<Int16> { UnsafePointer(panels.pointer + j * pairs * Self.nr * 2) }
}

/// int8 GEMM with dynamic activation quantization: `y[M, N] ≈ act(x[M, K] · wᵀ + bias)`.
/// Each row of x is quantized to u8 with its own scale and zero point; the integer sums
/// are exact (see ckernels.h), and the epilogue rescales, removes the zero point through
/// the weights' column sums, adds the bias and applies the activation.
public enum QGEMM {
    static let mr = Int(QUERN_QGEMM_MR), nr = Int(QUERN_QGEMM_NR)

    public static func linear(_ x: UnsafePointer<Float>, m: Int, _ w: QuantizedWeights, bias: UnsafePointer<Float>?,
                              activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
                              isa: ISA = .active, pool: ThreadPool = .shared) {
        let k = w.k, n = w.n, kp = w.pairs
        guard m > 0, n > 0 else { return }
        let tile = isa == .scalar ? quern_qgemm_tile_scalar : quern_qgemm_tile_avx2
        let dequantize = isa == .scalar ? quern_dequantize_scalar : quern_dequantize_avx2
        let quantize = isa == .scalar ? quern_quantize_rows_u8_scalar : quern_quantize_rows_u8_avx2
        let act = activation.code
        let panelCount = (n + nr - 1) / nr

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
            let out = PackedRows(packed: .allocate(capacity: max(padded * kp, 1)), scale: .allocate(capacity: rows),
                                 zeroPoint: .allocate(capacity: rows))
            quantize(x + r0 * k, rows, k, k, q, k, out.scale, out.zeroPoint)
            packA(q, rows: rows, k: k, into: out.packed)
            return out
        }

        /// Tiles of rows [r0, r0+rows) × panels [p0, p1) from already packed rows.
        func tiles(_ a: PackedRows, rows r0: Int, _ rows: Int, panels p0: Int, _ p1: Int) {
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: mr * nr) { acc in
                for j in p0..<p1 {
                    let cols = min(nr, n - j * nr)
                    let b = w.panel(j)
                    var i = 0
                    while i < rows {
                        let mcur = min(mr, rows - i)
                        tile(kp, a.packed + i * kp, b, acc.baseAddress!, nr, mcur, cols, 0)
                        dequantize(acc.baseAddress!, nr, mcur, cols, y + (r0 + i) * n + j * nr, n,
                                   a.scale + i, a.zeroPoint + i, w.paddedScales.pointer + j * nr,
                                   w.colsum.pointer + j * nr, bias.map { $0 + j * nr }, act)
                        i += mr
                    }
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
            let perGroup = (panelCount + groups - 1) / groups
            let tasks = (panelCount + perGroup - 1) / perGroup
            pool.parallelFor(tasks) { t in
                tiles(a, rows: 0, m, panels: t * perGroup, min(panelCount, (t + 1) * perGroup))
            }
        }
    }

    /// Packs u8 rows into MR-row panels of K pairs: word i of step p is
    /// `q[i][2p] | q[i][2p+1] << 16` (zeros past the last row or column).
    static func packA(_ q: UnsafePointer<UInt8>, rows: Int, k: Int, into dst: UnsafeMutablePointer<UInt32>) {
        let kp = (k + 1) / 2
        var r = 0
        while r < rows {
            let panel = dst + r * kp
            for i in 0..<mr {
                if r + i < rows {
                    let src = q + (r + i) * k
                    for p in 0..<kp {
                        let lo = UInt32(src[2 * p])
                        let hi = 2 * p + 1 < k ? UInt32(src[2 * p + 1]) : 0
                        panel[p * mr + i] = lo | hi << 16
                    }
                } else {
                    for p in 0..<kp { panel[p * mr + i] = 0 }
                }
            }
            r += mr
        }
    }

    /// Per-row u8 quantization through one path, for tests comparing paths byte for byte.
    public static func quantizeRows(_ x: [Float], m: Int, k: Int, isa: ISA) -> (q: [UInt8], scale: [Float], zeroPoint: [Int32]) {
        var q = [UInt8](repeating: 0, count: m * k), s = [Float](repeating: 0, count: m), z = [Int32](repeating: 0, count: m)
        let quantize = isa == .scalar ? quern_quantize_rows_u8_scalar : quern_quantize_rows_u8_avx2
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
    public static func integerSums(_ q: [UInt8], m: Int, _ w: QuantizedWeights, isa: ISA) -> [Int32] {
        let k = w.k, n = w.n, kp = w.pairs
        let padded = (m + mr - 1) / mr * mr
        var packed = [UInt32](repeating: 0, count: max(padded * kp, 1))
        var out = [Int32](repeating: 0, count: m * n)
        let tile = isa == .scalar ? quern_qgemm_tile_scalar : quern_qgemm_tile_avx2
        q.withUnsafeBufferPointer { qp in
            packed.withUnsafeMutableBufferPointer { pp in
                packA(qp.baseAddress!, rows: m, k: k, into: pp.baseAddress!)
                out.withUnsafeMutableBufferPointer { op in
                    for j in 0..<((n + nr - 1) / nr) {
                        var i = 0
                        while i < m {
                            tile(kp, pp.baseAddress! + i * kp, w.panel(j), op.baseAddress! + i * n + j * nr, n,
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
