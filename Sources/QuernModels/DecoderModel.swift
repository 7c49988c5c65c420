import QuernCore
import QuernKernels

/// A loaded decoder language model of any family: its `Decoder` and what its
/// directory says about generation (end-of-sequence ids from generation_config.json,
/// else config.json).
public struct DecoderModel: CausalLM {
    public let family: String
    public let path: String
    public let weights: WeightsDigest?
    public let decoder: Decoder
    public let precision: LinearOperator.Precision
    public let endTokens: [Int32]
    public let beginToken: Int32?
    /// Where the weights came from and in which formats (a GGUF's tensor types).
    public let weightsSummary: String

    init(
        family: String, files: ModelFiles, weights: WeightsDigest?, decoder: Decoder,
        precision: LinearOperator.Precision, weightsSummary: String
    ) throws {
        self.family = family
        path = files.path
        self.weights = weights
        self.decoder = decoder
        self.precision = precision
        self.weightsSummary = weightsSummary
        let generation = try files.json("generation_config.json")?.objectValue ?? JSONObject()
        let vocabulary = decoder.shape.vocabulary
        func ids(_ key: String) throws -> [Int32] {
            let list: [JSONValue]
            switch generation[key] ?? files.config[key] ?? .null {
            case .null: return []
            case .array(let a): list = a
            case let v: list = [v]
            }
            return try list.map { v in
                guard let i = v.intValue, i >= 0, i < vocabulary else {
                    throw QuernError(
                        .modelInvalid,
                        "\(files.path): \(key) \(v) is not a token id of the \(vocabulary)-token vocabulary",
                        field: "model")
                }
                return Int32(i)
            }
        }
        endTokens = try ids("eos_token_id")
        beginToken = try ids("bos_token_id").first
    }

    public func describe() -> JSONValue {
        let s = decoder.shape
        func int(_ v: Int) -> JSONValue { .int(Int64(v)) }
        var o = JSONObject([
            ("family", .string(family)), ("task", "generate"), ("precision", .string(precision.rawValue)),
            ("vocabulary", int(s.vocabulary)), ("hidden", int(s.hidden)), ("layers", int(s.layers)),
            ("heads", int(s.heads)), ("kv_heads", int(s.kvHeads)), ("head_dim", int(s.headDim)),
            ("intermediate", int(s.intermediate)), ("context", int(s.context)), ("norm", .string(s.norm.rawValue)),
            ("mlp", .string(s.mlp.rawValue)), ("end_tokens", .array(endTokens.map { .int(Int64($0)) }))
        ])
        if let window = s.window { o["sliding_window"] = .int(Int64(window)) }
        o["weights_format"] = .string(weightsSummary)
        if let w = weights { o["weights_sha256"] = .string(w.sha256) }
        return .object(o)
    }
}
