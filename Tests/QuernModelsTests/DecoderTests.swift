import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernModels

/// The decoder families against transformers run in float64 on the same weights
/// (scripts/make_tiny_decoders.py): a random Llama with grouped-query attention and
/// llama3 rotary scaling (F32), a Qwen2 with q/k/v biases and tied embeddings (BF16)
/// and a GPT-2 (F16).
@Suite("decoder families")
struct DecoderTests {
    /// fp32 against float64: logits agree to this fraction of the row's largest logit.
    static let logitTolerance: Float = 1e-4
    static let models = ["tiny-llama", "tiny-qwen2", "tiny-gpt2"]

    struct Expected {
        let model: String
        let ids: [Int32]
        let lastLogits: [Float]
        let topIDs: [[Int]]
        let topLogits: [[Float]]
        let greedy: [Int32]
    }

    static func expected() throws -> [Expected] {
        let bytes = try Sys.readFile(repoRoot + "/fixtures/text/tiny-decoders-expected.jsonl")
        return try bytes.split(separator: 0x0A).map { line in
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            func floats(_ v: JSONValue?) -> [Float] { v?.arrayValue?.map { Float($0.doubleValue!) } ?? [] }
            return Expected(
                model: o["model"]!.stringValue!, ids: o["ids"]!.arrayValue!.map { Int32($0.intValue!) },
                lastLogits: floats(o["last_logits"]),
                topIDs: o["top_ids"]!.arrayValue!.map { $0.arrayValue!.map { Int($0.intValue!) } },
                topLogits: o["top_logits"]!.arrayValue!.map(floats),
                greedy: o["greedy"]!.arrayValue!.map { Int32($0.intValue!) })
        }
    }

    static func load(_ name: String, _ precision: LinearOperator.Precision = .fp32) throws -> DecoderModel {
        let m = try ModelRegistry.load(repoRoot + "/fixtures/models/" + name, ModelOptions(precision: precision))
        return try #require(m as? DecoderModel)
    }

    /// Greedy decoding, one sequence: the prompt in one step, then a token at a time.
    static func greedy(_ d: Decoder, _ prompt: [Int32], count: Int, pool: ThreadPool = .shared) -> [Int32] {
        let cache = d.makeCache(capacity: prompt.count + count)
        var logits = d.forward([.init(cache: cache, tokens: prompt)], pool: pool)
        var out: [Int32] = []
        for _ in 0..<count {
            let next = Int32(Tensor(shape: [1, logits.count], data: logits).argmaxRows()[0])
            out.append(next)
            logits = d.forward([.init(cache: cache, tokens: [next])], pool: pool)
        }
        return out
    }

    @Test("fp32 logits at every position within 1e-4 of transformers float64, for all three families")
    func teacherForcedLogits() throws {
        let all = try Self.expected()
        for name in Self.models {
            let model = try Self.load(name)
            let d = model.decoder
            var worst: Float = 0
            for e in all where e.model == name {
                let logits = d.forward([.init(cache: d.makeCache(capacity: e.ids.count), tokens: e.ids)], logits: .all)
                let v = d.shape.vocabulary
                #expect(logits.count == e.ids.count * v)
                for (r, ids) in e.topIDs.enumerated() {
                    let row = Array(logits[(r * v)..<((r + 1) * v)])
                    let scale = max(row.map(abs).max()!, 1)
                    for (id, value) in zip(ids, e.topLogits[r]) {
                        worst = max(worst, abs(row[id] - value) / scale)
                    }
                }
                let last = Array(logits[((e.ids.count - 1) * v)...])
                let scale = max(last.map(abs).max()!, 1)
                for (a, b) in zip(last, e.lastLogits) { worst = max(worst, abs(a - b) / scale) }
            }
            print("\(name): worst logit difference \(worst) of the row's largest")
            #expect(worst <= Self.logitTolerance, "\(name)")
        }
    }

    @Test("fp32 greedy tokens equal transformers' for every prompt of every family")
    func greedyTokens() throws {
        for e in try Self.expected() {
            let model = try Self.load(e.model)
            #expect(Self.greedy(model.decoder, e.ids, count: e.greedy.count) == e.greedy, "\(e.model): \(e.ids)")
        }
    }

    @Test(
        "a sequence's logits are bit-identical alone, in a batch of mixed prompts and decode steps, on 1 or 2 threads")
    func batchInvariance() throws {
        let all = try Self.expected()
        for name in Self.models {
            let d = try Self.load(name).decoder
            let prompts = all.filter { $0.model == name }.map(\.ids)
            let v = d.shape.vocabulary
            // Alone, one thread, the whole prompt at once.
            let alone = prompts.map { p in
                d.forward([.init(cache: d.makeCache(capacity: p.count), tokens: p)], pool: .single)
            }
            // Together on two threads; odd prompts first run all but their last token, so
            // the batch mixes whole prompts with single-token steps over longer caches.
            let caches = prompts.map { d.makeCache(capacity: $0.count) }
            let split = prompts.indices.filter { $0 % 2 == 1 && prompts[$0].count > 1 }
            _ = d.forward(split.map { .init(cache: caches[$0], tokens: Array(prompts[$0].dropLast())) })
            let together = d.forward(
                prompts.indices.map { i in
                    .init(cache: caches[i], tokens: split.contains(i) ? [prompts[i].last!] : prompts[i])
                },
                pool: ThreadPool(threads: 2))
            for i in prompts.indices {
                #expect(Array(together[(i * v)..<((i + 1) * v)]) == alone[i], "\(name) prompt \(i)")
            }
        }
    }

    @Test(
        "int8 and 4-bit weights keep greedy decoding close to fp32 on the tiny models",
        arguments: [
            LinearOperator.Precision.int8, .q4
        ])
    func quantized(precision: LinearOperator.Precision) throws {
        var matched = 0, total = 0
        for e in try Self.expected() {
            let fp32 = Self.greedy(try Self.load(e.model).decoder, e.ids, count: 8)
            let low = Self.greedy(try Self.load(e.model, precision).decoder, e.ids, count: 8)
            total += 8
            matched += zip(fp32, low).prefix { $0 == $1 }.count
        }
        print("\(precision) greedy prefix: \(matched) of \(total) tokens")
        // Random weights with margins of 0.001-0.03 between the two best logits: 4-bit
        // noise (a sixteenth of each group's range) flips them far sooner than int8's.
        // SmolLM2's fidelity is what `quern bench generate` measures.
        let floor = precision == .int8 ? 0.5 : 0.2
        #expect(Double(matched) >= floor * Double(total))
    }

    @Test("a KV cache grows with what the sequence runs, up to its limit, without changing a logit")
    func cacheGrowth() throws {
        let d = try Self.load("tiny-llama").decoder
        let prompt = (0..<200).map { Int32($0 % 300 + 3) }
        let whole = d.makeCache(capacity: 250)
        #expect(whole.limit == 250 && whole.capacity == KVCache.initialCapacity)
        let once = d.forward([.init(cache: whole, tokens: prompt)])
        #expect(whole.capacity == 200)
        let stepwise = d.makeCache(capacity: 1000)
        #expect(stepwise.limit == d.shape.context)
        var last: [Float] = []
        for t in prompt { last = d.forward([.init(cache: stepwise, tokens: [t])]) }
        #expect(last == once)
        #expect(stepwise.capacity == 256 && stepwise.length == 200)
        let twin = stepwise.copy()
        #expect(d.forward([.init(cache: twin, tokens: [7])]) == d.forward([.init(cache: stepwise, tokens: [7])]))
    }

    @Test("configs with absurd or unsupported settings are refused naming the key")
    func badConfigs() throws {
        let base = try #require(
            try JSONParser.parse(Sys.readFile(repoRoot + "/fixtures/models/tiny-llama/config.json")).objectValue)
        let cases: [(String, JSONValue, String)] = [
            ("hidden_size", .int(1 << 40), "hidden_size"),
            ("num_key_value_heads", .int(3), "num_key_value_heads"),
            ("hidden_act", "gelu", "hidden_act"),
            ("rope_parameters", .object(JSONObject([("rope_type", "longrope"), ("rope_theta", 1e4)])), "longrope"),
            ("head_dim", .int(15), "head_dim"),
            ("pretraining_tp", .int(2), "pretraining_tp")
        ]
        for (key, value, words) in cases {
            var c = base
            c[key] = value
            #expect(throws: QuernError.self) { try Llama.Config(json: c) }
            do {
                _ = try Llama.Config(json: c)
            } catch let e as QuernError {
                #expect(e.code == .modelInvalid && e.message.contains(words), "\(key): \(e.message)")
            }
        }
        // Older configs: rope_theta and rope_scaling at the top level.
        var old = base
        old["rope_parameters"] = nil
        old["rope_theta"] = .double(500000)
        old["rope_scaling"] = .object(JSONObject([("type", "linear"), ("factor", 2.0)]))
        let c = try Llama.Config(json: old)
        #expect(c.theta == 500000 && c.scaling == .linear(factor: 2))
    }
}
