import Foundation
import QuernCore
import QuernKernels

/// The `bert` family: BERT-style encoders (all-MiniLM-L6-v2, BERT, bge-small, e5-small)
/// from a Hugging Face directory (config.json, model.safetensors, tokenizer.json,
/// 1_Pooling/config.json), run on the kernel set: token + position + type embeddings
/// and layer norm, then per layer fused QKV projection, masked multi-head attention,
/// output projection + residual + layer norm, GELU feed-forward + residual + layer norm;
/// pooled (mean, CLS or max over real tokens) and optionally L2-normalised.
public final class BertEncoder: @unchecked Sendable {
    public struct Config: Sendable, Equatable {
        public var vocabSize = 30522
        public var hidden = 384
        public var layers = 6
        public var heads = 12
        public var intermediate = 1536
        public var maxPositions = 512
        public var typeVocabSize = 2
        public var layerNormEps: Float = 1e-12

        /// From config.json; only absolute positions and exact GELU are accepted.
        public init(json: JSONObject, source: String = "config.json") throws {
            func int(_ key: String) throws -> Int {
                guard let v = json[key]?.intValue, v > 0 else {
                    throw QuernError(.modelInvalid, "\(source): \(key) must be a positive integer", field: "model")
                }
                return Int(v)
            }
            vocabSize = try int("vocab_size")
            hidden = try int("hidden_size")
            layers = try int("num_hidden_layers")
            heads = try int("num_attention_heads")
            intermediate = try int("intermediate_size")
            maxPositions = try int("max_position_embeddings")
            typeVocabSize = Int(json["type_vocab_size"]?.intValue ?? 2)
            layerNormEps = Float(json["layer_norm_eps"]?.doubleValue ?? 1e-12)
            guard hidden % heads == 0 else {
                throw QuernError(.modelInvalid, "\(source): hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)", field: "model")
            }
            if let act = json["hidden_act"]?.stringValue, act != "gelu" {
                throw QuernError(.modelInvalid, "\(source): hidden_act \(act) is not supported (gelu, the exact erf form, only)", field: "model")
            }
            if let p = json["position_embedding_type"]?.stringValue, p != "absolute" {
                throw QuernError(.modelInvalid, "\(source): position_embedding_type \(p) is not supported (absolute only)", field: "model")
            }
        }
    }

    public enum Pooling: String, Sendable { case mean, cls, max }

    struct Layer {
        let qkv: LinearOperator
        let qkvBias: [Float]
        let output: LinearOperator
        let outputBias: [Float]
        let norm1: ([Float], [Float])
        let up: LinearOperator
        let upBias: [Float]
        let down: LinearOperator
        let downBias: [Float]
        let norm2: ([Float], [Float])
    }

    public let config: Config
    public var pooling: Pooling
    public var normalize: Bool
    let words: Tensor
    let positions: Tensor
    let types: Tensor
    let embeddingNorm: ([Float], [Float])
    let layers: [Layer]
    public let precision: LinearOperator.Precision

    /// Loads the encoder's tensors (with or without a `bert.` prefix) at a precision.
    public init(config: Config, weights: SafetensorsFile, precision: LinearOperator.Precision = .fp32,
                pooling: Pooling = .mean, normalize: Bool = false) throws {
        self.config = config
        self.pooling = pooling
        self.normalize = normalize
        self.precision = precision
        let prefix = weights.entries["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        let h = config.hidden, inner = config.intermediate
        func t(_ name: String, _ shape: [Int]) throws -> Tensor { try weights.float32(prefix + name, shape: shape) }
        func norm(_ name: String) throws -> ([Float], [Float]) { (try t(name + ".weight", [h]).data, try t(name + ".bias", [h]).data) }
        words = try t("embeddings.word_embeddings.weight", [config.vocabSize, h])
        positions = try t("embeddings.position_embeddings.weight", [config.maxPositions, h])
        types = try t("embeddings.token_type_embeddings.weight", [config.typeVocabSize, h])
        embeddingNorm = try norm("embeddings.LayerNorm")
        layers = try (0..<config.layers).map { i in
            let p = "encoder.layer.\(i)."
            let q = try t(p + "attention.self.query.weight", [h, h]), k = try t(p + "attention.self.key.weight", [h, h])
            let v = try t(p + "attention.self.value.weight", [h, h])
            let qkvBias = try ["query", "key", "value"].flatMap { try t(p + "attention.self.\($0).bias", [h]).data }
            return Layer(qkv: LinearOperator.choose(Tensor(shape: [3 * h, h], data: q.data + k.data + v.data), precision: precision),
                         qkvBias: qkvBias,
                         output: LinearOperator.choose(try t(p + "attention.output.dense.weight", [h, h]), precision: precision),
                         outputBias: try t(p + "attention.output.dense.bias", [h]).data,
                         norm1: try norm(p + "attention.output.LayerNorm"),
                         up: LinearOperator.choose(try t(p + "intermediate.dense.weight", [inner, h]), precision: precision),
                         upBias: try t(p + "intermediate.dense.bias", [inner]).data,
                         down: LinearOperator.choose(try t(p + "output.dense.weight", [h, inner]), precision: precision),
                         downBias: try t(p + "output.dense.bias", [h]).data,
                         norm2: try norm(p + "output.LayerNorm"))
        }
    }

    /// The scratch of forward passes, kept between them: a job runs thousands of
    /// batches, and fresh arrays for each would fault in and zero new pages every time.
    public final class Workspace: @unchecked Sendable {
        var rows = 0
        var x = UnsafeMutablePointer<Float>.allocate(capacity: 0)
        var qkv = UnsafeMutablePointer<Float>.allocate(capacity: 0)
        var context = UnsafeMutablePointer<Float>.allocate(capacity: 0)
        var projected = UnsafeMutablePointer<Float>.allocate(capacity: 0)
        var inner = UnsafeMutablePointer<Float>.allocate(capacity: 0)

        public init() {}

        func reserve(rows needed: Int, hidden h: Int, intermediate: Int) {
            guard needed > rows else { return }
            free()
            rows = max(needed, rows * 5 / 4)
            x = .allocate(capacity: rows * h)
            qkv = .allocate(capacity: rows * 3 * h)
            context = .allocate(capacity: rows * h)
            projected = .allocate(capacity: rows * h)
            inner = .allocate(capacity: rows * intermediate)
        }

        private func free() {
            for p in [x, qkv, context, projected, inner] { p.deallocate() }
        }

        deinit { free() }
    }

    /// Token states of unpadded sequences packed one after another, into `workspace.x`
    /// (`[tokens, hidden]`); returns where each sequence starts (and, last, the total).
    /// No row is padding, so no FLOP is spent on it and attention needs no mask.
    public func hiddenStates(_ batch: [WordPieceTokenizer.Encoding], workspace ws: Workspace, pool: ThreadPool = .shared) -> [Int] {
        var offsets = [0]
        for e in batch { offsets.append(offsets.last! + e.ids.count) }
        let rows = offsets.last!, h = config.hidden
        guard rows > 0 else { return offsets }
        ws.reserve(rows: rows, hidden: h, intermediate: config.intermediate)
        // Embeddings: word + position + type, then layer norm.
        words.data.withUnsafeBufferPointer { w in
            positions.data.withUnsafeBufferPointer { p in
                types.data.withUnsafeBufferPointer { t in
                    for (i, e) in batch.enumerated() {
                        for (s, id) in e.ids.enumerated() {
                            let row = ws.x + (offsets[i] + s) * h
                            let wr = w.baseAddress! + Int(id) * h, pr = p.baseAddress! + s * h
                            let tr = t.baseAddress! + Int(e.typeIDs.isEmpty ? 0 : e.typeIDs[s]) * h
                            for d in 0..<h { row[d] = wr[d] + pr[d] + tr[d] }
                        }
                    }
                }
            }
        }
        let eps = config.layerNormEps
        embeddingNorm.0.withUnsafeBufferPointer { g in
            embeddingNorm.1.withUnsafeBufferPointer { b in
                Norms.layerNorm(ws.x, rows: rows, n: h, gamma: g.baseAddress, beta: b.baseAddress, eps: eps, into: ws.x)
            }
        }
        func residualNorm(_ n: ([Float], [Float])) {
            n.0.withUnsafeBufferPointer { g in
                n.1.withUnsafeBufferPointer { b in
                    Norms.residualLayerNorm(ws.x, adding: ws.projected, rows: rows, n: h, gamma: g.baseAddress, beta: b.baseAddress, eps: eps)
                }
            }
        }
        func linear(_ op: LinearOperator, _ x: UnsafeMutablePointer<Float>, _ bias: [Float], _ act: Activation, _ y: UnsafeMutablePointer<Float>) {
            bias.withUnsafeBufferPointer { op.apply(x, m: rows, bias: $0.baseAddress, activation: act, into: y, pool: pool) }
        }
        for layer in layers {
            linear(layer.qkv, ws.x, layer.qkvBias, .none, ws.qkv)
            Attention.sequences(qkv: ws.qkv, offsets: offsets, heads: config.heads, headDim: h / config.heads, into: ws.context, pool: pool)
            linear(layer.output, ws.context, layer.outputBias, .none, ws.projected)
            residualNorm(layer.norm1)
            linear(layer.up, ws.x, layer.upBias, .gelu, ws.inner)
            linear(layer.down, ws.inner, layer.downBias, .none, ws.projected)
            residualNorm(layer.norm2)
        }
        return offsets
    }

    /// Pooled vectors `[sequences, hidden]` from token states `[tokens, hidden]` laid out
    /// by `offsets`, L2-normalised when `normalize`.
    public func pool(_ states: UnsafePointer<Float>, offsets: [Int], mode: Pooling, normalize: Bool) -> [Float] {
        let h = config.hidden, b = offsets.count - 1
        var out = [Float](repeating: 0, count: b * h)
        var sum = [Double](repeating: 0, count: h)
        for i in 0..<b {
            let v = i * h, first = offsets[i], count = offsets[i + 1] - first
            guard count > 0 else { continue }
            switch mode {
            case .cls:
                for d in 0..<h { out[v + d] = states[first * h + d] }
            case .mean:
                // Accumulate in Double: a long sequence's sum must not lose the small tokens.
                for d in 0..<h { sum[d] = 0 }
                for r in first..<(first + count) {
                    let row = states + r * h
                    for d in 0..<h { sum[d] += Double(row[d]) }
                }
                for d in 0..<h { out[v + d] = Float(sum[d] / Double(count)) }
            case .max:
                for d in 0..<h { out[v + d] = states[first * h + d] }
                for r in (first + 1)..<(first + count) {
                    let row = states + r * h
                    for d in 0..<h { out[v + d] = max(out[v + d], row[d]) }
                }
            }
            if normalize {
                var norm = 0.0
                for d in 0..<h { norm += Double(out[v + d]) * Double(out[v + d]) }
                norm = norm.squareRoot()
                if norm > 0 { for d in 0..<h { out[v + d] = Float(Double(out[v + d]) / norm) } }
            }
        }
        return out
    }

    /// One pooled vector per sequence, by the encoder's `pooling` and `normalize`.
    public func embed(_ batch: [WordPieceTokenizer.Encoding], pool threads: ThreadPool = .shared) -> [[Float]] {
        let ws = Workspace()
        let offsets = hiddenStates(batch, workspace: ws, pool: threads)
        let flat = pool(ws.x, offsets: offsets, mode: pooling, normalize: normalize)
        let h = config.hidden
        return batch.indices.map { Array(flat[($0 * h)..<(($0 + 1) * h)]) }
    }
}

/// A `bert` model directory ready to run: the tokenizer, the encoder, the
/// sentence-transformers settings around it (pooling from `1_Pooling/config.json`,
/// L2 normalisation when `modules.json` lists a Normalize module, `max_seq_length` from
/// `sentence_bert_config.json`) and a classification head when there is one.
public final class BertModel: @unchecked Sendable {
    /// What turns an encoded sequence into class scores.
    public enum Head: Sendable {
        /// Hugging Face `BertForSequenceClassification`: `classifier(tanh(pooler · h_CLS))`.
        case sequenceClassification(pooler: LinearOperator, poolerBias: [Float], classifier: LinearOperator, bias: [Float])
        /// Quern's head over the pooled sentence embedding: an `mlp` in `head/`, which a
        /// `finetune` job trains on the frozen encoder.
        case pooled(StackModel)
    }

    public let path: String
    public let encoder: BertEncoder
    public let tokenizer: WordPieceTokenizer
    /// Tokens per sequence, specials included.
    public let maxLength: Int
    public let head: Head?
    /// Class names by head output; empty without a head (or for a regression head).
    public let labels: [String]
    public let weightsSHA256: String
    public let weightsBytes: Int
    public var family: String { "bert" }
    public var dimension: Int { encoder.config.hidden }
    public var outputs: Int {
        switch head {
        case .sequenceClassification(_, _, let c, _)?: return c.outFeatures
        case .pooled(let m)?: return m.outputSize
        case nil: return 0
        }
    }

    /// The directory holding Quern's pooled-embedding head.
    public static let headDirectory = "head"

    public static func load(_ path: String, precision: LinearOperator.Precision = .fp32, maxLength: Int? = nil) throws -> BertModel {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(path): \(what)", field: "model") }
        func json(_ name: String) throws -> JSONObject? {
            let file = Path.join(path, name)
            guard Sys.isRegularFile(file) else { return nil }
            do {
                guard let o = try JSONParser.parse(Sys.readFile(file)).objectValue else { throw fail("\(name) is not a JSON object") }
                return o
            } catch let e as QuernError { throw e } catch {
                throw fail("\(name) is not valid JSON: \(error)")
            }
        }
        guard let configJSON = try json("config.json") else { throw fail("no config.json") }
        let config = try BertEncoder.Config(json: configJSON, source: Path.join(path, "config.json"))
        let weightsPath = Path.join(path, "model.safetensors")
        guard Sys.isRegularFile(weightsPath) else { throw fail("no model.safetensors; a model is config.json + model.safetensors") }
        let weights = try SafetensorsFile(path: weightsPath)

        // sentence-transformers modules: Transformer at the root, then Pooling, Normalize.
        var poolingPath = "1_Pooling", normalize = false
        let modulesPath = Path.join(path, "modules.json")
        if Sys.isRegularFile(modulesPath) {
            guard let list = try? JSONParser.parse(Sys.readFile(modulesPath)).arrayValue else {
                throw fail("modules.json is not a JSON list of modules")
            }
            for m in list {
                let type = m.objectValue?["type"]?.stringValue ?? "?", where_ = m.objectValue?["path"]?.stringValue ?? ""
                switch type.split(separator: ".").last.map(String.init) ?? type {
                case "Transformer":
                    guard where_.isEmpty else { throw fail("modules.json puts the Transformer in \(where_)/; only a Transformer at the directory root is supported") }
                case "Pooling": poolingPath = where_
                case "Normalize": normalize = true
                default: throw fail("modules.json lists a \(type) module; only Transformer, Pooling and Normalize are supported")
                }
            }
        }
        // Without 1_Pooling, mean pooling: what sentence-transformers gives a plain checkpoint.
        var pooling = BertEncoder.Pooling.mean
        if let p = try json(Path.join(poolingPath, "config.json")) {
            let modes = p.keys.filter { $0.hasPrefix("pooling_mode_") && p[$0]?.boolValue == true }.sorted()
            let known: [String: BertEncoder.Pooling] = ["pooling_mode_mean_tokens": .mean, "pooling_mode_cls_token": .cls,
                                                         "pooling_mode_max_tokens": .max]
            guard modes.count == 1, let mode = known[modes[0]] else {
                throw fail("\(poolingPath)/config.json asks for \(modes.isEmpty ? "no pooling mode" : modes.joined(separator: " + ")); one of mean, cls or max tokens is supported")
            }
            pooling = mode
        }
        let encoder = try BertEncoder(config: config, weights: weights, precision: precision, pooling: pooling, normalize: normalize)
        let tokenizer = try WordPieceTokenizer.load(directory: path)
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw fail("the tokenizer has \(tokenizer.vocabularySize) tokens but the model's vocab_size is \(config.vocabSize)")
        }

        // Sequence length: the manifest's, else sentence-transformers', else the tokenizer's, within the positions.
        let configured = try json("sentence_bert_config.json")?["max_seq_length"]?.intValue.map(Int.init)
        let length = min(maxLength ?? configured ?? tokenizer.defaultMaxLength ?? config.maxPositions, config.maxPositions)
        guard length >= 2 else { throw fail("max length \(length) leaves no room for text between [CLS] and [SEP]") }

        // Heads: Quern's pooled head in head/, or Hugging Face's sequence classifier.
        var head: Head?, labels: [String] = []
        let headPath = Path.join(path, headDirectory)
        if Sys.isDirectory(headPath) {
            let m = try ModelDirectory.load(headPath, precision: precision).model
            guard m.inputSize == config.hidden else {
                throw fail("\(headDirectory)/ takes \(m.inputSize) features but the encoder's embeddings have \(config.hidden)")
            }
            head = .pooled(m)
            labels = m.labels
        } else if let classifier = weights.entries["classifier.weight"] {
            let n = classifier.shape.first ?? 0, h = config.hidden
            func t(_ name: String, _ shape: [Int]) throws -> Tensor { try weights.float32(name, shape: shape) }
            head = .sequenceClassification(pooler: LinearOperator.choose(try t("bert.pooler.dense.weight", [h, h]), precision: precision),
                                           poolerBias: try t("bert.pooler.dense.bias", [h]).data,
                                           classifier: .fp32(PackedWeights(try t("classifier.weight", [n, h]))),
                                           bias: try t("classifier.bias", [n]).data)
            if configJSON["problem_type"]?.stringValue != "regression" {
                let names = configJSON["id2label"]?.objectValue ?? JSONObject()
                labels = (0..<n).map { names[String($0)]?.stringValue ?? "LABEL_\($0)" }
            }
        }
        let digest = try SHA256Stream.file(weightsPath)
        return BertModel(path: path, encoder: encoder, tokenizer: tokenizer, maxLength: length, head: head, labels: labels,
                         weightsSHA256: digest.sha256, weightsBytes: digest.bytes)
    }

    init(path: String, encoder: BertEncoder, tokenizer: WordPieceTokenizer, maxLength: Int, head: Head?, labels: [String],
         weightsSHA256: String, weightsBytes: Int) {
        self.path = path
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.maxLength = maxLength
        self.head = head
        self.labels = labels
        self.weightsSHA256 = weightsSHA256
        self.weightsBytes = weightsBytes
    }

    /// Pooled embeddings `[n, dimension]` and, with a head, its outputs `[n, outputs]`
    /// (logits for classifiers), in the order of `encodings`.
    public struct Output: Sendable {
        public var embeddings: [Float]
        public var scores: [Float]
    }

    /// Runs one batch of sequences (unpadded, see `BertEncoder.hiddenStates`).
    public func forward(_ batch: [WordPieceTokenizer.Encoding], workspace ws: BertEncoder.Workspace = .init(),
                        pool: ThreadPool = .shared) -> Output {
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
        return Output(embeddings: embeddings, scores: scores)
    }

    /// Tokens per forward pass, at most. A pass's activations are about 15 KB a token
    /// for MiniLM. int8 runs 256 (4 MB, which stays in the last-level cache between
    /// layers): on one thread it was 8 % faster than with 768-token passes (a batch of 64
    /// short texts), in alternating runs on the same texts. fp32 was 4 % slower with
    /// them, its GEMM being compute-bound and keener on long row blocks, so it keeps 4,096.
    public var tokensPerPass: Int { encoder.precision == .int8 ? 256 : 4096 }

    private let spareLock = NSLock()
    private var spare: [BertEncoder.Workspace] = []

    /// Runs many sequences in passes of at most `batchSize` sequences and
    /// `tokensPerPass` tokens. With enough passes to share, whole passes go to the pool's
    /// threads (each running its kernels alone: no per-layer hand-offs); otherwise the
    /// kernels split each pass across the threads. Workspaces are reused across calls.
    public func run(_ encodings: [WordPieceTokenizer.Encoding], batchSize: Int, pool: ThreadPool = .shared) -> Output {
        let n = encodings.count, h = dimension, c = outputs
        var passes: [Range<Int>] = []
        var start = 0, tokens = 0
        let cap = tokensPerPass
        for (i, e) in encodings.enumerated() {
            if i > start && (i - start >= batchSize || tokens + e.ids.count > cap) {
                passes.append(start..<i)
                (start, tokens) = (i, 0)
            }
            tokens += e.ids.count
        }
        if n > start { passes.append(start..<n) }
        var out = Output(embeddings: [Float](repeating: 0, count: n * h), scores: [Float](repeating: 0, count: n * c))
        let lock = NSLock()
        func runPass(_ k: Int, _ threads: ThreadPool) {
            let ws: BertEncoder.Workspace = spareLock.withLock { spare.popLast() } ?? BertEncoder.Workspace()
            let r = passes[k]
            let o = forward(Array(encodings[r]), workspace: ws, pool: threads)
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
}
