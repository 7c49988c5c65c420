// swift-format-ignore: AlwaysUseLowerCamelCase
// (the case names are ggml's own, Q4_0 and Q4_K lower-cased, so a reader can grep for both)
/// The tensor formats of ggml (llama.cpp's tensor library) that Quern reads, numbered as
/// GGUF files number them. A quantized format stores a tensor's rows as blocks of
/// `blockWeights` weights in `blockBytes` bytes each; a row is always a whole number of
/// blocks. Scales (`d`, `dmin`, `m`) are IEEE half floats, multi-byte fields are
/// little-endian, and "nibble" means 4 bits. The layouts below are those of ggml's
/// `ggml-common.h`, element order as `ggml-quants.c` and the `gguf` Python package
/// (`gguf/quants.py`) dequantize them.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    /// IEEE single, 4 bytes a weight.
    case f32 = 0
    /// IEEE half, 2 bytes a weight.
    case f16 = 1
    /// 32 weights: `d` (f16), then 16 bytes of nibbles. Weight `i < 16` is the low nibble
    /// of byte `i`, weight `16 + i` its high nibble; value `d · (q − 8)`.
    case q4_0 = 2
    /// 32 weights: `d`, `m` (f16), 16 bytes of nibbles as Q4_0; value `d · q + m`.
    case q4_1 = 3
    /// 32 weights: `d`, `qh` (u32: bit `i` is the fifth bit of weight `i`), 16 bytes of
    /// low nibbles as Q4_0; value `d · (q − 16)`.
    case q5_0 = 6
    /// 32 weights: `d`, `m`, `qh`, 16 bytes of low nibbles as Q5_0; value `d · q + m`.
    case q5_1 = 7
    /// 32 weights: `d`, then 32 signed bytes; value `q · d`.
    case q8_0 = 8
    /// 256 weights in 16 groups of 16: 16 bytes of group scales (low nibble: scale, high
    /// nibble: min), 64 bytes of 2-bit weights, `d`, `dmin`. Weight `e` is bits
    /// `2·((e mod 128) / 32)` of byte `32·(e / 128) + e mod 32`; value
    /// `(d · scale) · q − (dmin · min)` of its group `e / 16`.
    case q2_K = 10
    /// 256 weights in 16 groups of 16: 32 bytes `hmask` (bit `e / 32` of byte `e mod 32`),
    /// 64 bytes of 2-bit weights laid out as Q2_K, 12 bytes of 6-bit signed group scales
    /// (low 4 bits from nibbles of bytes 0–7, high 2 bits from bytes 8–11, minus 32), `d`.
    /// `q` is the 2-bit weight, minus 4 where the hmask bit is clear; value `(d · scale) · q`.
    case q3_K = 11
    /// 256 weights in 8 sub-blocks of 32: `d`, `dmin`, 12 bytes of 6-bit scales and mins
    /// (`KQuantScales`), 128 bytes of nibbles: byte `32·c + l` holds weight `64·c + l` low
    /// and `64·c + 32 + l` high. Value `(d · scale) · q − (dmin · min)` of sub-block `e / 32`.
    case q4_K = 12
    /// 256 weights: as Q4_K with 32 bytes `qh` between the scales and the nibbles: bit
    /// `e / 32` of `qh[e mod 32]` is weight `e`'s fifth bit.
    case q5_K = 13
    /// 256 weights in 16 groups of 16: 128 bytes of low nibbles, 64 bytes of high 2-bit
    /// pairs, 16 signed group scales, `d`. In each half `h` of 128 weights, weight
    /// `r < 128` takes nibble `r / 64` of byte `64·h + r mod 64` and 2 bits `2·(r / 32)` of
    /// byte `128 + 32·h + r mod 32`; value `(d · scale) · (q − 32)`.
    case q6_K = 14
    /// bfloat16: the upper half of an IEEE single, 2 bytes a weight.
    case bf16 = 30

    /// ggml's name for the format ("Q4_K").
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        }
    }

    /// Weights in one block.
    public var blockWeights: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: QuantBlocks.blockWeights
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: QuantBlocks.superBlockWeights
        }
    }

    /// Bytes in one block, field by field as documented on each case.
    public var blockBytes: Int {
        let half = 2, block = QuantBlocks.blockWeights, superBlock = QuantBlocks.superBlockWeights
        return switch self {
        case .f32: 4
        case .f16, .bf16: half
        case .q4_0: half + block / 2
        case .q4_1: half + half + block / 2
        case .q5_0: half + 4 + block / 2
        case .q5_1: half + half + 4 + block / 2
        case .q8_0: half + block
        case .q2_K: superBlock / 16 + superBlock / 4 + half + half
        case .q3_K: superBlock / 8 + superBlock / 4 + 12 + half
        case .q4_K: half + half + QuantBlocks.kScaleBytes + superBlock / 2
        case .q5_K: half + half + QuantBlocks.kScaleBytes + superBlock / 8 + superBlock / 2
        case .q6_K: superBlock / 2 + superBlock / 4 + superBlock / 16 + half
        }
    }

    /// Bytes holding `weights` weights, or nil when they are not a whole number of blocks
    /// or the size overflows.
    public func byteCount(weights: Int) -> Int? {
        guard weights >= 0, weights % blockWeights == 0 else { return nil }
        let (bytes, overflow) = (weights / blockWeights).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    /// ggml's name for a type number, including the formats Quern does not read (for
    /// messages); nil for a number ggml does not define.
    public static func ggmlName(_ raw: UInt32) -> String? {
        if let t = GGMLType(rawValue: raw) { return t.name }
        let others: [UInt32: String] = [
            9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
            21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
            29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0"
        ]
        return others[raw]
    }
}

/// Plain dequantization of ggml's block formats: the reference every faster form is held
/// to. Each value is computed with the same fp32 operations, in the same order, as the
/// `gguf` Python package's `gguf.quants.dequantize` (numpy, one rounding per operation and
/// no fused multiply-add), so the results agree bit for bit, NaN payloads included.
public enum QuantBlocks {
    /// Weights in a block of the 32-weight formats (ggml's QK4_0 ... QK8_0).
    public static let blockWeights = 32
    /// Weights in a K-quant super-block (ggml's QK_K).
    public static let superBlockWeights = 256
    /// Bytes of the packed 6-bit scales and mins of Q4_K and Q5_K (ggml's K_SCALE_SIZE).
    public static let kScaleBytes = 12

    /// `count` weights of `type` from `bytes`, which must hold exactly
    /// `type.byteCount(weights: count)` bytes (a GGUF reader checks that first).
    public static func dequantize(type: GGMLType, bytes: UnsafeRawBufferPointer, count: Int) -> [Float] {
        precondition(
            type.byteCount(weights: count) == bytes.count,
            "\(count) \(type.name) weights do not take \(bytes.count) bytes")
        let blocks = count / type.blockWeights
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            for b in 0..<blocks {
                let block = UnsafeRawBufferPointer(rebasing: bytes[(b * type.blockBytes)..<((b + 1) * type.blockBytes)])
                let into = UnsafeMutableBufferPointer(
                    rebasing: out[(b * type.blockWeights)..<((b + 1) * type.blockWeights)])
                dequantizeBlock(type, block, into)
            }
            initialized = count
        }
    }

    /// IEEE half to single, exactly, by bits: NaN payloads and signalling bits are kept
    /// (numpy's conversion, and ggml's), where a hardware conversion might quiet them.
    public static func float(fromHalf h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        var mantissa = UInt32(h) & 0x3FF
        switch exponent {
        case 0x1F:  // infinity, NaN
            return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
        case 0:
            guard mantissa != 0 else { return Float(bitPattern: sign) }
            // Subnormal: normalise; every half subnormal is a normal single.
            var e: UInt32 = 127 - 15 + 1
            while mantissa & 0x400 == 0 {
                mantissa <<= 1
                e -= 1
            }
            return Float(bitPattern: sign | e << 23 | (mantissa & 0x3FF) << 13)
        default:
            return Float(bitPattern: sign | (exponent + 127 - 15) << 23 | mantissa << 13)
        }
    }

    /// One block of `type` into `out` (`type.blockWeights` values).
    static func dequantizeBlock(_ type: GGMLType, _ b: UnsafeRawBufferPointer, _ out: UnsafeMutableBufferPointer<Float>)
    {
        func half(_ at: Int) -> Float { float(fromHalf: UInt16(b[at]) | UInt16(b[at + 1]) << 8) }
        /// Nibble `i` of a 32-weight block whose nibbles start at byte `at`.
        func nibble(_ at: Int, _ i: Int) -> UInt8 { i < 16 ? b[at + i] & 0x0F : b[at + i - 16] >> 4 }
        switch type {
        case .f32:
            out[0] = Float(bitPattern: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
        case .f16:
            out[0] = half(0)
        case .bf16:
            out[0] = Float(bitPattern: (UInt32(b[0]) | UInt32(b[1]) << 8) << 16)
        case .q4_0:
            let d = half(0)
            for i in 0..<32 { out[i] = d * Float(Int(nibble(2, i)) - 8) }
        case .q4_1:
            let d = half(0), m = half(2)
            for i in 0..<32 { out[i] = d * Float(nibble(4, i)) + m }
        case .q5_0:
            let d = half(0), qh = le32(b, 2)
            for i in 0..<32 {
                let q = Int(nibble(6, i)) | Int((qh >> UInt32(i)) & 1) << 4
                out[i] = d * Float(q - 16)
            }
        case .q5_1:
            let d = half(0), m = half(2), qh = le32(b, 4)
            for i in 0..<32 {
                let q = Int(nibble(8, i)) | Int((qh >> UInt32(i)) & 1) << 4
                out[i] = d * Float(q) + m
            }
        case .q8_0:
            let d = half(0)
            for i in 0..<32 { out[i] = Float(Int8(bitPattern: b[2 + i])) * d }
        case .q2_K:
            // scales[16] | qs[64] | d | dmin
            let d = half(80), dmin = half(82)
            for e in 0..<256 {
                let g = Int(b[e / 16])
                let q = b[16 + 32 * (e / 128) + e % 32] >> UInt8(2 * ((e % 128) / 32)) & 3
                out[e] = (d * Float(g & 0x0F)) * Float(q) - dmin * Float(g >> 4)
            }
        case .q3_K:
            // hmask[32] | qs[64] | scales[12] | d
            let d = half(108)
            for e in 0..<256 {
                let g = e / 16
                let low = b[96 + g % 8] >> UInt8(4 * (g / 8)) & 0x0F
                let high = b[104 + g % 4] >> UInt8(2 * (g / 4)) & 0x03
                let scale = Int(low | high << 4) - 32
                let q2 = Int(b[32 + 32 * (e / 128) + e % 32] >> UInt8(2 * ((e % 128) / 32)) & 3)
                let hbit = Int(b[e % 32] >> UInt8(e / 32) & 1)
                out[e] = (d * Float(scale)) * Float(q2 - (hbit ^ 1) << 2)
            }
        case .q4_K, .q5_K:
            // d | dmin | scales[12] | (Q5_K: qh[32]) | qs[128]
            let d = half(0), dmin = half(2)
            let qs = type == .q4_K ? 16 : 48
            for e in 0..<256 {
                let j = e / 32
                let (scale, min) = kQuantScale(b, 4, j)
                var q = Int(b[qs + 32 * (e / 64) + e % 32] >> UInt8(4 * (j % 2)) & 0x0F)
                if type == .q5_K { q |= Int(b[16 + e % 32] >> UInt8(j) & 1) << 4 }
                out[e] = (d * Float(scale)) * Float(q) - dmin * Float(min)
            }
        case .q6_K:
            // ql[128] | qh[64] | scales[16] (signed) | d
            let d = half(208)
            for e in 0..<256 {
                let h = e / 128, r = e % 128
                let low = b[64 * h + r % 64] >> UInt8(4 * (r / 64)) & 0x0F
                let high = b[128 + 32 * h + r % 32] >> UInt8(2 * (r / 32)) & 0x03
                let scale = Int8(bitPattern: b[192 + e / 16])
                out[e] = (d * Float(scale)) * Float(Int(low | high << 4) - 32)
            }
        }
    }

    /// Scale and min of sub-block `j` (0..<8) of a Q4_K/Q5_K block, from the 12 bytes at
    /// `at`. Bytes 0–3 hold scales 0–3 in their low 6 bits, bytes 4–7 mins 0–3; sub-blocks
    /// 4–7 take their low 4 bits from the nibbles of bytes 8–11 (scale low, min high) and
    /// their top 2 bits from the top bits of bytes 0–3 (scales) and 4–7 (mins).
    public static func kQuantScale(_ b: UnsafeRawBufferPointer, _ at: Int, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (b[at + j] & 0x3F, b[at + 4 + j] & 0x3F) }
        let packed = b[at + 8 + j - 4]
        return (packed & 0x0F | (b[at + j - 4] >> 2) & 0x30, packed >> 4 | (b[at + j] >> 2) & 0x30)
    }

    private static func le32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}
