import Foundation
import QuernCore
import QuernKernels

/// The `bert` family: BERT-style encoders (all-MiniLM-L6-v2, BERT, bge-small, e5-small)
/// from a Hugging Face directory: config.json, model.safetensors, tokenizer.json or
/// vocab.txt, and sentence-transformers' settings around the encoder (pooling from
/// `1_Pooling/config.json`, L2 normalisation when `modules.json` lists a Normalize module,
/// `max_seq_length` from `sentence_bert_config.json`). A text encoder always; a sequence
/// classifier too when it has a head: Hugging Face's `BertForSequenceClassification`
/// (pooler + classifier) or Quern's pooled-embedding head in `head/` (an `mlp` that a
/// `finetune` job trains on the frozen encoder).
public enum Bert: ModelFamily {
    public static let modelType = "bert"
    public static var provides: [Any.Type] {
        [(any TextEncoder).self, (any SequenceClassifier).self, (any QuantizableEncoder).self]
    }
    /// The directory holding Quern's pooled-embedding head.
    public static let headDirectory = "head"

    /// `BertForSequenceClassification` nests the encoder under `bert.` (a bare `BertModel`,
    /// as sentence-transformers saves it, does not) and its head is `pooler.dense` then
    /// `classifier`.
    public static let variant = EncoderVariant(
        family: modelType, prefix: "bert.", headDense: "pooler.dense", headOut: "classifier",
        positionsAfterPadding: false)

    /// Checkpoint names → Quern's.
    public static func keyMap(_ name: String) -> String { variant.keyMap(name) }

    public static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model {
        try loadEncoder(files, options: options, variant: variant)
    }

    /// A BERT-architecture encoder of any variant (`Bert`, `Roberta`): the encoder, the
    /// tokenizer (WordPiece or Unigram), sentence-transformers' modules, a head, prompts.
    static func loadEncoder(_ files: ModelFiles, options: ModelOptions, variant: EncoderVariant) throws -> any Model {
        let path = files.path
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(path): \(what)", field: "model") }
        func object(_ name: String) throws -> JSONObject? {
            guard let v = try files.json(name) else { return nil }
            guard let o = v.objectValue else { throw fail("\(name) is not a JSON object") }
            return o
        }
        var config = try BertEncoder.Config(json: files.config, source: files.configPath)
        if variant.positionsAfterPadding {
            let pad = files.config["pad_token_id"]?.intValue ?? 1
            guard let padding = Int32(exactly: pad), pad >= 0,
                Int(pad) + 2 < config.maxPositions
            else {
                throw fail("pad_token_id must be an id below max_position_embeddings − 2 (positions start after it)")
            }
            config.positionPadding = padding
        }

        // sentence-transformers modules: Transformer at the root, then Pooling, Normalize.
        var poolingPath = "1_Pooling", normalize = false
        if let modules = try files.json("modules.json") {
            guard let list = modules.arrayValue else { throw fail("modules.json is not a JSON list of modules") }
            for m in list {
                let type = m.objectValue?["type"]?.stringValue ?? "?",
                    location = m.objectValue?["path"]?.stringValue ?? ""
                switch type.split(separator: ".").last.map(String.init) ?? type {
                case "Transformer":
                    guard location.isEmpty else {
                        throw fail(
                            "modules.json puts the Transformer in \(location)/; only a Transformer at the directory root is supported"
                        )
                    }
                case "Pooling": poolingPath = location
                case "Normalize": normalize = true
                default:
                    throw fail(
                        "modules.json lists a \(type) module; only Transformer, Pooling and Normalize are supported")
                }
            }
        }
        // Without 1_Pooling, mean pooling: what sentence-transformers gives a plain checkpoint.
        var pooling = BertEncoder.Pooling.mean, poolsPrompt = true
        if let p = try object(Path.join(poolingPath, "config.json")) {
            poolsPrompt = p["include_prompt"]?.boolValue ?? true
            let modes = p.keys.filter { $0.hasPrefix("pooling_mode_") && p[$0]?.boolValue == true }.sorted()
            let known: [String: BertEncoder.Pooling] = [
                "pooling_mode_mean_tokens": .mean, "pooling_mode_cls_token": .cls,
                "pooling_mode_max_tokens": .max
            ]
            guard modes.count == 1, let mode = known[modes[0]] else {
                throw fail(
                    "\(poolingPath)/config.json asks for \(modes.isEmpty ? "no pooling mode" : modes.joined(separator: " + ")); one of mean, cls or max tokens is supported"
                )
            }
            pooling = mode
        }
        let (file, digest) = try files.weights()
        var weights = try StrictWeights(file, keyMap: variant.keyMap)
        let encoder = try BertEncoder(
            config: config, weights: &weights, precision: options.precision, pooling: pooling, normalize: normalize)
        // An int8 model's head runs int8 too.
        let precision = encoder.precision
        let tokenizer = try ModelTokenizer.encoder(directory: path)
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw fail(
                "the tokenizer has \(tokenizer.vocabularySize) tokens but the model's vocab_size is \(config.vocabSize)"
            )
        }
        if let bad = tokenizer.template.specialIDs.first(where: { Int($0) >= config.vocabSize }) {
            throw fail("the tokenizer's template adds id \(bad), outside the model's \(config.vocabSize) (vocab_size)")
        }
        guard Int(tokenizer.template.maxTypeID) < config.typeVocabSize else {
            throw fail(
                "the tokenizer's template gives token type \(tokenizer.template.maxTypeID) but the model has \(config.typeVocabSize) (type_vocab_size)"
            )
        }

        // Sequence length: the manifest's, else sentence-transformers', else the tokenizer's, within the positions.
        let configured = try object("sentence_bert_config.json")?["max_seq_length"]?.intValue.map(Int.init)
        let length = min(
            options.maxLength ?? configured ?? tokenizer.defaultMaxLength ?? config.usablePositions,
            config.usablePositions)
        guard length >= 2 else { throw fail("max length \(length) leaves no room for text between [CLS] and [SEP]") }

        // Heads: Quern's pooled head in head/ (which replaces a checkpoint's own
        // classifier), or Hugging Face's sequence classifier.
        var head: BertModel.Head?, labels: [String] = []
        let headPath = Path.join(path, headDirectory)
        let h = config.hidden
        if Sys.isDirectory(headPath) {
            guard
                let m = try ModelRegistry.load(headPath, ModelOptions(precision: precision)).capability(
                    TabularModel.self)
            else {
                throw fail("\(headDirectory)/ is not a model that takes features")
            }
            guard m.inputSize == h else {
                throw fail("\(headDirectory)/ takes \(m.inputSize) features but the encoder's embeddings have \(h)")
            }
            head = .pooled(m)
            labels = m.labels
            weights.ignore { $0.hasPrefix("pooler.") || $0.hasPrefix("classifier.") }
        } else if let n = weights.shape(variant.headOut + ".weight")?.first {
            let dense = variant.headDense, out = variant.headOut
            head = .sequenceClassification(
                pooler: LinearOperator.choose(
                    try weights.float32(dense + ".weight", shape: [h, h]), precision: precision),
                poolerBias: try weights.float32(dense + ".bias", shape: [h]).data,
                classifier: .fp32(PackedWeights(try weights.float32(out + ".weight", shape: [n, h]))),
                bias: try weights.float32(out + ".bias", shape: [n]).data)
            weights.ignore { $0.hasPrefix("pooler.") }
            if files.config["problem_type"]?.stringValue != "regression" {
                let names = files.config["id2label"]?.objectValue ?? JSONObject()
                labels = (0..<n).map { names[String($0)]?.stringValue ?? "LABEL_\($0)" }
            }
        } else {
            // A bare encoder's pooler (sentence-transformers pool by 1_Pooling instead).
            weights.ignore { $0.hasPrefix("pooler.") }
        }
        // Older transformers saved the position ids, a constant buffer; a masked-LM
        // checkpoint's prediction head is not part of the encoder.
        weights.ignore { $0 == "embeddings.position_ids" || $0.hasPrefix("lm_head.") || $0.hasPrefix("cls.") }
        try weights.finish()
        let model = BertModel(
            path: path, variant: variant, encoder: encoder, tokenizer: tokenizer, maxLength: length, head: head,
            labels: labels, weights: digest)
        model.poolsPrompt = poolsPrompt
        // sentence-transformers' prompts: {"prompts": {"query": "query: ", ...}, "default_prompt_name": ...}.
        if let st = try object("config_sentence_transformers.json") {
            if let p = st["prompts"] {
                guard let o = p.objectValue, o.keys.allSatisfy({ o[$0]?.stringValue != nil }) else {
                    throw fail("config_sentence_transformers.json: prompts must map names to strings")
                }
                model.prompts = Dictionary(uniqueKeysWithValues: o.keys.map { ($0, o[$0]!.stringValue!) })
            }
            if let d = st["default_prompt_name"], d != .null {
                guard let name = d.stringValue, model.prompts[name] != nil else {
                    throw fail("config_sentence_transformers.json: default_prompt_name \(d) is not one of its prompts")
                }
                model.defaultPromptName = name
            }
        }
        return model
    }
}

/// A `bert` model directory ready to run: tokenizer, encoder and, if it has one, a head.
public final class BertModel: TextEncoder, SequenceClassifier, @unchecked Sendable {
    /// What turns an encoded sequence into class scores.
    public enum Head: Sendable {
        /// Hugging Face `BertForSequenceClassification`: `classifier(tanh(pooler · h_CLS))`.
        case sequenceClassification(
            pooler: LinearOperator, poolerBias: [Float], classifier: LinearOperator, bias: [Float])
        /// Quern's head over the pooled sentence embedding: a tabular model in `head/`.
        case pooled(any TabularModel)
    }

    public let path: String
    public let variant: EncoderVariant
    public let encoder: BertEncoder
    public let tokenizer: any EncoderTokenizer
    /// Tokens per sequence, specials included.
    public let maxLength: Int
    public let head: Head?
    /// Class names by head output; empty without a head (or for a regression head).
    public let labels: [String]
    public let weights: WeightsDigest?
    public internal(set) var prompts: [String: String] = [:]
    public internal(set) var defaultPromptName: String?
    public internal(set) var poolsPrompt = true
    public var normalizes: Bool { encoder.normalize }
    public var family: String { variant.family }
    public var dimension: Int { encoder.config.hidden }
    public var outputs: Int {
        switch head {
        case .sequenceClassification(_, _, let c, _)?: return c.outFeatures
        case .pooled(let m)?: return m.outputSize
        case nil: return 0
        }
    }

    init(
        path: String, variant: EncoderVariant, encoder: BertEncoder, tokenizer: any EncoderTokenizer, maxLength: Int,
        head: Head?, labels: [String], weights: WeightsDigest
    ) {
        self.path = path
        self.variant = variant
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.maxLength = maxLength
        self.head = head
        self.labels = labels
        self.weights = weights
    }

    /// A sequence classifier only with a head.
    public func capability<C>(_ type: C.Type) -> C? {
        if head == nil && ObjectIdentifier(type) == ObjectIdentifier((any SequenceClassifier).self) { return nil }
        return self as? C
    }

    public func describe() -> JSONValue {
        let c = encoder.config
        return [
            "family": .string(family), "hidden": .int(Int64(c.hidden)), "layers": .int(Int64(c.layers)),
            "heads": .int(Int64(c.heads)), "intermediate": .int(Int64(c.intermediate)),
            "vocabulary": .int(Int64(tokenizer.vocabularySize)), "max_length": .int(Int64(maxLength)),
            "pooling": .string(encoder.pooling.rawValue), "normalize": .bool(encoder.normalize),
            "precision": .string(encoder.precision.rawValue),
            "quantization": c.quantization ?? .null,
            "head": head == nil
                ? .null
                : .object(
                    JSONObject([
                        ("outputs", .int(Int64(outputs))),
                        ("labels", .array(labels.map { .string($0) }))
                    ]))
        ]
    }

    public func makeTokenizer() -> any TextTokenizer {
        Tokenizing(session: tokenizer.makeSession(), template: tokenizer.template, maxLength: maxLength)
    }

    struct Tokenizing: TextTokenizer {
        let session: any EncoderTokenizerSession
        let template: EncoderTemplate
        let maxLength: Int
        func encode(_ text: String) -> TokenSequence { template.encode(session.tokens(text), maxLength: maxLength) }
        func encode(_ a: String, _ b: String) -> TokenSequence {
            template.encode(session.tokens(a), session.tokens(b), maxLength: maxLength)
        }
        func chunks(_ text: String, prompt: String, tokens: Int, overlap: Int, offsets: Bool) -> [TextChunk] {
            let (prefix, ids) = split(prompt, text)
            let words = offsets ? session.wordSpans(text, ids) : nil
            return template.chunks(ids, prefix: prefix, tokens: min(tokens, maxLength), overlap: overlap).map {
                sequence, r in
                let characters = words.flatMap { w in
                    r.isEmpty ? nil : w[r.lowerBound].lowerBound..<w[r.upperBound - 1].upperBound
                }
                return TextChunk(sequence: sequence, tokens: r, characters: characters)
            }
        }

        /// The prompt's tokens and the text's, as `prompt + text` tokenizes: tokenized
        /// alone a prompt's trailing space can become a token of its own (Metaspace's `▁`,
        /// ByteLevel's `Ġ`) that it is not before the text. When no prefix of the joint
        /// tokens is the prompt's, the prompt stays with the text (first window only).
        func split(_ prompt: String, _ text: String) -> ([Int32], [Int32]) {
            guard !prompt.isEmpty else { return ([], session.tokens(text)) }
            let joint = session.tokens(prompt + text)
            var trimmed = Substring(prompt)
            while let last = trimmed.unicodeScalars.last, last.properties.isWhitespace {
                trimmed = Substring(trimmed.unicodeScalars.dropLast())
            }
            for candidate in [prompt, String(trimmed)] where !candidate.isEmpty {
                let p = session.tokens(candidate)
                if joint.starts(with: p) { return (p, Array(joint[p.count...])) }
            }
            return ([], joint)
        }
    }

    /// Runs one batch of sequences (unpadded, see `BertEncoder.hiddenStates`).
    public func forward(
        _ batch: [TokenSequence], workspace ws: BertEncoder.Workspace = .init(),
        pool: ThreadPool = .shared
    ) -> TextOutput {
        let offsets = encoder.hiddenStates(batch, workspace: ws, pool: pool)
        let b = batch.count, h = dimension
        let embeddings = encoder.pool(ws.x, offsets: offsets, mode: encoder.pooling, normalize: encoder.normalize)
        var scores: [Float] = []
        switch head {
        case .sequenceClassification(let pooler, let poolerBias, let classifier, let bias)?:
            let cls = encoder.pool(ws.x, offsets: offsets, mode: .cls, normalize: false)
            var pooled = [Float](repeating: 0, count: b * h)
            pooler.apply(cls, m: b, bias: poolerBias, activation: .tanh, into: &pooled, pool: pool)
            scores = [Float](repeating: 0, count: b * classifier.outFeatures)
            classifier.apply(pooled, m: b, bias: bias, activation: .none, into: &scores, pool: pool)
        case .pooled(let m)?:
            scores = m.forward(Tensor(shape: [b, h], data: embeddings)).data
        case nil:
            break
        }
        return TextOutput(embeddings: embeddings, scores: scores)
    }

    /// Tokens per forward pass, at most. A pass's activations are about 15 KB a token
    /// for MiniLM: int8 passes of 256 tokens (4 MB) stay in the last-level cache between
    /// layers, which the memory-bound int8 GEMMs feel; fp32's GEMM is compute-bound and
    /// runs best on long row blocks, so its passes are large.
    public var tokensPerPass: Int { encoder.precision == .int8 ? 256 : 4096 }

    private let spareLock = NSLock()
    private var spare: [BertEncoder.Workspace] = []

    /// Runs many sequences in passes of at most `batchSize` sequences and
    /// `tokensPerPass` tokens. With enough passes to share, whole passes go to the pool's
    /// threads (each running its kernels alone: no per-layer hand-offs); otherwise the
    /// kernels split each pass across the threads. Workspaces are reused across calls.
    public func run(_ sequences: [TokenSequence], batchSize: Int, pool: ThreadPool = .shared) -> TextOutput {
        let n = sequences.count, h = dimension, c = outputs
        var passes: [Range<Int>] = []
        var start = 0, tokens = 0
        let cap = tokensPerPass
        for (i, e) in sequences.enumerated() {
            if i > start && (i - start >= batchSize || tokens + e.ids.count > cap) {
                passes.append(start..<i)
                (start, tokens) = (i, 0)
            }
            tokens += e.ids.count
        }
        if n > start { passes.append(start..<n) }
        var out = TextOutput(
            embeddings: [Float](repeating: 0, count: n * h), scores: [Float](repeating: 0, count: n * c))
        let lock = NSLock()
        func runPass(_ k: Int, _ threads: ThreadPool) {
            let ws: BertEncoder.Workspace = spareLock.withLock { spare.popLast() } ?? BertEncoder.Workspace()
            let r = passes[k]
            let o = forward(Array(sequences[r]), workspace: ws, pool: threads)
            spareLock.withLock { spare.append(ws) }
            lock.withLock {
                out.embeddings.replaceSubrange((r.lowerBound * h)..<(r.upperBound * h), with: o.embeddings)
                if c > 0 { out.scores.replaceSubrange((r.lowerBound * c)..<(r.upperBound * c), with: o.scores) }
            }
        }
        if pool.threads > 1 && passes.count >= 2 * pool.threads {
            pool.parallelFor(passes.count) { runPass($0, .single) }
        } else {
            for k in passes.indices { runPass(k, pool) }
        }
        return out
    }

    /// `directory`: copies of this model's files (copies, not links: the published model
    /// must not change when its source does), without a head of its own, plus `head` in
    /// `head/`; built in `directory.partial/`, then renamed.
    public func publish(
        head: StackConfig, tensors: [String: ([Int], TensorData)], normalizer: ([Float], [Float])?,
        to directory: String
    ) throws {
        try copy(to: directory, skipping: [Bert.headDirectory]) { partial in
            let headDir = Path.join(partial, Bert.headDirectory)
            try Sys.mkdirs(headDir)
            try head.write(into: headDir, tensors: tensors, normalizer: normalizer)
        }
    }

    /// Copies this model's files (copies, not links: a published model must not change
    /// when its source does) into `directory.partial/`, leaving out the top-level names
    /// in `skipping`, lets `finish` write its own into that directory, then renames the
    /// whole into `directory`.
    func copy(to directory: String, skipping: Set<String>, finish: (String) throws -> Void) throws {
        let partial = directory + ".partial"
        try? Sys.removeTree(partial)
        try Sys.mkdirs(partial)
        func copyTree(_ from: String, _ to: String, top: Bool) throws {
            for name in try Sys.listDirectory(from) where !name.hasPrefix(".") && !(top && skipping.contains(name)) {
                let source = Path.join(from, name), target = Path.join(to, name)
                if Sys.isDirectory(source) {
                    try Sys.mkdirs(target)
                    try copyTree(source, target, top: false)
                } else if Sys.isRegularFile(source) {
                    try Sys.writeFile(target, Sys.readFile(source, limit: 1 << 34))
                }
            }
        }
        try copyTree(path, partial, top: true)
        try finish(partial)
        try? Sys.removeTree(directory)
        try Sys.rename(partial, directory)
    }
}

/// What differs between the families that run `BertEncoder` (`Bert`, `Roberta`): the
/// prefix a task model nests the encoder under, the classification head's tensor names
/// (applied to the first token's state: dense, tanh, out), and where positions start.
public struct EncoderVariant: Sendable {
    public let family: String
    public let prefix: String
    public let headDense: String
    public let headOut: String
    public let positionsAfterPadding: Bool

    /// Checkpoint names → Quern's (the encoder's names without the task model's prefix).
    public func keyMap(_ name: String) -> String {
        name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
    }
}
