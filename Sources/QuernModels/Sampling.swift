import Foundation
import QuernCore

/// How to pick each next token: the OpenAI / vLLM / transformers sampling settings.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it.
    public var temperature = 1.0
    /// Keep the `topK` most likely tokens (nil: all).
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches `topP`.
    public var topP = 1.0
    /// Drop tokens less likely than `minP` × the most likely one's probability.
    public var minP = 0.0
    /// transformers' repetition penalty over prompt and completion tokens: a seen
    /// token's logit is divided by it when positive, multiplied when negative.
    public var repetitionPenalty = 1.0
    /// OpenAI's penalties over the completion's tokens: `presence` once for a token that
    /// appeared, `frequency` times its count.
    public var presencePenalty = 0.0
    public var frequencyPenalty = 0.0

    public init() {}

    public var isGreedy: Bool { temperature == 0 }
}

/// A counter-based random source: the `step`-th draw of completion `choice` of a record
/// is a pure function of (seed, record key, choice, step). No state is carried between
/// draws, so a record samples the same tokens alone or in any batch, on any thread
/// count, and after a crash and resume.
public struct CounterRandom: Sendable, Equatable {
    public let seed: UInt64
    public let key: UInt64

    public init(seed: UInt64, key: UInt64) {
        self.seed = seed
        self.key = key
    }

    /// A record's key from where it sits in the input (member and line), which no
    /// batching, sharding or resume changes.
    public static func key(member: String, line: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in member.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return mix(h ^ UInt64(truncatingIfNeeded: line))
    }

    /// SplitMix64's finaliser: a bijection of 64-bit words with full avalanche.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1).
    public func uniform(choice: Int, step: Int) -> Double {
        let word = Self.mix(Self.mix(Self.mix(seed ^ key) ^ UInt64(choice)) ^ UInt64(step))
        return Double(word >> 11) * 0x1p-53
    }
}

/// Picks tokens from logits, and reports their log-probabilities.
public enum Sampler {
    /// Applies the penalties to `logits` in place. `prompt` and `completion` are the
    /// tokens so far; `counts` the completion's token counts.
    public static func penalize(
        _ logits: inout [Float], options o: SamplingOptions, seen: Set<Int32>, counts: [Int32: Int]
    ) {
        if o.repetitionPenalty != 1 {
            let p = Float(o.repetitionPenalty)
            for t in seen {
                let v = logits[Int(t)]
                logits[Int(t)] = v > 0 ? v / p : v * p
            }
        }
        if o.presencePenalty != 0 || o.frequencyPenalty != 0 {
            for (t, c) in counts {
                logits[Int(t)] -= Float(o.presencePenalty) + Float(o.frequencyPenalty) * Float(c)
            }
        }
    }

    /// The next token: the most likely one when greedy (the lowest id on ties), else a
    /// draw with `u` ∈ [0, 1) from the temperature-scaled distribution cut by top-k,
    /// min-p and top-p. Only the cuts sort, and only the candidates they can keep:
    /// a full sort of a 50,000-token vocabulary per token would cost more than a decode
    /// step of a small model.
    public static func pick(_ logits: [Float], options o: SamplingOptions, u: Double) -> Int32 {
        let best = argmax(logits)
        if o.isGreedy { return best }
        let top = Double(logits[Int(best)])
        /// Descending probability, then ascending id: a total order, so cuts are exact.
        func before(_ a: Int, _ b: Int) -> Bool { logits[a] > logits[b] || (logits[a] == logits[b] && a < b) }
        var ids: [Int]
        if let k = o.topK, k < logits.count {
            // The k best by a bounded insertion: k is small next to the vocabulary.
            ids = []
            ids.reserveCapacity(k + 1)
            for i in logits.indices where ids.count < k || before(i, ids[k - 1]) {
                let at = ids.firstIndex { before(i, $0) } ?? ids.count
                ids.insert(i, at: at)
                if ids.count > k { ids.removeLast() }
            }
        } else {
            ids = Array(logits.indices)
        }
        var p = ids.map { Foundation.exp((Double(logits[$0]) - top) / o.temperature) }
        if o.minP > 0 {
            // The best token's unnormalised probability is exp(0) = 1.
            let keep = p.indices.filter { p[$0] >= o.minP }
            ids = keep.map { ids[$0] }
            p = keep.map { p[$0] }
        }
        if o.topP < 1 {
            let total = p.reduce(0, +), need = o.topP * total
            // The nucleus lies within the tokens above some threshold: lower it until
            // those tokens hold enough mass, then sort just them.
            var threshold = 0.5
            var pool: [Int] = []
            while true {
                pool = p.indices.filter { p[$0] >= threshold }
                if pool.reduce(0.0, { $0 + p[$1] }) >= need || threshold == 0 { break }
                threshold = threshold < 1e-300 ? 0 : threshold / 16
            }
            pool.sort { before(ids[$0], ids[$1]) }
            var sum = 0.0, kept = 0
            for i in pool {
                sum += p[i]
                kept += 1
                if sum >= need { break }
            }
            ids = pool.prefix(kept).map { ids[$0] }
            p = pool.prefix(kept).map { p[$0] }
        }
        let target = u * p.reduce(0, +)
        var sum = 0.0
        for (i, q) in p.enumerated() {
            sum += q
            if target < sum { return Int32(ids[i]) }
        }
        return Int32(ids[ids.count - 1])
    }

    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    /// log softmax of the model's own logits (before penalties and temperature, as
    /// OpenAI's and vLLM's `logprobs` report them) at `token`, and the `top` most likely.
    public static func logprobs(_ logits: [Float], token: Int32, top: Int) -> (
        logprob: Double, top: [(Int32, Double)]
    ) {
        let best = Double(logits[Int(argmax(logits))])
        var sum = 0.0
        for v in logits { sum += Foundation.exp(Double(v) - best) }
        let norm = best + Foundation.log(sum)
        let chosen = Double(logits[Int(token)]) - norm
        guard top > 0 else { return (chosen, []) }
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        return (chosen, order.prefix(top).map { (Int32($0), Double(logits[$0]) - norm) })
    }
}
