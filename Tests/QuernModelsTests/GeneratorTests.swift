import Foundation
import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernModels

@Suite("generation engine")
struct GeneratorTests {
    /// Each token as one letter, so stop strings can be tested without a tokenizer.
    static let letters: @Sendable (Int32) -> [UInt8] = { [UInt8(97 + Int($0) % 26)] }

    static func run(
        _ d: Decoder, _ requests: [GenerationRequest], batch: Int, budget: Int = 512, threads: Int = 2
    ) -> [[Completion]] {
        var counts = Generator.Counts()
        return Generator(
            decoder: d, batchSize: batch, prefillBudget: budget, pool: ThreadPool(threads: threads),
            tokenBytes: letters
        ).run(requests, counts: &counts)
    }

    @Test("greedy completions equal transformers' with any batch size and prefill budget")
    func greedyMatchesReference() throws {
        let all = try DecoderTests.expected()
        for name in DecoderTests.models {
            let d = try DecoderTests.load(name).decoder
            let cases = all.filter { $0.model == name }
            var greedy = SamplingOptions()
            greedy.temperature = 0
            let requests = cases.map { GenerationRequest(prompt: $0.ids, maxTokens: $0.greedy.count, sampling: greedy) }
            for (batch, budget) in [(1, 512), (3, 7), (32, 512)] {
                let out = Self.run(d, requests, batch: batch, budget: budget)
                for (e, c) in zip(cases, out) {
                    #expect(c[0].tokens == e.greedy, "\(name) batch \(batch) budget \(budget)")
                    #expect(c[0].finishReason == .length)
                }
            }
        }
    }

    @Test("sampled completions depend only on the request: alone, in a batch of 32, on 1 or 2 threads")
    func samplingIsBatchInvariant() throws {
        let d = try DecoderTests.load("tiny-llama").decoder
        let prompts = try DecoderTests.expected().filter { $0.model == "tiny-llama" }.map(\.ids)
        var options = SamplingOptions()
        options.temperature = 0.9
        options.topK = 50
        options.topP = 0.95
        options.minP = 0.01
        options.repetitionPenalty = 1.1
        options.presencePenalty = 0.2
        options.frequencyPenalty = 0.1
        let requests = (0..<32).map { i in
            GenerationRequest(
                prompt: prompts[i % prompts.count], maxTokens: 12 + i % 5, sampling: options, choices: 1 + i % 3,
                logprobs: i % 2 == 0 ? 3 : nil, random: CounterRandom(seed: 7, key: UInt64(i)))
        }
        let together = Self.run(d, requests, batch: 32, threads: 2)
        let small = Self.run(d, requests, batch: 5, budget: 16, threads: 1)
        #expect(together == small)
        for i in [0, 13, 31] {
            let alone = Self.run(d, [requests[i]], batch: 1, threads: 1)
            #expect(alone[0] == together[i], "request \(i)")
        }
        // Another seed or key gives other completions; choices of one prompt differ.
        var reseeded = requests[4]
        reseeded.random = CounterRandom(seed: 8, key: 4)
        #expect(Self.run(d, [reseeded], batch: 1)[0][0].tokens != together[4][0].tokens)
        #expect(together[2][0].tokens != together[2][1].tokens)
    }

    @Test("stop tokens, stop strings, max_tokens and the context end completions with the right reason")
    func stopping() throws {
        let d = try DecoderTests.load("tiny-llama").decoder
        let e = try #require(try DecoderTests.expected().first { $0.model == "tiny-llama" })
        var greedy = SamplingOptions()
        greedy.temperature = 0
        let plain = Self.run(d, [GenerationRequest(prompt: e.ids, maxTokens: 24, sampling: greedy)], batch: 1)[0][0]
        let text = plain.text
        #expect(plain.tokens == e.greedy && text.count == 24)
        // A stop token: the completion ends with it, and it is not text.
        let stopAt = e.greedy[5]
        let first = try #require(e.greedy.firstIndex(of: stopAt))
        var r = GenerationRequest(prompt: e.ids, maxTokens: 24, sampling: greedy, stopTokens: [stopAt])
        var c = Self.run(d, [r], batch: 1)[0][0]
        #expect(c.tokens == Array(e.greedy[...first]) && c.finishReason == .stop && c.text == Array(text[..<first]))
        // A stop string spanning tokens 7-9: the text ends before it.
        r = GenerationRequest(
            prompt: e.ids, maxTokens: 24, sampling: greedy,
            stopStrings: [String(decoding: text[7..<10], as: UTF8.self), "not-there"])
        c = Self.run(d, [r], batch: 1)[0][0]
        let at = try #require(Generator.stopMatch(text, from: 0, stops: r.stopStrings))
        #expect(c.finishReason == .stop && c.text == Array(text[..<at]) && c.tokens.count == at + 3)
        // max_tokens 1, and a prompt that leaves two positions of the context.
        c = Self.run(d, [GenerationRequest(prompt: e.ids, maxTokens: 1, sampling: greedy)], batch: 1)[0][0]
        #expect(c.tokens == [e.greedy[0]] && c.finishReason == .length)
        let long = Array(repeating: e.ids[0], count: d.shape.context - 2)
        c = Self.run(d, [GenerationRequest(prompt: long, maxTokens: 100, sampling: greedy)], batch: 1)[0][0]
        #expect(c.tokens.count == 2 && c.finishReason == .length)
    }

    @Test("log-probabilities: the chosen token's, and the top ones in order, from the model's own distribution")
    func logprobs() throws {
        let d = try DecoderTests.load("tiny-qwen2").decoder
        let e = try #require(try DecoderTests.expected().first { $0.model == "tiny-qwen2" })
        var greedy = SamplingOptions()
        greedy.temperature = 0
        let c = Self.run(d, [GenerationRequest(prompt: e.ids, maxTokens: 6, sampling: greedy, logprobs: 4)], batch: 1)[
            0][0]
        #expect(c.logprobs.count == 6)
        for lp in c.logprobs {
            #expect(lp.top.count == 4 && lp.top[0] == lp.token && abs(lp.topLogprobs[0] - lp.logprob) < 1e-12)
            #expect(zip(lp.topLogprobs, lp.topLogprobs.dropFirst()).allSatisfy { $0 >= $1 })
            #expect(lp.logprob <= 0 && lp.topLogprobs.reduce(0) { $0 + exp($1) } <= 1 + 1e-9)
        }
    }
}

@Suite("sampler")
struct SamplerTests {
    static let logits: [Float] = [2.0, 1.0, 0.5, 3.0, -1.0, 3.0, 0.0, 1.5]

    @Test("cuts that keep one token are greedy; the most likely wins ties by lowest id")
    func degenerateCuts() {
        var o = SamplingOptions()
        o.temperature = 0
        #expect(Sampler.pick(Self.logits, options: o, u: 0.7) == 3)
        for u in stride(from: 0.0, to: 1.0, by: 0.05) {
            var k = SamplingOptions()
            k.topK = 1
            #expect(Sampler.pick(Self.logits, options: k, u: u) == 3)
            var p = SamplingOptions()
            p.topP = 1e-6
            #expect(Sampler.pick(Self.logits, options: p, u: u) == 3)
        }
    }

    @Test("draws follow the cut distribution: top-k 2 splits the two tied best tokens evenly, min-p drops the tail")
    func distributions() {
        var o = SamplingOptions()
        o.topK = 2
        var hits: [Int32: Int] = [:]
        let n = 20000
        for i in 0..<n {
            let u = CounterRandom(seed: 1, key: 2).uniform(choice: 0, step: i)
            hits[Sampler.pick(Self.logits, options: o, u: u), default: 0] += 1
        }
        #expect(Set(hits.keys) == [3, 5])
        #expect(abs(Double(hits[3]!) / Double(n) - 0.5) < 0.02)
        // min-p 0.3: tokens with p >= 0.3·p_max: logits within ln(1/0.3) ≈ 1.2 of 3.0.
        var m = SamplingOptions()
        m.minP = 0.3
        var kept: Set<Int32> = []
        for i in 0..<2000 {
            kept.insert(
                Sampler.pick(Self.logits, options: m, u: CounterRandom(seed: 3, key: 4).uniform(choice: 1, step: i)))
        }
        #expect(kept == [0, 3, 5])
        // Plain temperature sampling matches softmax frequencies.
        var t = SamplingOptions()
        t.temperature = 0.8
        var counts = [Int](repeating: 0, count: Self.logits.count)
        for i in 0..<n {
            counts[
                Int(
                    Sampler.pick(Self.logits, options: t, u: CounterRandom(seed: 9, key: 9).uniform(choice: 2, step: i))
                )] += 1
        }
        let weights = Self.logits.map { exp(Double($0) / 0.8) }
        let total = weights.reduce(0, +)
        for (c, w) in zip(counts, weights) {
            let frequency = Double(c) / Double(n)
            #expect(abs(frequency - w / total) < 0.015)
        }
    }

    @Test("the counter random source is uniform and keyed")
    func counterRandom() {
        let r = CounterRandom(seed: 42, key: CounterRandom.key(member: "a.jsonl", line: 3))
        let draws = (0..<10000).map { r.uniform(choice: 0, step: $0) }
        #expect(draws.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(draws.reduce(0, +) / 10000 - 0.5) < 0.01)
        #expect(CounterRandom.key(member: "a.jsonl", line: 3) != CounterRandom.key(member: "a.jsonl", line: 4))
        #expect(r.uniform(choice: 1, step: 0) != r.uniform(choice: 0, step: 0))
    }
}
