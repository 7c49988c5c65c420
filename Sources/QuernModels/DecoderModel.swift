import QuernCore
import QuernKernels

/// A loaded decoder language model of any family: its `Decoder`, its byte-level BPE
/// tokenizer, its chat template, and the ids that end a completion. From a Hugging Face
/// directory (tokenizer.json, tokenizer_config.json or chat_template.jinja,
/// generation_config.json) or from a GGUF file's metadata.
public struct DecoderModel: CausalLM {
    public let family: String
    public let path: String
    public let weights: WeightsDigest?
    public let decoder: Decoder
    public let precision: LinearOperator.Precision
    public let tokenizer: BPETokenizer
    public let template: ChatTemplate?
    public let endTokens: [Int32]
    public let beginToken: Int32?
    /// The texts of the BOS and EOS tokens, which templates write (`{{ bos_token }}`).
    let beginText: String?
    let endText: String?
    /// Where the weights came from and in which formats (a GGUF's tensor types).
    public let weightsSummary: String

    /// A Hugging Face directory's model.
    init(
        family: String, files: ModelFiles, weights: WeightsDigest?, decoder: Decoder,
        precision: LinearOperator.Precision, weightsSummary: String
    ) throws {
        let source = files.path
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        let tokenizer = try BPETokenizer.load(directory: files.path)
        let config = try files.json("tokenizer_config.json")?.objectValue ?? JSONObject()
        func text(_ v: JSONValue?) -> String? { v?.stringValue ?? v?.objectValue?["content"]?.stringValue }
        // transformers saves a template as chat_template.jinja, or inside
        // tokenizer_config.json: a string, or named templates of which "default" is used.
        var templateSource: String?
        let jinja = Path.join(files.path, "chat_template.jinja")
        if Sys.isRegularFile(jinja) {
            templateSource = String(decoding: try Sys.readFile(jinja, limit: 1 << 20), as: UTF8.self)
        } else if let t = config["chat_template"] {
            if let s = t.stringValue {
                templateSource = s
            } else if let named = t.arrayValue {
                templateSource =
                    named.first { $0.objectValue?["name"]?.stringValue == "default" }?
                    .objectValue?["template"]?.stringValue
                guard templateSource != nil else {
                    throw fail("tokenizer_config.json's chat_template list has no template named \"default\"")
                }
            } else {
                throw fail("tokenizer_config.json's chat_template must be a string or a list of named templates")
            }
        }
        let generation = try files.json("generation_config.json")?.objectValue ?? JSONObject()
        func ids(_ key: String) throws -> [Int32] {
            try Self.ids(
                generation[key] ?? files.config[key], key: key, vocabulary: decoder.shape.vocabulary, source: source)
        }
        let end = try ids("eos_token_id")
        try self.init(
            family: family, path: files.path, weights: weights, decoder: decoder, precision: precision,
            tokenizer: tokenizer, template: try templateSource.map { try ChatTemplate(source: $0, name: jinja) },
            endTokens: end.isEmpty ? tokenizer.eosID.map { [$0] } ?? [] : end,
            beginToken: try ids("bos_token_id").first ?? tokenizer.bosID,
            beginText: text(config["bos_token"]), endText: text(config["eos_token"]), weightsSummary: weightsSummary)
    }

    /// A GGUF file's model: the tokenizer, template and special ids from its metadata.
    init(gguf file: GGUFFile, family: String, decoder: Decoder, precision: LinearOperator.Precision) throws {
        let model = try file.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw QuernError(
                .modelInvalid,
                "\(file.path): tokenizer.ggml.model \"\(model)\" is not supported (gpt2: byte-level BPE)",
                field: "model")
        }
        func optionalID(_ key: String) throws -> Int32? {
            guard file.metadata[key] != nil else { return nil }
            return try Self.ids(
                .int(Int64(try file.int(key))), key: key, vocabulary: decoder.shape.vocabulary, source: file.path
            )
            .first
        }
        let bos = try optionalID("tokenizer.ggml.bos_token_id"), eos = try optionalID("tokenizer.ggml.eos_token_id")
        let tokenizer = try BPETokenizer(
            ggufTokens: try file.strings("tokenizer.ggml.tokens"),
            merges: file.metadata["tokenizer.ggml.merges"] != nil ? try file.strings("tokenizer.ggml.merges") : [],
            tokenTypes: file.metadata["tokenizer.ggml.token_type"] != nil
                ? try file.ints("tokenizer.ggml.token_type").map { Int32(clamping: $0) } : nil,
            pre: try file.string("tokenizer.ggml.pre", default: "default"), bosID: bos, eosID: eos,
            addBOS: try file.bool("tokenizer.ggml.add_bos_token", default: false),
            addEOS: try file.bool("tokenizer.ggml.add_eos_token", default: false), source: file.path)
        let template = try file.metadata["tokenizer.chat_template"].map { _ in
            try ChatTemplate(source: try file.string("tokenizer.chat_template"), name: file.path)
        }
        let digest = try SHA256Stream.file(file.path)
        try self.init(
            family: family, path: file.path, weights: WeightsDigest(sha256: digest.sha256, bytes: digest.bytes),
            decoder: decoder, precision: precision, tokenizer: tokenizer, template: template,
            endTokens: eos.map { [$0] } ?? [], beginToken: bos, beginText: bos.flatMap { tokenizer.token($0) },
            endText: eos.flatMap { tokenizer.token($0) }, weightsSummary: "gguf")
    }

    private init(
        family: String, path: String, weights: WeightsDigest?, decoder: Decoder, precision: LinearOperator.Precision,
        tokenizer: BPETokenizer, template: ChatTemplate?, endTokens: [Int32], beginToken: Int32?, beginText: String?,
        endText: String?, weightsSummary: String
    ) throws {
        guard tokenizer.vocabularySize <= decoder.shape.vocabulary else {
            throw QuernError(
                .modelInvalid,
                "\(path): the tokenizer has \(tokenizer.vocabularySize) tokens but the model's vocabulary is \(decoder.shape.vocabulary)",
                field: "model")
        }
        self.family = family
        self.path = path
        self.weights = weights
        self.decoder = decoder
        self.precision = precision
        self.tokenizer = tokenizer
        self.template = template
        self.endTokens = endTokens
        self.beginToken = beginToken
        self.beginText = beginText
        self.endText = endText
        self.weightsSummary = weightsSummary
    }

    /// Token ids from a config value (one id or a list), each inside the vocabulary.
    static func ids(_ value: JSONValue?, key: String, vocabulary: Int, source: String) throws -> [Int32] {
        let list: [JSONValue]
        switch value ?? .null {
        case .null: return []
        case .array(let a): list = a
        case let v: list = [v]
        }
        return try list.map { v in
            guard let i = v.intValue, i >= 0, i < vocabulary else {
                throw QuernError(
                    .modelInvalid, "\(source): \(key) \(v) is not a token id of the \(vocabulary)-token vocabulary",
                    field: "model")
            }
            return Int32(i)
        }
    }

    public func tokenize(_ text: String, addSpecialTokens: Bool) -> [Int32] {
        tokenizer.encode(text, addSpecialTokens: addSpecialTokens)
    }

    public func tokenBytes(_ id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < tokenizer.vocabularySize, !tokenizer.isSpecial(id) else { return [] }
        return Array(tokenizer.bytes[Int(tokenizer.byteOffsets[Int(id)])..<Int(tokenizer.byteOffsets[Int(id) + 1])])
    }

    public func chatPrompt(_ messages: [JSONValue], addGenerationPrompt: Bool) throws -> String {
        guard let template else {
            throw QuernError(
                .invalidRecord,
                "\(Path.basename(path)) has no chat template (tokenizer_config.json's chat_template, chat_template.jinja or a GGUF's tokenizer.chat_template); give the record a prompt text instead of messages",
                field: "messages")
        }
        return try template.render(
            messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: beginText, eosToken: endText)
    }

    public func describe() -> JSONValue {
        let s = decoder.shape
        func int(_ v: Int) -> JSONValue { .int(Int64(v)) }
        var o = JSONObject([
            ("family", .string(family)), ("task", "generate"), ("precision", .string(precision.rawValue)),
            ("vocabulary", int(s.vocabulary)), ("hidden", int(s.hidden)), ("layers", int(s.layers)),
            ("heads", int(s.heads)), ("kv_heads", int(s.kvHeads)), ("head_dim", int(s.headDim)),
            ("intermediate", int(s.intermediate)), ("context", int(s.context)), ("norm", .string(s.norm.rawValue)),
            ("mlp", .string(s.mlp.rawValue)), ("end_tokens", .array(endTokens.map { .int(Int64($0)) })),
            ("chat_template", .bool(template != nil))
        ])
        if let window = s.window { o["sliding_window"] = .int(Int64(window)) }
        o["weights_format"] = .string(weightsSummary)
        if let w = weights { o["weights_sha256"] = .string(w.sha256) }
        return .object(o)
    }
}
