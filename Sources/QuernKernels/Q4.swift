import CKernels

/// Weights `[N, K]` in 4 bits: groups of `QUERN_Q4_GROUP` (32) consecutive weights of a
/// row share a scale and an offset, `w = q·scale + offset` with q in 0…15. The layouts of
/// GGUF's Q4_0 (offset −8·scale), Q4_1 (offset = min) and Q4_K (sub-block scale and min)
/// are all this one, so those files run as stored; fp32 weights quantize to it as Q4_1
/// does (per-group min and max).
///
/// Stored in the fp32 GEMM's panel order (see `quern_q4_dequant_panel_*`), so a product
/// expands one K block of a panel at a time into L1 and runs the fp32 tiles on it: the
/// weights stream from memory at 4.5 bits each, and the result is exactly the fp32
/// product with the dequantized weights.
public struct Q4Weights: Sendable {
    public let n: Int
    public let k: Int
    let nibbles: AlignedBuffer<UInt8>
    /// Per panel, per group: 16 scales then 16 offsets.
    let params: AlignedBuffer<Float>
    static let nr = Int(QUERN_SGEMM_NR), group = Int(QUERN_Q4_GROUP)

    public var groups: Int { (k + Self.group - 1) / Self.group }
    var panelCount: Int { (n + Self.nr - 1) / Self.nr }
    /// Bytes of weights: what decoding reads per token.
    public var bytes: Int { nibbles.count + params.count * MemoryLayout<Float>.size }

    /// From each row's groups: `group(row, g)` gives the scale, the offset and the
    /// group's quantized values (0…15; the last group of a row may be short).
    public init(n: Int, k: Int, group: (Int, Int) -> (scale: Float, offset: Float, values: [UInt8])) {
        precondition(n > 0 && k > 0)
        self.n = n
        self.k = k
        let nr = Self.nr, groups = (k + Self.group - 1) / Self.group, panels = (n + nr - 1) / nr
        nibbles = AlignedBuffer(count: panels * k * nr / 2)
        params = AlignedBuffer(count: panels * groups * 2 * nr)
        for row in 0..<n {
            let j = row / nr, c = row % nr
            let panel = nibbles.pointer + j * k * nr / 2
            let pp = params.pointer + j * groups * 2 * nr
            for g in 0..<groups {
                let (scale, offset, values) = group(row, g)
                let width = min(Self.group, k - g * Self.group)
                precondition(values.count == width && values.allSatisfy { $0 < 16 }, "a group is \(width) values 0…15")
                pp[g * 2 * nr + c] = scale
                pp[g * 2 * nr + nr + c] = offset
                for (i, q) in values.enumerated() {
                    let at = panel + (g * Self.group + i) * nr / 2 + c % 8
                    at.pointee |= c < 8 ? q : q << 4
                }
            }
        }
    }

    /// fp32 weights quantized per group of 32 as Q4_1 does: offset = the group's
    /// minimum, scale = (max − min)/15, q = round((w − min)/scale).
    public init(quantizing w: Tensor) {
        precondition(w.shape.count == 2)
        let k = w.shape[1]
        self.init(n: w.shape[0], k: k) { row, g in
            let start = row * k + g * Self.group
            let values = w.data[start..<(start + min(Self.group, k - g * Self.group))]
            let lo = values.min()!, hi = values.max()!
            let scale = (hi - lo) / 15
            let inverse = scale > 0 ? 1 / scale : 0
            return (scale, lo, values.map { UInt8(min(max(($0 - lo) * inverse, 0), 15).rounded()) })
        }
    }

    /// The weights as fp32 `[N, K]`: what the products compute with, `q·scale + offset`
    /// rounded once (fused), as the panel kernels expand them.
    public func dequantized() -> Tensor {
        var out = [Float](repeating: 0, count: n * k)
        let nr = Self.nr
        for row in 0..<n {
            let j = row / nr, c = row % nr
            let pp = params.pointer + j * groups * 2 * nr
            for p in 0..<k {
                let byte = nibbles.pointer[(j * k + p) * nr / 2 + c % 8]
                let q = c < 8 ? byte & 15 : byte >> 4
                let g = p / Self.group
                out[row * k + p] = pp[g * 2 * nr + nr + c].addingProduct(Float(q), pp[g * 2 * nr + c])
            }
        }
        return Tensor(shape: [n, k], data: out)
    }
}

extension Q4Weights: PanelSource {
    @inline(__always)
    func panel(_ j: Int, rows pc: Int, _ count: Int, scratch: UnsafeMutablePointer<Float>, kernels: KernelTable)
        -> UnsafePointer<Float>
    {
        kernels.q4DequantPanel(
            nibbles.pointer + j * k * Self.nr / 2, params.pointer + j * groups * 2 * Self.nr, pc, count, scratch)
        return UnsafePointer(scratch)
    }
}

extension SGEMM {
    /// `y[M, N] = act(x[M, K] · wᵀ + bias)` with 4-bit weights.
    public static func linear(
        _ x: UnsafePointer<Float>, m: Int, _ w: Q4Weights, bias: UnsafePointer<Float>?,
        activation: Activation = .none, into y: UnsafeMutablePointer<Float>, isa: ISA = .active,
        pool: ThreadPool = .shared
    ) {
        linear(x, m: m, w, bias: bias, activation: activation, into: y, kernels: isa.kernels, pool: pool)
    }
}

extension Q4Weights {
    /// The GGUF block formats that are this layout as stored (no re-quantization).
    public static let ggmlTypes: Set<GGMLType> = [.q4_0, .q4_1, .q4_K]

    /// Rows of GGUF tensors in Q4_0, Q4_1 or Q4_K, as stored: `row(r)` gives output row
    /// `r`'s type and bytes (whole blocks, `k` weights). Q4_0's `d·(q − 8)` becomes scale
    /// `d`, offset `−8d`; Q4_K's sub-block `(d·sc)·q − dmin·m` becomes scale `d·sc`, offset
    /// `−dmin·m`. Each product is exact in fp32 (a half times a 6-bit integer), so the
    /// expanded weights equal `QuantBlocks.dequantize` bit for bit.
    public init(n: Int, k: Int, ggmlRows row: (Int) -> (GGMLType, UnsafeRawBufferPointer)) {
        precondition(k % Self.group == 0, "GGUF rows are whole 32-weight groups")
        self.init(n: n, k: k) { r, g in
            let (type, bytes) = row(r)
            func half(_ at: Int) -> Float {
                QuantBlocks.float(fromHalf: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)
            }
            switch type {
            case .q4_0, .q4_1:
                let at = g * type.blockBytes
                let d = half(at), nibbles = at + (type == .q4_0 ? 2 : 4)
                let values = (0..<32).map { i in i < 16 ? bytes[nibbles + i] & 15 : bytes[nibbles + i - 16] >> 4 }
                return (d, type == .q4_0 ? -8 * d : half(at + 2), values)
            case .q4_K:
                let at = (g / 8) * type.blockBytes, j = g % 8
                let (sc, mn) = QuantBlocks.kQuantScale(bytes, at + 4, j)
                let nibbles = at + 16 + 32 * (j / 2)
                let values = (0..<32).map { l in j % 2 == 0 ? bytes[nibbles + l] & 15 : bytes[nibbles + l] >> 4 }
                return (half(at) * Float(sc), -(half(at + 2) * Float(mn)), values)
            default:
                preconditionFailure("\(type.name) is not a 4-bit group format")
            }
        }
    }
}
