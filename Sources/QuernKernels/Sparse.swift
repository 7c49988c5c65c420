import CKernels

/// Pruned weights `[N, K]` in compressed sparse rows: only the nonzeros are stored and
/// multiplied. `SparseGEMM` runs them; `LinearOperator.choose` picks them over the dense
/// packed GEMM below `densityThreshold`.
///
/// The rows are cut into panels of `panelWidth` inputs, each panel a CSR of its own
/// (panel-major): the kernel walks one panel at a time, so the 64 K-rows of a transposed
/// 64-row input block it reads (16 KB) stay in L1; streamed from L2 for every nonzero,
/// they would hold the kernel to about a third of its FMA rate.
public struct SparseWeights: Sendable {
    public let n: Int
    public let k: Int
    /// Panel p's row r holds nonzeros rowptr[p·(n+1) + r] ..< rowptr[p·(n+1) + r + 1].
    let rowptr: [Int32]
    /// Input index (absolute, not within the panel) and weight of each nonzero.
    let cols: [Int32]
    let vals: [Float]

    static let panelWidth = 64
    var panels: Int { (k + Self.panelWidth - 1) / Self.panelWidth }

    var nonzeros: Int { vals.count }

    /// Below this density the CSR kernel beats the dense packed GEMM on this CPU, measured
    /// with `quern bench kernels` (M = 1024–2048) for each dense tile:
    /// - AVX2 (Zen 3): 1.07–1.38× dense at 0.5, 1.43–1.98× at 0.3, 1.87–2.26× at 0.2; a
    ///   wide digits mlp pruned to 0.2 ran 1.54–1.78× its dense self. 0.35 keeps a margin
    ///   over the noise of one measurement.
    /// - AVX-512 (Zen 5, zmm CSR against the 6×32 zmm tile, one thread): 0.63–0.68× at
    ///   0.5, 0.95–1.05× at 0.3, 1.40–2.11× at 0.2, 1.88–3.14× at 0.1: 0.25.
    public static var densityThreshold: Double { ISA.active.kernels.sgemmWideTile == nil ? 0.35 : 0.25 }

    public init(_ w: Tensor) {
        precondition(w.shape.count == 2, "SparseWeights: weights must be [N, K], got \(w.shape)")
        n = w.shape[0]
        k = w.shape[1]
        var rowptr: [Int32] = [], cols: [Int32] = [], vals: [Float] = []
        let width = Self.panelWidth
        for p in 0..<((k + width - 1) / width) {
            rowptr.append(Int32(vals.count))
            for r in 0..<n {
                for c in (p * width)..<min(k, (p + 1) * width) where w.data[r * k + c] != 0 {
                    cols.append(Int32(c))
                    vals.append(w.data[r * k + c])
                }
                rowptr.append(Int32(vals.count))
            }
        }
        if rowptr.isEmpty { rowptr = [Int32](repeating: 0, count: n + 1) }
        self.rowptr = rowptr
        self.cols = cols
        self.vals = vals
    }
}

public enum SparseGEMM {
    static let block = Int(QUERN_SPMM_BLOCK)
    /// The block width the kernels run for a block of `rows` input rows: blocks of 16 rows
    /// or more are zero-padded to 64 for the vector kernels (the padding's products are
    /// computed and dropped); narrower ones run the scalar kernel at their own width.
    static func kernelWidth(rows: Int) -> Int { rows >= 16 ? block : rows }

    /// `y[M, N] = act(x[M, K] · wᵀ + bias)` with CSR weights. Rows of x go in blocks of 64,
    /// transposed so each nonzero is one AXPY over the block. Tasks are (block, slice of
    /// output rows) pairs: with few blocks the output rows are split too, so both cores
    /// have work on a batch of a hundred records.
    public static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: SparseWeights, bias: UnsafePointer<Float>?,
        activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
        isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        let k = w.k, n = w.n
        guard m > 0, n > 0 else { return }
        let kernels = isa.kernels
        let kernel = kernels.spmmCSR, epilogue = kernels.biasActivation, transpose = kernels.transpose
        let blocks = (m + block - 1) / block
        let slices = min(max(1, (4 * pool.threads + blocks - 1) / blocks), max(1, n / 32))
        let sliceRows = (n + slices - 1) / slices
        let panels = w.panels
        w.rowptr.withUnsafeBufferPointer { rowptr in
            w.cols.withUnsafeBufferPointer { cols in
                w.vals.withUnsafeBufferPointer { vals in
                    pool.parallelFor(blocks * slices) { task in
                        let b = task / slices, n0 = (task % slices) * sliceRows, n1 = min(n, n0 + sliceRows)
                        guard n0 < n1 else { return }
                        let m0 = b * block, rows = min(block, m - m0)
                        let mb = kernelWidth(rows: rows)
                        let xt = UnsafeMutablePointer<Float>.allocate(capacity: max(k * block, 1))
                        let yt = UnsafeMutablePointer<Float>.allocate(capacity: n * block)
                        defer { xt.deallocate(); yt.deallocate() }
                        if rows < mb { xt.initialize(repeating: 0, count: k * block) }
                        transpose(x + m0 * k, k, rows, k, xt, block)
                        for p in 0..<panels {
                            kernel(
                                xt, block, mb, rowptr.baseAddress! + p * (n + 1), cols.baseAddress, vals.baseAddress,
                                n0, n1, yt, block, p == 0 ? 0 : 1)
                        }
                        if panels == 0 { yt.initialize(repeating: 0, count: n * block) }
                        transpose(yt + n0 * block, block, n1 - n0, rows, y + m0 * n + n0, n)
                        if bias != nil || activation != .none {
                            epilogue(y + m0 * n + n0, n, rows, n1 - n0, bias.map { $0 + n0 }, activation.code)
                        }
                    }
                }
            }
        }
    }
}

/// Two int8 weights widened to int16 and packed as one 32-bit word (w0 low, w1 high):
/// the operand vpmaddwd multiplies against a pair of activations.
func pair(_ a: Int8, _ b: Int8) -> UInt32 {
    UInt32(UInt16(bitPattern: Int16(a))) | UInt32(UInt16(bitPattern: Int16(b))) << 16
}

/// Pruned int8 weights in 1×4 blocks (four consecutive inputs of one output, the unit
/// of the int8 dot product): only blocks with a nonzero weight are stored and multiplied.
/// Quantization (per-channel scales, column sums) is that of the dense `QuantizedWeights`,
/// so sparse and dense int8 give bit-identical results.
public struct BlockSparseWeights: Sendable {
    public let n: Int
    public let k: Int
    let rowptr: [Int32]
    let groups: [Int32]
    /// Each block's weights as two int16 pairs: (w0, w1) and (w2, w3).
    let lo: [UInt32]
    let hi: [UInt32]
    /// Each block's weights as one int8 quad, w0 in the low byte (the vpdpbusd kernel's).
    let quads: [UInt32]
    let dense: QuantizedWeights

    /// Below this fraction of blocks kept, the zmm vpdpbusd kernel beats AVX512-VNNI's
    /// dense zmm tile: `quern bench kernels` on Zen 5 (M = 1024–2048, one thread) gave
    /// 0.71–1.09× dense at 0.5, 1.35–1.58× at 0.3, 1.74–2.13× at 0.2 and 2.12–3.18× at
    /// 0.1. (The AVX2 kernels' threshold is in `LinearOperator.choose`.)
    public static let zmmDensityThreshold = 0.35

    public var blocks: Int { groups.count }
    /// Fraction of 1×4 blocks kept.
    public var blockDensity: Double { Double(blocks) / Double(max(n * ((k + 3) / 4), 1)) }

    public init(_ w: QuantizedWeights) {
        n = w.n
        k = w.k
        dense = w
        var rowptr: [Int32] = [0], groups: [Int32] = [], lo: [UInt32] = [], hi: [UInt32] = [], quads: [UInt32] = []
        let rows = w.n, width = w.k
        for r in 0..<rows {
            for g in 0..<((width + 3) / 4) {
                let v = (0..<4).map { t in 4 * g + t < width ? w.values[r * width + 4 * g + t] : 0 }
                if v.allSatisfy({ $0 == 0 }) { continue }
                groups.append(Int32(g))
                lo.append(pair(v[0], v[1]))
                hi.append(pair(v[2], v[3]))
                quads.append(v.enumerated().reduce(0) { $0 | UInt32(UInt8(bitPattern: $1.element)) << (8 * $1.offset) })
            }
            rowptr.append(Int32(groups.count))
        }
        self.rowptr = rowptr
        self.groups = groups
        self.lo = lo
        self.hi = hi
        self.quads = quads
    }
}

/// Pruned int8 weights in compressed sparse rows (unstructured pruning), each row's
/// nonzeros taken two at a time (the unit of vpmaddwd; an odd row ends with a zero).
/// Quantization is that of the dense `QuantizedWeights`: sparse and dense int8 give
/// bit-identical results.
public struct SparseQuantizedWeights: Sendable {
    public let n: Int
    public let k: Int
    /// Row n's pairs are rowptr[n]..<rowptr[n+1]; pair e covers inputs cols[2e], cols[2e+1].
    let rowptr: [Int32]
    let cols: [Int32]
    /// Each pair's two weights as int16: w0 | w1 << 16.
    let pairs: [UInt32]
    let dense: QuantizedWeights
    public let nonzeros: Int

    public var density: Double { Double(nonzeros) / Double(max(n * k, 1)) }

    /// Below this density the CSR int8 kernel beats dense int8. Measured with `quern bench
    /// kernels` on Zen 3 (AVX2): 0.62–0.97× at 0.5, 1.25–1.59× at 0.3, 1.5–2.3× at 0.2.
    public static let densityThreshold = 0.35

    /// Whether these weights should run sparse rather than dense.
    public var preferred: Bool { density < Self.densityThreshold }

    public init(_ w: QuantizedWeights) {
        n = w.n
        k = w.k
        dense = w
        var rowptr: [Int32] = [0], cols: [Int32] = [], pairs: [UInt32] = [], nonzeros = 0
        for r in 0..<w.n {
            let kept = (0..<w.k).filter { w.values[r * w.k + $0] != 0 }
            nonzeros += kept.count
            var i = 0
            while i < kept.count {
                let c0 = kept[i], c1 = i + 1 < kept.count ? kept[i + 1] : kept[i]
                let w0 = w.values[r * w.k + c0], w1: Int8 = i + 1 < kept.count ? w.values[r * w.k + c1] : 0
                cols += [Int32(c0), Int32(c1)]
                pairs.append(pair(w0, w1))
                i += 2
            }
            rowptr.append(Int32(pairs.count))
        }
        self.rowptr = rowptr
        self.cols = cols
        self.pairs = pairs
        self.nonzeros = nonzeros
    }
}

/// Sparse int8 GEMM: `y[M, N] ≈ act(x · wᵀ + bias)` with per-row dynamic u8 activations,
/// as `QGEMM.linear` computes it (bit-identical output). Rows of x go in blocks of 64:
/// each block is quantized, laid out transposed for the sparse kernel, multiplied, and
/// its integer sums go through the dense int8 epilogue.
public enum SparseQGEMM {
    static let block = Int(QUERN_SPMM_BLOCK)

    /// 1×4 block-sparse weights.
    public static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: BlockSparseWeights, bias: UnsafePointer<Float>?,
        activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
        isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        if let kernel = isa.kernels.spmmQ1x4Quads {
            let transpose = isa.kernels.transpose
            // vpdpbusd: one K quad of the block's rows per weight word.
            let groupCount = (w.k + 3) / 4
            w.rowptr.withUnsafeBufferPointer { rowptr in
                w.groups.withUnsafeBufferPointer { groups in
                    w.quads.withUnsafeBufferPointer { quads in
                        blocks(
                            x, m: m, w.dense, bias: bias, activation: activation, into: y, isa: isa, pool: pool,
                            layoutBytes: groupCount * block * 4
                        ) { q, mb, layout in
                            let xt = layout.assumingMemoryBound(to: UInt32.self)
                            if w.k % 4 == 0 {
                                // Whole quads: the packing is a 32-bit transpose of the rows.
                                transpose(
                                    UnsafePointer(OpaquePointer(q)), groupCount, mb, groupCount,
                                    UnsafeMutablePointer(OpaquePointer(xt)), block)
                            } else {
                                quern_pack_quads_t(q, w.k, mb, w.k, groupCount, xt, block)
                            }
                        } multiply: { layout, width, n0, n1, sums in
                            kernel(
                                layout.assumingMemoryBound(to: UInt32.self), block, width, rowptr.baseAddress!,
                                groups.baseAddress, quads.baseAddress, n0, n1, sums, block)
                        }
                    }
                }
            }
            return
        }
        let kernel = isa.kernels.spmmQ1x4
        let pairCount = 2 * ((w.k + 3) / 4)  // whole 1×4 groups, so pair 2g+1 always exists
        w.rowptr.withUnsafeBufferPointer { rowptr in
            w.groups.withUnsafeBufferPointer { groups in
                w.lo.withUnsafeBufferPointer { lo in
                    w.hi.withUnsafeBufferPointer { hi in
                        blocks(
                            x, m: m, w.dense, bias: bias, activation: activation, into: y, isa: isa, pool: pool,
                            layoutBytes: pairCount * block * 4
                        ) { q, mb, layout in
                            quern_pack_pairs_t(
                                q, w.k, mb, w.k, pairCount, layout.assumingMemoryBound(to: UInt32.self), block)
                        } multiply: { layout, width, n0, n1, sums in
                            kernel(
                                layout.assumingMemoryBound(to: UInt32.self), block, width, rowptr.baseAddress!,
                                groups.baseAddress, lo.baseAddress, hi.baseAddress, n0, n1, sums, block)
                        }
                    }
                }
            }
        }
    }

    /// Unstructured (CSR) sparse weights.
    public static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: SparseQuantizedWeights, bias: UnsafePointer<Float>?,
        activation: Activation = .none, into y: UnsafeMutablePointer<Float>,
        isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        let kernel = isa.kernels.spmmQCSR
        w.rowptr.withUnsafeBufferPointer { rowptr in
            w.cols.withUnsafeBufferPointer { cols in
                w.pairs.withUnsafeBufferPointer { pairs in
                    blocks(
                        x, m: m, w.dense, bias: bias, activation: activation, into: y, isa: isa, pool: pool,
                        layoutBytes: w.k * block * 2
                    ) { q, mb, layout in
                        quern_transpose_u8_i16(q, w.k, mb, w.k, layout.assumingMemoryBound(to: Int16.self), block)
                    } multiply: { layout, width, n0, n1, sums in
                        kernel(
                            layout.assumingMemoryBound(to: Int16.self), block, width, rowptr.baseAddress!,
                            cols.baseAddress, pairs.baseAddress, n0, n1, sums, block)
                    }
                }
            }
        }
    }

    /// Output rows whose sums are finished at a time: their transposed sums (64 × 64
    /// int32) and row-major copy stay in L1 between the kernel, the transpose and the
    /// epilogue, where a whole matrix's (N × 64) would have gone out to L2 and back.
    static let outputChunk = 64

    /// The shared driver. `pack(q, mb, layout)` lays out the block's mb u8 rows `q` in
    /// `layout` (layoutBytes, zeroed when the kernel width exceeds mb);
    /// `multiply(layout, width, n0, n1, sums)` writes the transposed integer sums of
    /// output rows [n0, n1) (row n at `sums + n·64`) over `width` columns
    /// (`SparseGEMM.kernelWidth`).
    static func blocks(
        _ x: UnsafePointer<Float>, m: Int, _ dense: QuantizedWeights, bias: UnsafePointer<Float>?,
        activation: Activation, into y: UnsafeMutablePointer<Float>, isa: ISA, pool: ThreadPool,
        layoutBytes: Int,
        pack: (UnsafePointer<UInt8>, Int, UnsafeMutableRawPointer) -> Void,
        multiply: (UnsafeMutableRawPointer, Int, Int, Int, UnsafeMutablePointer<Int32>) -> Void
    ) {
        let k = dense.k, n = dense.n
        guard m > 0, n > 0 else { return }
        let kernels = isa.kernels
        let quantize = kernels.quantizeRows, dequantize = kernels.dequantize, transpose = kernels.transpose
        pool.parallelFor((m + block - 1) / block) { b in
            let m0 = b * block, mb = min(block, m - m0)
            let q = UnsafeMutablePointer<UInt8>.allocate(capacity: max(mb * k, 1))
            let layout = UnsafeMutableRawPointer.allocate(byteCount: max(layoutBytes, 1), alignment: 64)
            let chunk = outputChunk
            let sums = UnsafeMutablePointer<Int32>.allocate(capacity: n * block)
            let acc = UnsafeMutablePointer<Int32>.allocate(capacity: mb * chunk)
            let scale = UnsafeMutablePointer<Float>.allocate(capacity: mb)
            let zp = UnsafeMutablePointer<Int32>.allocate(capacity: mb)
            defer {
                q.deallocate(); layout.deallocate(); sums.deallocate(); acc.deallocate()
                scale.deallocate(); zp.deallocate()
            }
            let width = SparseGEMM.kernelWidth(rows: mb)
            if width > mb { layout.initializeMemory(as: UInt8.self, repeating: 0, count: max(layoutBytes, 1)) }
            quantize(x + m0 * k, mb, k, k, q, k, scale, zp)
            pack(q, mb, layout)
            var n0 = 0
            while n0 < n {
                let n1 = min(n, n0 + chunk)
                multiply(layout, width, n0, n1, sums)
                // Back to row-major sums (the fp32 transpose only moves bits), then the
                // same epilogue as dense int8.
                transpose(
                    UnsafePointer(OpaquePointer(sums + n0 * block)), block, n1 - n0, mb,
                    UnsafeMutablePointer(OpaquePointer(acc)), chunk)
                dequantize(
                    acc, chunk, mb, n1 - n0, y + m0 * n + n0, n, scale, zp, dense.paddedScales.pointer + n0,
                    dense.colsum.pointer + n0, bias.map { $0 + n0 }, activation.code)
                n0 = n1
            }
        }
    }
}
