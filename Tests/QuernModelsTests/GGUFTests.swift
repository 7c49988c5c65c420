import Foundation
import QuernCore
import QuernKernels
import QuernModels
import QuernTestSupport
import Testing

/// GGUF bytes made by hand, for headers no writer produces. Little-endian throughout.
enum GGUFBytes {
    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func str(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

    static func header(version: UInt32 = 3, tensors: UInt64, keys: UInt64) -> [UInt8] {
        Array("GGUF".utf8) + u32(version) + u64(tensors) + u64(keys)
    }

    /// A metadata entry: key, value type, value bytes.
    static func kv(_ key: String, _ type: UInt32, _ value: [UInt8]) -> [UInt8] { str(key) + u32(type) + value }

    /// A tensor info: name, dimension count, dimensions (ne0 first), ggml type, offset.
    static func info(_ name: String, _ dims: [UInt64], _ type: GGMLType, offset: UInt64 = 0) -> [UInt8] {
        info(name, dims, rawType: type.rawValue, offset: offset)
    }

    static func info(_ name: String, _ dims: [UInt64], rawType: UInt32, offset: UInt64 = 0) -> [UInt8] {
        str(name) + u32(UInt32(dims.count)) + dims.flatMap(u64) + u32(rawType) + u64(offset)
    }

    /// A whole file: header, entries, tensor infos, zero padding to `alignment`, data.
    static func file(keys: [[UInt8]] = [], infos: [[UInt8]] = [], data: [UInt8] = [], alignment: Int = 32) -> [UInt8] {
        var out = header(tensors: UInt64(infos.count), keys: UInt64(keys.count)) + keys.joined() + infos.joined()
        out += [UInt8](repeating: 0, count: (alignment - out.count % alignment) % alignment)
        return out + data
    }

    static func f32(_ values: [Float]) -> [UInt8] { values.flatMap { u32($0.bitPattern) } }
}

@Suite("GGUFFile")
struct GGUFTests {
    static let fixtures = repoRoot + "/fixtures/models/tiny-gguf"

    // MARK: The fixtures

    @Test func readsEveryMetadataType() throws {
        let g = try GGUFFile(path: Self.fixtures + "/types.gguf")
        #expect(g.version == 3)
        #expect(g.alignment == 64)
        #expect(g.dataStart % 64 == 0)
        #expect(try g.string("general.architecture") == "quern-test")
        #expect(g.metadata["test.uint8"] == .uint8(200))
        #expect(g.metadata["test.int8"] == .int8(-100))
        #expect(g.metadata["test.uint16"] == .uint16(60000))
        #expect(g.metadata["test.int16"] == .int16(-30000))
        #expect(g.metadata["test.uint32"] == .uint32(4_000_000_000))
        #expect(g.metadata["test.int32"] == .int32(-2_000_000_000))
        #expect(g.metadata["test.uint64"] == .uint64(18_000_000_000_000_000_000))
        #expect(g.metadata["test.int64"] == .int64(-9_000_000_000_000_000_000))
        #expect(g.metadata["test.float32"] == .float32(0.1))
        #expect(g.metadata["test.float64"] == .float64(-2.5e300))
        #expect(g.metadata["test.bool"] == .bool(true))
        #expect(try g.string("test.string") == "naïve café — 中文 🙂")
        #expect(try g.array("test.array.uint8") == .uint8([0, 1, 255]))
        #expect(try g.array("test.array.int16") == .int16([-1, 2, -32768]))
        #expect(try g.array("test.array.uint64") == .uint64([1, .max]))
        #expect(try g.array("test.array.float32") == .float32([0.5, -1.25, 3e38]))
        #expect(try g.array("test.array.float64") == .float64([0.1, -0.2]))
        #expect(try g.array("test.array.bool") == .bool([true, false, true]))
        #expect(try g.strings("test.array.string") == ["a", "", "ü"])
        #expect(try g.ints("test.array.int32") == [1, -2, 3])
        #expect(try g.floats("test.array.float64") == [0.1, -0.2].map(Float.init))
        #expect(
            try g.array("test.array.nested")
                == .array([.int32([1, 2]), .int32([3]), .array([.int32([4]), .int32([5, 6])])]))
        #expect(try g.array("test.array.nested_strings") == .array([.string(["x", "y"]), .string(["z"])]))
        #expect(g.metadata.count == 24)
    }

    @Test func typedGettersConvertAndNameTheKey() throws {
        let g = try GGUFFile(path: Self.fixtures + "/types.gguf")
        #expect(try g.int("test.uint32") == 4_000_000_000)
        #expect(try g.int("test.int8") == -100)
        #expect(try g.double("test.float32") == Double(Float(0.1)))
        #expect(try g.double("test.int16") == -30000)
        #expect(try g.bool("test.bool"))
        #expect(try g.int("absent.key", default: 7) == 7)
        #expect(try g.string("absent.key", default: "x") == "x")
        func message(_ body: () throws -> Any) -> String {
            do {
                _ = try body()
                return "accepted"
            } catch let e as QuernError {
                #expect(e.code == .modelInvalid)
                return e.message
            } catch {
                return "\(error)"
            }
        }
        #expect(message { try g.int("absent.key") }.contains("has no metadata \"absent.key\""))
        #expect(message { try g.int("test.string") }.contains("\"test.string\" is the string"))
        #expect(message { try g.int("test.uint64") }.contains("an integer is needed"), "beyond Int.max")
        #expect(message { try g.string("test.uint8", default: "x") }.contains("a string is needed"))
        #expect(message { try g.strings("test.array.int32") }.contains("an array of strings"))
        #expect(message { try g.ints("test.array.uint64") }.contains("an array of integers"), "2^64-1")
    }

    @Test func tinyLlamaHasALlamaHeader() throws {
        let g = try GGUFFile(path: Self.fixtures + "/tiny-llama.gguf")
        #expect(try g.string("general.architecture") == "llama")
        #expect(try g.int("llama.embedding_length") == 256)
        #expect(try g.int("llama.block_count") == 1)
        #expect(try g.int("llama.attention.head_count") == 4)
        #expect(try g.int("llama.attention.head_count_kv") == 2)
        #expect(try g.double("llama.rope.freq_base") == 10000)
        #expect(Float(try g.double("llama.attention.layer_norm_rms_epsilon")) == 1e-5)
        #expect(try g.string("tokenizer.ggml.model") == "gpt2")
        let tokens = try g.strings("tokenizer.ggml.tokens")
        #expect(tokens.count == 64)
        #expect(tokens[2] == "<|im_end|>")
        #expect(try g.ints("tokenizer.ggml.token_type").count == 64)
        #expect(try g.strings("tokenizer.ggml.merges").first == "Ġ t")
        #expect(try g.string("tokenizer.chat_template").contains("<|im_start|>"))
        #expect(g.alignment == 32)
        // Quern's shapes are the GGUF dims reversed: [out, in] for projections.
        #expect(g.tensors["token_embd.weight"]?.dims == [256, 64])
        #expect(g.tensors["token_embd.weight"]?.shape == [64, 256])
        #expect(g.tensors["blk.0.attn_k.weight"]?.shape == [128, 256])
        #expect(g.tensors["blk.0.ffn_down.weight"]?.shape == [256, 64])
        #expect(g.tensors["blk.0.attn_q.weight"]?.type == .q4_K)
        #expect(g.tensorNames.first == "token_embd.weight")
        #expect(g.tensorNames.count == 12)
    }

    @Test(arguments: ["types", "tiny-llama"])
    func everyTensorDequantizesAsTheGGUFPackageDoes(_ name: String) throws {
        let g = try GGUFFile(path: "\(Self.fixtures)/\(name).gguf")
        let expected = try #require(
            try JSONParser.parse(Sys.readFile("\(Self.fixtures)/\(name).expected.json")).objectValue)
        #expect(Set(expected.keys) == Set(g.tensorNames))
        var types: Set<String> = []
        for tensor in g.tensorNames {
            let want = try #require(expected[tensor]?.objectValue)
            let info = try #require(g.tensors[tensor])
            #expect(want["type"]?.stringValue == info.type.name, "\(tensor)")
            let shape = want["shape"]?.arrayValue?.compactMap { $0.intValue.map(Int.init) } ?? []
            let values = try g.float32(tensor, shape: shape)
            #expect(values.count == info.elementCount)
            var digest = SHA256Stream()
            values.withUnsafeBytes { digest.update($0) }
            #expect(digest.hex() == want["sha256"]?.stringValue, "\(tensor) (\(info.type.name))")
            if let bits = want["bits"]?.arrayValue?.compactMap({ $0.intValue.map { UInt32($0) } }) {
                let got = values.map(\.bitPattern)
                let first = zip(got, bits).enumerated().first { $0.element.0 != $0.element.1 }
                #expect(first == nil, "\(tensor) (\(info.type.name)) value \(first?.offset ?? 0)")
            }
            types.insert(info.type.name)
        }
        if name == "types" { #expect(types == Set(GGMLType.allCases.map(\.name))) }
    }

    @Test func tensorLookupsNameWhatIsWrong() throws {
        let g = try GGUFFile(path: Self.fixtures + "/tiny-llama.gguf")
        #expect(throws: QuernError.self) { try g.float32("no.such.weight") }
        do {
            _ = try g.float32("blk.0.attn_k.weight", shape: [256, 256])
            Issue.record("a wrong shape was accepted")
        } catch let e as QuernError {
            #expect(e.code == .modelMismatch)
            #expect(e.message.contains("[128, 256]") && e.message.contains("[256, 256]"), "\(e.message)")
        }
        let info = try #require(g.tensors["output_norm.weight"])
        #expect(g.bytes(of: info).count == 256 * 4)
    }

    // MARK: Hostile files

    /// Writes `bytes` and expects GGUFFile to refuse them with a model_invalid error whose
    /// message starts with the path and contains every fragment.
    func refuses(_ bytes: [UInt8], _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("hostile.gguf", bytes)
        do {
            _ = try GGUFFile(path: path)
            Issue.record("accepted", sourceLocation: sourceLocation)
        } catch let e as QuernError {
            #expect(e.code == .modelInvalid, sourceLocation: sourceLocation)
            #expect(e.field == "model", sourceLocation: sourceLocation)
            #expect(e.message.hasPrefix(path + ": "), "\(e.message)", sourceLocation: sourceLocation)
            for f in fragments { #expect(e.message.contains(f), "\(e.message)", sourceLocation: sourceLocation) }
        }
    }

    typealias B = GGUFBytes

    /// A small valid file: a string key, an F32 [2, 4] tensor and a Q8_0 [32] one.
    static let valid = B.file(
        keys: [B.kv("general.architecture", 8, B.str("llama"))],
        infos: [B.info("a", [4, 2], .f32), B.info("b", [32], .q8_0, offset: 32)],
        data: B.f32([1, 2, 3, 4, 5, 6, 7, 8]) + [0x00, 0x3C] + [UInt8](repeating: 2, count: 32))

    @Test func theHandMadeFileIsValid() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let g = try GGUFFile(path: try tmp.write("m.gguf", Self.valid))
        #expect(try g.float32("a", shape: [2, 4]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(try g.float32("b") == [Float](repeating: 2, count: 32))
    }

    @Test func everyTruncationIsRefused() throws {
        // Cut anywhere inside the header or the data: an error, never a trap.
        for n in 0..<Self.valid.count {
            try refuses(Array(Self.valid.prefix(n)))
        }
        try refuses(Array(Self.valid.prefix(40)), "the file is truncated")
        try refuses(Array(Self.valid.prefix(120)), "the file is truncated")
    }

    @Test func badMagicAndVersions() throws {
        try refuses(Array("PK\u{3}\u{4}".utf8) + Self.valid.dropFirst(4), "the bytes 50 4B 03 04, not \"GGUF\"")
        try refuses(B.header(version: 1, tensors: 0, keys: 0), "version 1", "versions 2 and 3")
        try refuses(B.header(version: 4, tensors: 0, keys: 0), "version 4")
        try refuses(B.header(version: 0x0300_0000, tensors: 0, keys: 0), "big-endian")
        let tmp = try TempDir()
        defer { tmp.remove() }
        let v2 = try GGUFFile(path: try tmp.write("v2.gguf", B.header(version: 2, tensors: 0, keys: 0)))
        #expect(v2.version == 2 && v2.tensors.isEmpty)
    }

    @Test func hugeCountsAreRefusedFromTheHeader() throws {
        try refuses(B.header(tensors: 1 << 60, keys: 0), "tensor count", "is 1152921504606846976")
        try refuses(B.header(tensors: 0, keys: .max), "metadata count")
        // A key whose length claims 2^63 bytes.
        try refuses(
            B.header(tensors: 0, keys: 1) + B.u64(1 << 63) + [UInt8](repeating: 0, count: 16),
            "the length of the key of metadata entry 0")
        // 10^18 strings, 2^62 bools, 2^40 nested arrays: refused from the array's header.
        try refuses(
            B.header(tensors: 0, keys: 1) + B.kv("tokens", 9, B.u32(8) + B.u64(1_000_000_000_000_000_000)),
            "the length of the array \"tokens\"", "each takes at least 8")
        try refuses(B.header(tensors: 0, keys: 1) + B.kv("b", 9, B.u32(7) + B.u64(1 << 62)), "array \"b\"")
        try refuses(B.header(tensors: 0, keys: 1) + B.kv("n", 9, B.u32(9) + B.u64(1 << 40)), "each takes at least 12")
        // A string value of 2^64-1 bytes.
        try refuses(B.header(tensors: 0, keys: 1) + B.kv("s", 8, B.u64(.max)), "the length of the value of \"s\"")
    }

    @Test func nestedArrayBombsAreRefused() throws {
        // Arrays nested 9 deep: refused at the ninth level without recursing further.
        var value = B.u32(5) + B.u64(0)
        for _ in 0..<9 { value = B.u32(9) + B.u64(1) + value }
        try refuses(B.file(keys: [B.kv("deep", 9, value)]), "nests arrays more than 8 deep")
        // Eight levels are fine, an empty array included.
        var ok = B.u32(5) + B.u64(0)
        for _ in 0..<7 { ok = B.u32(9) + B.u64(1) + ok }
        let tmp = try TempDir()
        defer { tmp.remove() }
        let g = try GGUFFile(path: try tmp.write("ok.gguf", B.file(keys: [B.kv("deep", 9, ok)])))
        var a = try g.array("deep")
        for _ in 0..<7 {
            guard case .array(let inner) = a, inner.count == 1 else { Issue.record("not nested"); return }
            a = inner[0]
        }
        #expect(a == .int32([]))
    }

    @Test func badMetadataValues() throws {
        try refuses(B.file(keys: [B.kv("t", 13, B.u32(0))]), "value type 13")
        try refuses(B.file(keys: [B.kv("a", 9, B.u32(99) + B.u64(1))]), "element type 99")
        try refuses(B.file(keys: [B.kv("b", 7, [2])]), "bool byte 2")
        try refuses(B.file(keys: [B.u64(2) + [0xC3, 0x28] + B.u32(0) + [1]]), "is not UTF-8")
        try refuses(B.file(keys: [B.kv("s", 8, B.u64(1) + [0xFF])]), "the value of \"s\"", "is not UTF-8")
        let twice = B.kv("k", 4, B.u32(1))
        try refuses(B.file(keys: [twice, twice]), "metadata key \"k\" twice")
    }

    @Test func badAlignments() throws {
        for (value, type) in [(B.u32(48), UInt32(4)), (B.u32(0), 4), (B.u64(64), 10), (B.str("32"), 8)] {
            try refuses(B.file(keys: [B.kv("general.alignment", type, value)]), "general.alignment", "power of two")
        }
    }

    @Test func badTensorInfos() throws {
        try refuses(B.file(infos: [B.info("x", [1, 1, 1, 1, 1], .f32)]), "\"x\" has 5 dimensions")
        try refuses(B.file(infos: [B.info("x", [], .f32)]), "\"x\" has 0 dimensions")
        try refuses(B.file(infos: [B.info("x", [4, 0], .f32)]), "a dimension of 0")
        try refuses(B.file(infos: [B.info("x", [1 << 40], .f32)]), "a dimension of 1099511627776", "2147483647")
        // Elements overflow 64 bits; bytes overflow though elements do not.
        let big = UInt64(Int32.max)
        try refuses(B.file(infos: [B.info("x", [big, big, big, big], .f32)]), "too many elements")
        try refuses(B.file(infos: [B.info("x", [big, big, 2], .f32)]), "larger than any file")
        try refuses(B.file(infos: [B.info("x", [32], rawType: 99)]), "ggml type 99, which is not a ggml type")
        try refuses(B.file(infos: [B.info("x", [256], rawType: 23)]), "ggml type 23 (IQ4_XS)", "Quern reads F32")
        try refuses(B.file(infos: [B.info("x", [16, 2], .q4_0)]), "rows of 16 weights", "32-weight blocks")
        try refuses(B.file(infos: [B.info("x", [100], .q4_K)]), "256-weight blocks")
        let a = B.info("a", [8], .f32)
        try refuses(B.file(infos: [a, a], data: [UInt8](repeating: 0, count: 64)), "tensor \"a\" twice")
    }

    @Test func badOffsets() throws {
        let data = [UInt8](repeating: 0, count: 64)
        try refuses(B.file(infos: [B.info("x", [4], .f32, offset: 4)], data: data), "data offset 4", "alignment 32")
        try refuses(B.file(infos: [B.info("x", [4], .f32, offset: 64)], data: data), "runs past the end")
        try refuses(B.file(infos: [B.info("x", [32], .f32)], data: data), "128 bytes of F32", "holds 64 bytes")
        try refuses(B.file(infos: [B.info("x", [4], .f32, offset: 1 << 62)], data: data), "runs past the end")
        try refuses(B.file(infos: [B.info("x", [4], .f32, offset: .max - 31)], data: data), "\"x\"")
        try refuses(
            B.file(infos: [B.info("x", [16], .f32), B.info("y", [4], .f32, offset: 32)], data: data),
            "\"x\" and \"y\" overlap")
        // No data section at all.
        try refuses(B.header(tensors: 1, keys: 0) + B.info("x", [4], .f32), "runs past the end")
    }

    // MARK: Rotary permutation

    @Test func unpermuteRotaryUndoesLlamaCppsPermute() throws {
        // Two heads of 4 rows, 3 columns. llama.cpp's permute puts HF row h·4 + j·2 + i at
        // GGUF row h·4 + 2i + j: GGUF rows hold HF rows [0, 2, 1, 3, 4, 6, 5, 7].
        let order = [0, 2, 1, 3, 4, 6, 5, 7]
        let gguf = order.flatMap { r in (0..<3).map { Float(10 * r + $0) } }
        let hf = (0..<8).flatMap { r in (0..<3).map { Float(10 * r + $0) } }
        #expect(try GGUFFile.unpermuteRotary(gguf, rows: 8, cols: 3, heads: 2) == hf)
        // Against the formula on a larger case: 3 heads of 8 rows.
        let rows = 24, cols = 2, heads = 3, dim = 8
        var permuted = [Float](repeating: 0, count: rows * cols)
        let original = (0..<(rows * cols)).map(Float.init)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<(dim / 2) {
                    for c in 0..<cols {
                        permuted[(h * dim + 2 * i + j) * cols + c] = original[(h * dim + j * dim / 2 + i) * cols + c]
                    }
                }
            }
        }
        #expect(try GGUFFile.unpermuteRotary(permuted, rows: rows, cols: cols, heads: heads) == original)
        #expect(throws: QuernError.self) { try GGUFFile.unpermuteRotary(original, rows: 24, cols: 2, heads: 5) }
        #expect(throws: QuernError.self) { try GGUFFile.unpermuteRotary(original, rows: 24, cols: 2, heads: 8) }
        #expect(throws: QuernError.self) { try GGUFFile.unpermuteRotary(original, rows: 24, cols: 3, heads: 3) }
    }

    // MARK: Real files (optional)

    /// With QUERN_LLM_MODELS set to the directory /work/shared/bench/setup-llm-anchors.sh
    /// fills: transformers' checkpoint dequantized from the Q4_1 GGUF (smollm2-135m-hf) has
    /// the q/k projections in Hugging Face order; unpermuting the GGUF's must give them bit
    /// for bit, and the other weights unchanged.
    @Test(.enabled(if: Sys.environment("QUERN_LLM_MODELS") != nil))
    func realSmolLM2MatchesTransformersCheckpoint() throws {
        let dir = try #require(Sys.environment("QUERN_LLM_MODELS"))
        let g = try GGUFFile(path: dir + "/smollm2-135m-instruct.Q4_1.gguf")
        let hf = try SafetensorsFile(path: dir + "/smollm2-135m-hf/model.safetensors")
        let heads = try g.int("llama.attention.head_count"), kvHeads = try g.int("llama.attention.head_count_kv")
        #expect(g.tensors.count == 272)
        for layer in [0, 29] {
            for (gguf, name, h) in [("attn_q", "q_proj", heads), ("attn_k", "k_proj", kvHeads), ("attn_v", "v_proj", 0)]
            {
                let info = try #require(g.tensors["blk.\(layer).\(gguf).weight"])
                var values = try g.float32(info.name)
                if h > 0 {
                    values = try GGUFFile.unpermuteRotary(values, rows: info.shape[0], cols: info.shape[1], heads: h)
                }
                let want = try hf.float32("model.layers.\(layer).self_attn.\(name).weight", shape: info.shape)
                #expect(values.map(\.bitPattern) == want.data.map(\.bitPattern), "layer \(layer) \(name)")
            }
        }
    }
}
