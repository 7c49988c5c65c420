import QuernCore
import QuernModels

/// The settings of a completion, by the names OpenAI's API and vLLM use: the manifest's
/// `generate` block gives the job's defaults, and a record (or an OpenAI request body)
/// may override any of them for itself.
public struct GenerationOptions: Sendable, Equatable {
    public var maxTokens = 256
    public var sampling = SamplingOptions()
    public var stop: [String] = []
    public var stopTokenIDs: [Int32] = []
    /// Keep going past the model's end-of-sequence tokens (benchmarks).
    public var ignoreEOS = false
    public var n = 1
    public var logprobs = false
    public var topLogprobs = 0
    public var seed: UInt64 = 0
    /// Also write each completion's token ids (fidelity checks, re-tokenization-free pipelines).
    public var returnTokenIDs = false

    public init() {}

    /// Stop strings a request may give, and their length: each is searched for after
    /// every token.
    public static let maxStops = 16
    public static let maxStopBytes = 256
    public static let maxChoices = 128
    public static let maxTopLogprobs = 20
    public static let maxNewTokens = 1 << 20

    /// The keys `apply` reads.
    public static let keys: Set<String> = [
        "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
        "presence_penalty", "frequency_penalty", "stop", "stop_token_ids", "ignore_eos", "n", "logprobs",
        "top_logprobs", "seed", "return_token_ids"
    ]

    /// Takes the keys of `o` this type knows (others are left for the caller to take or
    /// refuse), checking each value; errors name the field.
    public mutating func apply(_ o: inout StrictObject) throws {
        if let v = try o.int("max_tokens", range: 1...Self.maxNewTokens) { maxTokens = v }
        if let v = try o.int("max_completion_tokens", range: 1...Self.maxNewTokens) { maxTokens = v }
        if let v = try number(&o, "temperature", 0...2) { sampling.temperature = v }
        if let v = try number(&o, "top_p", 0...1) {
            guard v > 0 else { throw invalid(o, "top_p", "must be above 0 (1 keeps every token)") }
            sampling.topP = v
        }
        if let v = try o.int("top_k", range: -1...Int(Int32.max)) { sampling.topK = v > 0 ? v : nil }
        if let v = try number(&o, "min_p", 0...1) { sampling.minP = v }
        if let v = try number(&o, "repetition_penalty", 0...100) {
            guard v > 0 else { throw invalid(o, "repetition_penalty", "must be above 0 (1 is no penalty)") }
            sampling.repetitionPenalty = v
        }
        if let v = try number(&o, "presence_penalty", -2...2) { sampling.presencePenalty = v }
        if let v = try number(&o, "frequency_penalty", -2...2) { sampling.frequencyPenalty = v }
        if let v = try o.take("stop", required: false) {
            let list: [JSONValue] = v.stringValue != nil ? [v] : (v.arrayValue ?? [.null])
            guard list.allSatisfy({ $0.stringValue != nil }) else {
                throw QuernError(
                    .invalidType, "\"\(o.field("stop"))\" must be a string or an array of strings",
                    field: o.field("stop"))
            }
            let strings = list.compactMap(\.stringValue)
            guard strings.count <= Self.maxStops,
                strings.allSatisfy({ !$0.isEmpty && $0.utf8.count <= Self.maxStopBytes })
            else {
                throw invalid(
                    o, "stop",
                    "takes at most \(Self.maxStops) strings of 1 to \(Self.maxStopBytes) bytes each, not \(strings.count)"
                )
            }
            stop = strings
        }
        if let v = try o.take("stop_token_ids", required: false) {
            guard let a = v.arrayValue, a.count <= 1024,
                let ids = Optional(a.compactMap { $0.intValue.flatMap { Int32(exactly: $0) } }), ids.count == a.count,
                ids.allSatisfy({ $0 >= 0 })
            else {
                throw invalid(o, "stop_token_ids", "must be an array of at most 1024 token ids")
            }
            stopTokenIDs = ids
        }
        if let v = try o.bool("ignore_eos") { ignoreEOS = v }
        if let v = try o.int("n", range: 1...Self.maxChoices) { n = v }
        if let v = try o.bool("logprobs") { logprobs = v }
        if let v = try o.int("top_logprobs", range: 0...Self.maxTopLogprobs) { topLogprobs = v }
        if let v = try o.bool("return_token_ids") { returnTokenIDs = v }
        if let v = try o.take("seed", required: false) {
            guard let i = v.intValue else { throw invalid(o, "seed", "must be an integer") }
            seed = UInt64(bitPattern: i)
        }
    }

    private func number(_ o: inout StrictObject, _ key: String, _ range: ClosedRange<Double>) throws -> Double? {
        guard let v = try o.number(key) else { return nil }
        guard range.contains(v) else {
            throw invalid(o, key, "is \(v); it must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return v
    }

    private func invalid(_ o: StrictObject, _ key: String, _ what: String) -> QuernError {
        QuernError(.invalidValue, "\"\(o.field(key))\" \(what)", field: o.field(key))
    }

    /// The engine's request for a prompt of `prompt` tokens.
    public func request(prompt: [Int32], model: any CausalLM, key: UInt64) -> GenerationRequest {
        var stops = Set(stopTokenIDs)
        if !ignoreEOS { stops.formUnion(model.endTokens) }
        return GenerationRequest(
            prompt: prompt, maxTokens: maxTokens, sampling: sampling, stopTokens: stops, stopStrings: stop,
            choices: n, logprobs: logprobs || topLogprobs > 0 ? topLogprobs : nil,
            random: CounterRandom(seed: seed, key: key))
    }
}
