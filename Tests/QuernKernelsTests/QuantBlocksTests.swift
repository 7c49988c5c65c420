import QuernKernels
import Testing

/// ggml's block formats on hand-made blocks whose values can be worked out by hand from the
/// documented layouts. Bit-exactness against the `gguf` Python package is checked on its
/// own output: the fixtures (QuernModelsTests.GGUFTests) and scripts/check-gguf.py.
@Suite("Quant blocks")
struct QuantBlocksTests {
    /// Half-float bit patterns used below.
    static let one: UInt16 = 0x3C00, half: UInt16 = 0x3800, quarter: UInt16 = 0x3400, two: UInt16 = 0x4000
    static let minusOne: UInt16 = 0xBC00, eighth: UInt16 = 0x3000

    static func le(_ h: UInt16) -> [UInt8] { [UInt8(h & 0xFF), UInt8(h >> 8)] }

    static func bytes(_ value: UInt8, _ count: Int) -> [UInt8] { [UInt8](repeating: value, count: count) }

    /// The 32 nibble weights of the 32-weight formats used below: byte i holds weight i
    /// (low nibble, value i) and weight 16 + i (high nibble, value 15 − i).
    static let nibbles: [UInt8] = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
    static let nibbleValues: [Float] = (0..<32).map { Float($0 < 16 ? $0 : 31 - $0) }

    static func dequantize(_ type: GGMLType, _ block: [UInt8]) -> [Float] {
        #expect(block.count % type.blockBytes == 0, "\(type.name): \(block.count) bytes")
        let n = block.count / type.blockBytes * type.blockWeights
        return block.withUnsafeBytes { QuantBlocks.dequantize(type: type, bytes: $0, count: n) }
    }

    @Test func blockSizesAreGGMLs() {
        // ggml-common.h: sizeof(block_q4_0) == 18 and so on.
        let expected: [GGMLType: (weights: Int, bytes: Int)] = [
            .f32: (1, 4), .f16: (1, 2), .bf16: (1, 2), .q4_0: (32, 18), .q4_1: (32, 20), .q5_0: (32, 22),
            .q5_1: (32, 24), .q8_0: (32, 34), .q2_K: (256, 84), .q3_K: (256, 110), .q4_K: (256, 144),
            .q5_K: (256, 176), .q6_K: (256, 210)
        ]
        #expect(Set(expected.keys) == Set(GGMLType.allCases))
        for (type, size) in expected {
            #expect(type.blockWeights == size.weights, "\(type.name)")
            #expect(type.blockBytes == size.bytes, "\(type.name)")
        }
        #expect(GGMLType.q4_K.byteCount(weights: 512) == 288)
        #expect(GGMLType.q4_K.byteCount(weights: 100) == nil, "not whole blocks")
        #expect(GGMLType.f32.byteCount(weights: Int.max / 2) == nil, "overflows")
        #expect(GGMLType.ggmlName(23) == "IQ4_XS")
        #expect(GGMLType.ggmlName(12) == "Q4_K")
        #expect(GGMLType.ggmlName(4) == nil, "Q4_2, removed from ggml")
    }

    @Test func halfToSingleIsExactAndKeepsNaNPayloads() {
        for h in 0...UInt16.max {
            let f = QuantBlocks.float(fromHalf: h)
            if h & 0x7C00 == 0x7C00 && h & 0x03FF != 0 {
                // NaN: same sign, payload shifted into place, signalling bit not set.
                #expect(f.bitPattern == UInt32(h & 0x8000) << 16 | 0x7F80_0000 | UInt32(h & 0x3FF) << 13)
            } else {
                #expect(f.bitPattern == Float(Float16(bitPattern: h)).bitPattern, "half \(h)")
            }
        }
    }

    @Test func plainFormats() {
        let f32: [Float] = [1.5, -0, .infinity, Float(bitPattern: 0x7F81_2345)]
        let f32Bytes: [UInt8] = f32.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
        #expect(Self.dequantize(.f32, f32Bytes).map(\.bitPattern) == f32.map(\.bitPattern), "a signalling NaN too")
        let f16: [UInt8] = Self.le(Self.one) + Self.le(0xC000) + Self.le(0x0001)
        #expect(Self.dequantize(.f16, f16) == [1, -2, 0x1p-24])
        // bfloat16 1.0 = 0x3F80, -0.5 = 0xBF00.
        #expect(Self.dequantize(.bf16, [0x80, 0x3F, 0x00, 0xBF]) == [1, -0.5])
    }

    @Test func q4_0AndQ4_1() {
        let q = Self.nibbleValues
        let q4x0: [UInt8] = Self.le(Self.half) + Self.nibbles
        #expect(Self.dequantize(.q4_0, q4x0) == q.map { 0.5 * ($0 - 8) })
        let q4x1: [UInt8] = Self.le(Self.quarter) + Self.le(Self.minusOne) + Self.nibbles
        #expect(Self.dequantize(.q4_1, q4x1) == q.map { 0.25 * $0 - 1 })
    }

    @Test func q5_0AndQ5_1() {
        // qh 0xAAAAAAAA: the odd weights have their fifth bit.
        let qh = Self.bytes(0xAA, 4)
        let q: [Float] = (0..<32).map { Self.nibbleValues[$0] + ($0 % 2 == 1 ? 16 : 0) }
        let q5x0: [UInt8] = Self.le(Self.one) + qh + Self.nibbles
        #expect(Self.dequantize(.q5_0, q5x0) == q.map { $0 - 16 })
        let q5x1: [UInt8] = Self.le(Self.two) + Self.le(Self.half) + qh + Self.nibbles
        #expect(Self.dequantize(.q5_1, q5x1) == q.map { 2 * $0 + 0.5 })
    }

    @Test func q8_0() {
        let qs: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 * 8 - 128) }
        let want: [Float] = (0..<32).map { Float($0 * 8 - 128) / 8 }
        #expect(Self.dequantize(.q8_0, Self.le(Self.eighth) + qs) == want)
    }

    @Test func q2_K() {
        // Group g: scale g mod 16, min g mod 3; every qs byte 0b11_10_01_00, so weight e
        // (bits 2·((e mod 128) / 32)) has q = (e mod 128) / 32. d = 1, dmin = 0.5.
        var block: [UInt8] = (0..<16).map { UInt8($0 % 16) | UInt8($0 % 3) << 4 }
        block += Self.bytes(0xE4, 64) + Self.le(Self.one) + Self.le(Self.half)
        let want: [Float] = (0..<256).map { e in
            let g = e / 16, q = (e % 128) / 32
            return Float(g * q) - 0.5 * Float(g % 3)
        }
        #expect(Self.dequantize(.q2_K, block) == want)
    }

    @Test func q3_K() {
        // Scales: low nibbles of bytes 0-7 = 1 (groups 0-7) and 2 (groups 8-15, high
        // nibbles), top bits 2 from bytes 8-11, minus 32: groups 0-7 scale 1, 8-15 scale 2.
        // hmask 0x0F: bits 0-3 set, so weights below 128 keep q, the rest lose 4.
        var block = Self.bytes(0x0F, 32) + Self.bytes(0xE4, 64)
        block += Self.bytes(0x21, 8) + Self.bytes(0xAA, 4) + Self.le(Self.half)
        let want: [Float] = (0..<256).map { e in
            let scale: Float = e / 16 < 8 ? 1 : 2
            let q = (e % 128) / 32 - (e < 128 ? 0 : 4)
            return 0.5 * scale * Float(q)
        }
        #expect(Self.dequantize(.q3_K, block) == want)
    }

    /// The 12 scale bytes of Q4_K/Q5_K for scales [1, 2, 3, 4, 21, 5, 5, 5] and mins
    /// [0, 1, 0, 1, 34, 2, 2, 2]: sub-block 4's top bits (scale 16, min 32) ride in the top
    /// bits of bytes 0 and 4.
    static let kScales: [UInt8] = [1 | 0x40, 2, 3, 4, 0 | 0x80, 1, 0, 1, 0x25, 0x25, 0x25, 0x25]
    static let kScale: [Float] = [1, 2, 3, 4, 21, 5, 5, 5], kMin: [Float] = [0, 1, 0, 1, 34, 2, 2, 2]

    @Test func q4_K() {
        // qs 0x21: even sub-blocks (low nibbles) q = 1, odd ones q = 2. d = 1, dmin = 0.5.
        let block: [UInt8] = Self.le(Self.one) + Self.le(Self.half) + Self.kScales + Self.bytes(0x21, 128)
        let want: [Float] = (0..<256).map { e in
            let j = e / 32
            return Self.kScale[j] * Float(j % 2 + 1) - 0.5 * Self.kMin[j]
        }
        #expect(Self.dequantize(.q4_K, block) == want)
    }

    @Test func q5_K() {
        // As Q4_K, with qh 0x55: the even sub-blocks have the fifth bit.
        var block: [UInt8] = Self.le(Self.one) + Self.le(Self.half) + Self.kScales
        block += Self.bytes(0x55, 32) + Self.bytes(0x21, 128)
        let want: [Float] = (0..<256).map { e in
            let j = e / 32
            let q = j % 2 + 1 + (j % 2 == 0 ? 16 : 0)
            return Self.kScale[j] * Float(q) - 0.5 * Self.kMin[j]
        }
        #expect(Self.dequantize(.q5_K, block) == want)
    }

    @Test func q6_K() {
        // ql 0x31 (nibbles 1 and 3), qh 0b11_10_01_00 (2-bit values 0-3): in each half of
        // 128, weights r < 64 take nibble 1 and r ≥ 64 nibble 3, and high bits r / 32.
        // Group scales g − 8, d = 0.5.
        var block = Self.bytes(0x31, 128) + Self.bytes(0xE4, 64)
        block += (0..<16).map { UInt8(bitPattern: Int8($0 - 8)) } + Self.le(Self.half)
        let want: [Float] = (0..<256).map { e in
            let r = e % 128
            let q = (r < 64 ? 1 : 3) | (r / 32) << 4
            return (0.5 * Float(e / 16 - 8)) * Float(q - 32)
        }
        #expect(Self.dequantize(.q6_K, block) == want)
    }

    @Test func blocksFollowEachOther() {
        // Two Q8_0 blocks: the second block's weights come after the first's.
        let a = Self.le(Self.one) + Self.bytes(1, 32), b = Self.le(Self.two) + Self.bytes(3, 32)
        let want = [Float](repeating: 1, count: 32) + [Float](repeating: 6, count: 32)
        #expect(Self.dequantize(.q8_0, a + b) == want)
    }
}
