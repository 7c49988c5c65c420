import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernModels

/// Llama models from GGUF files: hyperparameters from the metadata, llama.cpp's names and
/// q/k row order mapped back, 4-bit blocks run as stored.
@Suite("llama from GGUF")
struct DecoderGGUFTests {
    static let tiny = repoRoot + "/fixtures/models/tiny-gguf/tiny-llama.gguf"
    /// ../shared/bench/setup-llm-anchors.sh's models directory; the SmolLM2 tests run when set.
    static let models = Sys.environment("QUERN_LLM_MODELS")

    @Test("4-bit GGUF blocks (Q4_0, Q4_1, Q4_K) become Q4Weights whose values equal the reference dequantization")
    func blocksAsStored() throws {
        let file = try GGUFFile(path: Self.tiny)
        var checked = 0
        for name in file.tensorNames {
            let t = try #require(file.tensors[name])
            guard Q4Weights.ggmlTypes.contains(t.type), t.shape.count == 2 else { continue }
            let (rows, cols) = (t.shape[0], t.shape[1])
            let bytes = file.bytes(of: t), rowBytes = t.byteCount / rows
            let w = Q4Weights(n: rows, k: cols) { r in
                (t.type, UnsafeRawBufferPointer(rebasing: bytes[(r * rowBytes)..<((r + 1) * rowBytes)]))
            }
            let want = try file.float32(name)
            let got = w.dequantized().data
            // Equal as numbers: Q4_0's zero weight is d·0 (−0 for a negative d) in the
            // reference and q·d − 8d = +0 here, which no product or sum can tell apart.
            #expect(got == want, "\(name) (\(t.type.name))")
            checked += 1
        }
        #expect(checked >= 2)
    }

    @Test("the tiny GGUF llama loads strictly and runs; q4 runs its 4-bit tensors as stored")
    func tinyLoads() throws {
        let file = try GGUFFile(path: Self.tiny)
        let d = try Llama.decoder(gguf: file, options: ModelOptions(precision: .fp32))
        #expect(d.shape.layers == 1 && d.shape.heads == 4 && d.shape.kvHeads == 2 && d.shape.vocabulary == 64)
        let logits = d.forward([.init(cache: d.makeCache(capacity: 8), tokens: [1, 5, 9, 2])])
        #expect(logits.count == 64 && logits.allSatisfy(\.isFinite))
        let q4 = try Llama.decoder(gguf: file, options: ModelOptions(precision: .q4))
        let again = q4.forward([.init(cache: q4.makeCache(capacity: 8), tokens: [1, 5, 9, 2])])
        // No fused group here is all 4-bit (attn_q is Q4_K beside K-quants of 3 and 5
        // bits), so every product runs on the exact fp32 values: the same logits.
        #expect(again == logits)
    }

    @Test("the row order GGUF's q/k permutation undoes is the inverse of llama.cpp's permute")
    func rowOrder() {
        // llama.cpp: HF row h·d + j·d/2 + i goes to GGUF row h·d + 2i + j.
        let heads = 3, d = 8, half = 4
        let order = GGUFDecoderWeights.rowOrder(rows: heads * d, heads: heads)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half { #expect(order[h * d + j * half + i] == h * d + 2 * i + j) }
            }
        }
        #expect(Set(order) == Set(0..<(heads * d)))
    }

    @Test(
        "SmolLM2's Q4_1 GGUF gives the HF fp32 checkpoint's logits bit for bit, at fp32 and as stored 4-bit",
        .enabled(if: DecoderGGUFTests.models != nil))
    func smolLM2MatchesCheckpoint() throws {
        let dir = try #require(Self.models)
        let hf = try #require(try ModelRegistry.load(dir + "/smollm2-135m-hf") as? DecoderModel).decoder
        let file = try GGUFFile(path: dir + "/smollm2-135m-instruct.Q4_1.gguf")
        let prompt: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 2, 198, 1, 4093, 198]
        func logits(_ d: Decoder) -> [Float] {
            d.forward([.init(cache: d.makeCache(capacity: prompt.count), tokens: prompt)], logits: .all)
        }
        let reference = logits(hf)
        #expect(logits(try Llama.decoder(gguf: file, options: ModelOptions(precision: .fp32))) == reference)
        #expect(logits(try Llama.decoder(gguf: file, options: ModelOptions(precision: .q4))) == reference)
    }
}
