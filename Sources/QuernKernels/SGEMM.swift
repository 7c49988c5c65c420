import CKernels

/// Weights `[N, K]` (PyTorch's Linear layout) packed once, at model load, into panels of
/// `NR` output columns: panel `j` holds, for each `p` in `0..<K`, the 16 values
/// `w[16j + 0..<16][p]` contiguously (zero-padded past `N`). A K-block of a panel is then
/// one contiguous run, which is what the micro-kernel streams through.
public struct PackedWeights: Sendable {
    public let n: Int
    public let k: Int
    let panels: AlignedBuffer<Float>
    static let nr = Int(QUERN_SGEMM_NR)

    public init(_ w: Tensor) {
        precondition(w.shape.count == 2, "PackedWeights: weights must be [N, K], got \(w.shape)")
        self.init(w.data, n: w.shape[0], k: w.shape[1])
    }

    public init(_ w: [Float], n: Int, k: Int) {
        precondition(w.count == n * k)
        self.n = n
        self.k = k
        let nr = Self.nr
        let panelCount = (n + nr - 1) / nr
        panels = AlignedBuffer(count: panelCount * k * nr)
        let dst = panels.pointer
        w.withUnsafeBufferPointer { src in
            for j in 0..<panelCount {
                let base = dst + j * k * nr
                for c in 0..<min(nr, n - j * nr) {
                    let row = src.baseAddress! + (j * nr + c) * k
                    for p in 0..<k { base[p * nr + c] = row[p] }
                }
            }
        }
    }

    /// Packs the transpose of row-major `a` `[rows, cols]`: the weights `[cols, rows]`, so
    /// `SGEMM.linear(x, w)` computes `x · a` (training's backward products). Reading `a`
    /// row by row is what panels want, so this costs no more than packing `a` itself.
    public init(transposing a: UnsafePointer<Float>, rows: Int, cols: Int) {
        n = cols
        k = rows
        let nr = Self.nr
        let panelCount = (n + nr - 1) / nr
        panels = AlignedBuffer(count: panelCount * k * nr)
        for j in 0..<panelCount {
            let base = panels.pointer + j * k * nr
            let width = min(nr, n - j * nr)
            for p in 0..<k {
                (base + p * nr).update(from: a + p * cols + j * nr, count: width)
            }
        }
    }

    func panel(_ j: Int) -> UnsafePointer<Float> { UnsafePointer(panels.pointer + j * k * Self.nr) }
}

/// Weights the fp32 GEMM reads panel by panel: dense fp32 panels as they are stored, or
/// compressed ones (`Q4Weights`) expanded a K block at a time into a scratch panel in L1.
protocol PanelSource {
    var n: Int { get }
    var k: Int { get }
    /// Rows `pc ..< pc + count` of panel `j` in the B layout (`count` steps of NR floats):
    /// a pointer into the weights, or `scratch` filled.
    func panel(_ j: Int, rows pc: Int, _ count: Int, scratch: UnsafeMutablePointer<Float>, kernels: KernelTable)
        -> UnsafePointer<Float>
}

extension PackedWeights: PanelSource {
    @inline(__always)
    func panel(_ j: Int, rows pc: Int, _ count: Int, scratch: UnsafeMutablePointer<Float>, kernels: KernelTable)
        -> UnsafePointer<Float>
    {
        panel(j) + pc * Self.nr
    }
}

/// fp32 GEMM with a fused epilogue: `y[M, N] = act(x[M, K] · wᵀ + bias)`.
///
/// BLIS-style blocking in Swift around a C register tile (6×16 on AVX2): K is split into
/// blocks of `kc` so an A micro-panel plus a B micro-panel sit in L1; M into blocks of
/// `mc` rows whose packed A stays in L2 while every B panel streams past it. Bias and
/// activation are applied to each column panel of a row block right after its last K
/// block, while it is hot.
/// Threads take whole row blocks (large M) or groups of column panels (small M).
public enum SGEMM {
    static let mr = Int(QUERN_SGEMM_MR), nr = Int(QUERN_SGEMM_NR)
    static let kc = 256, mc = 96
    /// Products smaller than this many multiply-adds run on the calling thread.
    public static let parallelMinimumMACs = 1 << 18
    /// Bytes of packed A one task keeps hot: half of a 512 KiB L2.
    static let l2Budget = 256 << 10
    /// Column panels per group: 16 × 16 columns × 96 rows × 4 bytes = 96 KiB of C in L2.
    static let panelsPerGroup = 16

    public static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: PackedWeights, bias: UnsafePointer<Float>?,
        activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
        isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        linear(x, m: m, w, bias: bias, activation: activation, into: y, kernels: isa.kernels, pool: pool)
    }

    /// The same through a given table (tests pass `KernelTable.avx512Emulated`). With a
    /// wide tile, the 6×32 tile runs over pairs of panels, else the 6×16 tile over each.
    static func linear<W: PanelSource>(
        _ x: UnsafePointer<Float>, m: Int, _ w: W, bias: UnsafePointer<Float>?,
        activation: Activation, into y: UnsafeMutablePointer<Float>, kernels: KernelTable,
        pool: ThreadPool
    ) {
        let k = w.k, n = w.n
        guard m > 0, n > 0 else { return }
        // Below about 5 µs of work a hand-off to another thread costs more than it saves
        // (training's small layers call many such products back to back).
        let pool = Double(m) * Double(n) * Double(k) < Double(SGEMM.parallelMinimumMACs) ? .single : pool
        let tile = kernels.sgemmTile, wide = kernels.sgemmWideTile, epilogue = kernels.biasActivation
        let step = wide == nil ? 1 : 2
        let act = activation.code
        let panelCount = (n + nr - 1) / nr

        let rowsPadded = { (rows: Int) in (rows + mr - 1) / mr * mr }

        /// Rows [r0, r0+rows) × panels [p0, p1). A for those rows is packed once for all
        /// of K (block `pc` starts at `scratch + rowsPadded·pc`); then, group by group of
        /// column panels, every K block runs over the group, so the group's C tiles stay
        /// in L2 between K blocks instead of making a round trip to memory for each.
        func block(
            rows r0: Int, _ rows: Int, panels p0: Int, _ p1: Int, scratch: UnsafeMutablePointer<Float>,
            bScratch: UnsafeMutablePointer<Float>
        ) {
            let padded = rowsPadded(rows)
            var pc = 0
            while pc < k {
                let kcur = min(kc, k - pc)
                packA(x, lda: k, rows: r0, rows, cols: pc, kcur, into: scratch + padded * pc)
                pc += kcur
            }
            var g = p0
            while g < p1 {
                let gEnd = min(p1, g + panelsPerGroup)
                pc = 0
                repeat {
                    let kcur = min(kc, k - pc)
                    let a = scratch + padded * pc
                    let last = pc + kcur >= k
                    for j in stride(from: g, to: gEnd, by: step) {
                        // The wide tile covers two panels only when both are in this group.
                        let cols = min(min(step, gEnd - j) * nr, n - j * nr)
                        let b = w.panel(j, rows: pc, kcur, scratch: bScratch, kernels: kernels)
                        let b1 =
                            j + 1 < gEnd && wide != nil
                            ? w.panel(j + 1, rows: pc, kcur, scratch: bScratch + kc * nr, kernels: kernels) : nil
                        var i = 0
                        while i < rows {
                            let mcur = min(mr, rows - i)
                            let c = y + (r0 + i) * n + j * nr
                            if let wide {
                                wide(kcur, a + i * kcur, b, b1, c, n, mcur, cols, pc > 0 ? 1 : 0)
                            } else {
                                tile(kcur, a + i * kcur, b, c, n, mcur, cols, pc > 0 ? 1 : 0)
                            }
                            i += mr
                        }
                        // Bias and activation once over the block's rows of these columns
                        // (still in L1): per 6-row tile, the call would cost as much as its work.
                        if last && (bias != nil || act != QUERN_ACT_NONE) {
                            epilogue(y + r0 * n + j * nr, n, rows, cols, bias.map { $0 + j * nr }, act)
                        }
                    }
                    pc += kcur
                } while pc < k
                g = gEnd
            }
        }

        let threads = pool.threads
        if m >= mc * threads || m >= 2 * mr * threads {
            // Large M: row blocks of at most mc rows, fewer for long K so that a block's
            // packed A (all of K) stays within half of L2, and fewer again so every
            // thread gets work.
            let l2Rows = max(mr, (l2Budget / (k * MemoryLayout<Float>.size)) / mr * mr)
            let rowsPerTask = min(mc, l2Rows, max(mr, (m / (threads * 2) + mr - 1) / mr * mr))
            let tasks = (m + rowsPerTask - 1) / rowsPerTask
            pool.parallelFor(tasks) { t in
                let r0 = t * rowsPerTask, rows = min(rowsPerTask, m - r0)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(rowsPadded(rows) * k, 1))
                defer { scratch.deallocate() }
                let bScratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * kc * nr)
                defer { bScratch.deallocate() }
                block(rows: r0, rows, panels: 0, panelCount, scratch: scratch, bScratch: bScratch)
            }
        } else {
            // Small M (1…tens of rows): split the output columns; each task packs the few
            // rows of A it needs (tiny next to streaming its share of the weights).
            let groups = min(panelCount, threads * 4)
            let perGroup = (panelCount + groups - 1) / groups
            let tasks = (panelCount + perGroup - 1) / perGroup
            pool.parallelFor(tasks) { t in
                let p0 = t * perGroup, p1 = min(panelCount, p0 + perGroup)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(rowsPadded(m) * k, 1))
                defer { scratch.deallocate() }
                let bScratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * kc * nr)
                defer { bScratch.deallocate() }
                block(rows: 0, m, panels: p0, p1, scratch: scratch, bScratch: bScratch)
            }
        }
    }

    /// Packs rows [r0, r0+rows) × columns [c0, c0+cols) of row-major x (leading dimension
    /// lda) into MR-row panels: panel q holds, for each column p, rows 6q…6q+5 (zeros past
    /// the last row).
    static func packA(
        _ x: UnsafePointer<Float>, lda: Int, rows r0: Int, _ rows: Int, cols c0: Int, _ cols: Int,
        into dst: UnsafeMutablePointer<Float>
    ) {
        quern_sgemm_pack_a(x + r0 * lda + c0, lda, rows, cols, dst)
    }
}
