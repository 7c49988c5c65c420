import QuernCore
import QuernKernels

/// One prompt to complete, with everything that decides its completions.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    /// New tokens at most per completion (cut to what the context has left).
    public var maxTokens: Int
    public var sampling: SamplingOptions
    /// Tokens that end a completion (the model's end-of-sequence ids, `stop_token_ids`).
    public var stopTokens: Set<Int32>
    /// Texts that end a completion; the text is cut before them.
    public var stopStrings: [String]
    /// Completions of this prompt (OpenAI's `n`).
    public var choices: Int
    /// nil: no log-probabilities; k: the chosen token's and the k most likely.
    public var logprobs: Int?
    public var random: CounterRandom

    public init(
        prompt: [Int32], maxTokens: Int, sampling: SamplingOptions = SamplingOptions(), stopTokens: Set<Int32> = [],
        stopStrings: [String] = [], choices: Int = 1, logprobs: Int? = nil,
        random: CounterRandom = CounterRandom(seed: 0, key: 0)
    ) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.stopStrings = stopStrings
        self.choices = choices
        self.logprobs = logprobs
        self.random = random
    }
}

/// One completion of a prompt.
public struct Completion: Sendable, Equatable {
    public enum FinishReason: String, Sendable { case stop, length }

    /// Generated tokens, the one that ended it included (an end-of-sequence id, or the
    /// token that completed a stop string).
    public var tokens: [Int32] = []
    /// The completion's text bytes (specials skipped), cut before a stop string.
    public var text: [UInt8] = []
    public var finishReason: FinishReason = .length
    /// Per generated token: its log-probability and the `logprobs` most likely.
    public var logprobs: [TokenLogprob] = []
}

public struct TokenLogprob: Sendable, Equatable {
    public var token: Int32
    public var logprob: Double
    public var top: [Int32]
    public var topLogprobs: [Double]
}

/// Runs many prompts through a decoder with continuous batching: up to `batchSize`
/// sequences decode together, a finished one leaves at once and the next prompt takes
/// its place, and long prompts are prefilled in chunks beside the decoding sequences.
/// Every sequence's tokens depend only on its own request (the decoder is
/// batch-invariant and sampling draws are keyed by record, choice and step), so the
/// schedule changes speed, never output.
public struct Generator {
    public let decoder: Decoder
    public let batchSize: Int
    /// Prompt tokens per step across all prefilling sequences: bounds a step's
    /// activations and keeps decoding sequences moving while a long prompt is read.
    public let prefillBudget: Int
    /// The bytes of each token id as text (empty for special tokens, which completions
    /// leave out).
    public let tokenBytes: @Sendable (Int32) -> [UInt8]
    public let pool: ThreadPool

    public init(
        decoder: Decoder, batchSize: Int, prefillBudget: Int = 512, pool: ThreadPool = .shared,
        tokenBytes: @escaping @Sendable (Int32) -> [UInt8]
    ) {
        self.decoder = decoder
        self.batchSize = max(1, batchSize)
        self.prefillBudget = max(1, prefillBudget)
        self.pool = pool
        self.tokenBytes = tokenBytes
    }

    /// Statistics of a run, for progress and reports.
    public struct Counts: Sendable {
        public var promptTokens = 0
        public var generatedTokens = 0
        public var steps = 0
        public init() {}
    }

    /// A sequence in flight: one choice of one request.
    private final class Sequence {
        let request: Int
        let choice: Int
        let cache: KVCache
        /// Prompt tokens not yet run.
        var pending: ArraySlice<Int32>
        var completion = Completion()
        var counts: [Int32: Int] = [:]
        var seen: Set<Int32>
        let limit: Int
        var last: Int32 = 0
        var done = false

        init(request: Int, choice: Int, cache: KVCache, pending: ArraySlice<Int32>, seen: Set<Int32>, limit: Int) {
            self.request = request
            self.choice = choice
            self.cache = cache
            self.pending = pending
            self.seen = seen
            self.limit = limit
        }
    }

    /// Completions of every request, in request order (`choices` each). Prompts must be
    /// non-empty, within the vocabulary, and shorter than the context.
    public func run(_ requests: [GenerationRequest], counts: inout Counts) -> [[Completion]] {
        var results = requests.map { [Completion](repeating: Completion(), count: $0.choices) }
        var next = 0
        var active: [Sequence] = []
        let context = decoder.shape.context
        while next < requests.count || !active.isEmpty {
            // Admit prompts while there are free slots (a prompt's extra choices join
            // once it is read, so they may briefly overfill the batch).
            while next < requests.count && active.count < batchSize {
                let r = requests[next]
                precondition(!r.prompt.isEmpty && r.prompt.count < context, "prompt must fit the context")
                let limit = min(r.maxTokens, context - r.prompt.count)
                let seen = r.sampling.repetitionPenalty != 1 ? Set(r.prompt) : []
                active.append(
                    Sequence(
                        request: next, choice: 0, cache: decoder.makeCache(capacity: r.prompt.count + limit),
                        pending: r.prompt[...], seen: seen, limit: limit))
                counts.promptTokens += r.prompt.count
                next += 1
            }
            // One step: every decoding sequence's last token, and prompt chunks within
            // the budget.
            var budget = prefillBudget
            var stepping: [Sequence] = []
            var steps: [Decoder.Step] = []
            for s in active {
                if s.pending.isEmpty {
                    stepping.append(s)
                    steps.append(.init(cache: s.cache, tokens: [s.last]))
                } else if budget > 0 {
                    let chunk = s.pending.prefix(budget)
                    budget -= chunk.count
                    s.pending = s.pending.dropFirst(chunk.count)
                    stepping.append(s)
                    steps.append(.init(cache: s.cache, tokens: Array(chunk)))
                }
            }
            let logits = decoder.forward(steps, pool: pool)
            counts.steps += 1
            let v = decoder.shape.vocabulary
            var joined: [Sequence] = []
            for (i, s) in stepping.enumerated() where s.pending.isEmpty {
                let row = Array(logits[(i * v)..<((i + 1) * v)])
                let r = requests[s.request]
                // A prompt just read: its other choices start from copies of its cache.
                if s.completion.tokens.isEmpty && s.choice == 0 {
                    for c in 1..<max(r.choices, 1) {
                        let twin = Sequence(
                            request: s.request, choice: c, cache: s.cache.copy(), pending: [], seen: s.seen,
                            limit: s.limit)
                        emit(twin, row, r, &counts)
                        joined.append(twin)
                    }
                }
                emit(s, row, r, &counts)
            }
            active += joined
            for s in active where s.done { results[s.request][s.choice] = s.completion }
            active.removeAll { $0.done }
        }
        return results
    }

    /// Picks a sequence's next token from its logits and checks whether it is done.
    private func emit(_ s: Sequence, _ logits: [Float], _ r: GenerationRequest, _ counts: inout Counts) {
        var row = logits
        Sampler.penalize(&row, options: r.sampling, seen: s.seen, counts: s.counts)
        let step = s.completion.tokens.count
        let token = Sampler.pick(row, options: r.sampling, u: r.random.uniform(choice: s.choice, step: step))
        if let k = r.logprobs {
            let (lp, top) = Sampler.logprobs(logits, token: token, top: k)
            s.completion.logprobs.append(
                TokenLogprob(token: token, logprob: lp, top: top.map(\.0), topLogprobs: top.map(\.1)))
        }
        s.completion.tokens.append(token)
        s.counts[token, default: 0] += 1
        if r.sampling.repetitionPenalty != 1 { s.seen.insert(token) }
        s.last = token
        counts.generatedTokens += 1
        if r.stopTokens.contains(token) {
            s.completion.finishReason = .stop
            s.done = true
            return
        }
        let before = s.completion.text.count
        s.completion.text += tokenBytes(token)
        if let cut = Self.stopMatch(s.completion.text, from: before, stops: r.stopStrings) {
            s.completion.text.removeLast(s.completion.text.count - cut)
            s.completion.finishReason = .stop
            s.done = true
            return
        }
        if s.completion.tokens.count >= s.limit {
            s.completion.finishReason = .length
            s.done = true
        }
    }

    /// Where the earliest stop string that ends in the bytes from `from` on starts.
    static func stopMatch(_ text: [UInt8], from: Int, stops: [String]) -> Int? {
        var earliest: Int?
        for stop in stops {
            let s = Array(stop.utf8)
            guard !s.isEmpty, text.count >= s.count else { continue }
            var start = max(0, from - s.count + 1)
            while start + s.count <= text.count {
                if text[start..<(start + s.count)].elementsEqual(s) {
                    earliest = min(earliest ?? start, start)
                    break
                }
                start += 1
            }
        }
        return earliest
    }
}
