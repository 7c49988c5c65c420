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

    /// Loads the encoder's tensors (with or without a `bert.` prefix) at a precision.
    public init(config: Config, weights: SafetensorsFile, precision: LinearOperator.Precision = .fp32,
                pooling: Pooling = .mean, normalize: Bool = false) throws {
        self.config = config
        self.pooling = pooling
        self.normalize = normalize
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

    /// Token states `[batch · seq, hidden]` for sequences padded to the longest (`seq`),
    /// with the mask of real tokens.
    public func hiddenStates(_ batch: [WordPieceTokenizer.Encoding], pool: ThreadPool = .shared) -> (states: [Float], seq: Int, keep: [UInt8]) {
        let b = batch.count, seq = batch.map(\.ids.count).max() ?? 0, h = config.hidden
        let rows = b * seq
        var x = [Float](repeating: 0, count: rows * h)
        var keep = [UInt8](repeating: 0, count: rows)
        // Embeddings: word + position + type, then layer norm (padding rows stay zero).
        for (i, e) in batch.enumerated() {
            for (s, id) in e.ids.enumerated() {
                let row = (i * seq + s) * h
                keep[i * seq + s] = 1
                let w = Int(id) * h, p = s * h, t = Int(e.typeIDs.isEmpty ? 0 : e.typeIDs[s]) * h
                for d in 0..<h { x[row + d] = words.data[w + d] + positions.data[p + d] + types.data[t + d] }
            }
        }
        let eps = config.layerNormEps
        func layerNorm(_ v: inout [Float], _ n: ([Float], [Float])) {
            v.withUnsafeMutableBufferPointer { p in
                Norms.layerNorm(p.baseAddress!, rows: rows, n: h, gamma: n.0, beta: n.1, eps: eps, into: p.baseAddress!)
            }
        }
        layerNorm(&x, embeddingNorm)
        var qkv = [Float](repeating: 0, count: rows * 3 * h)
        var context = [Float](repeating: 0, count: rows * h)
        var projected = [Float](repeating: 0, count: rows * h)
        var inner = [Float](repeating: 0, count: rows * config.intermediate)
        for layer in layers {
            layer.qkv.apply(x, m: rows, bias: layer.qkvBias, activation: .none, into: &qkv, pool: pool)
            qkv.withUnsafeBufferPointer { q in
                keep.withUnsafeBufferPointer { k in
                    context.withUnsafeMutableBufferPointer { c in
                        Attention.forward(qkv: q.baseAddress!, batch: b, seq: seq, heads: config.heads,
                                          headDim: h / config.heads, keep: k.baseAddress!, into: c.baseAddress!, pool: pool)
                    }
                }
            }
            layer.output.apply(context, m: rows, bias: layer.outputBias, activation: .none, into: &projected, pool: pool)
            for i in 0..<(rows * h) { x[i] += projected[i] }
            layerNorm(&x, layer.norm1)
            layer.up.apply(x, m: rows, bias: layer.upBias, activation: .gelu, into: &inner, pool: pool)
            layer.down.apply(inner, m: rows, bias: layer.downBias, activation: .none, into: &projected, pool: pool)
            for i in 0..<(rows * h) { x[i] += projected[i] }
            layerNorm(&x, layer.norm2)
        }
        return (x, seq, keep)
    }

    /// Pooled vectors `[batch, hidden]` from `hiddenStates`, L2-normalised when `normalize`.
    public func pool(_ states: [Float], seq: Int, keep: [UInt8], count b: Int, mode: Pooling, normalize: Bool) -> [Float] {
        let h = config.hidden
        var out = [Float](repeating: 0, count: b * h)
        for i in 0..<b {
            let v = i * h
            switch mode {
            case .cls:
                for d in 0..<h { out[v + d] = states[i * seq * h + d] }
            case .mean:
                // Accumulate in Double: a long sequence's sum must not lose the small tokens.
                var sum = [Double](repeating: 0, count: h)
                var count = 0
                for s in 0..<seq where keep[i * seq + s] != 0 {
                    count += 1
                    let row = (i * seq + s) * h
                    for d in 0..<h { sum[d] += Double(states[row + d]) }
                }
                for d in 0..<h { out[v + d] = Float(sum[d] / Double(max(count, 1))) }
            case .max:
                for d in 0..<h { out[v + d] = -.infinity }
                for s in 0..<seq where keep[i * seq + s] != 0 {
                    let row = (i * seq + s) * h
                    for d in 0..<h { out[v + d] = max(out[v + d], states[row + d]) }
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
        let (x, seq, keep) = hiddenStates(batch, pool: threads)
        let flat = pool(x, seq: seq, keep: keep, count: batch.count, mode: pooling, normalize: normalize)
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

    /// Runs one padded batch (every sequence padded to the batch's longest).
    public func forward(_ batch: [WordPieceTokenizer.Encoding], pool: ThreadPool = .shared) -> Output {
        let (x, seq, keep) = encoder.hiddenStates(batch, pool: pool)
        let b = batch.count, h = dimension
        let embeddings = encoder.pool(x, seq: seq, keep: keep, count: b, mode: encoder.pooling, normalize: encoder.normalize)
        var scores: [Float] = []
        switch head {
        case .sequenceClassification(let pooler, let poolerBias, let classifier, let bias)?:
            let cls = encoder.pool(x, seq: seq, keep: keep, count: b, mode: .cls, normalize: false)
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

    /// Runs many sequences: sorted by length and cut into batches of at most `batchSize`,
    /// so each batch pads little. With enough batches to share, whole batches go to the
    /// pool's threads (each running its kernels alone: no per-layer hand-offs); otherwise
    /// the kernels split each batch across the threads.
    public func run(_ encodings: [WordPieceTokenizer.Encoding], batchSize: Int, pool: ThreadPool = .shared) -> Output {
        let n = encodings.count, h = dimension, c = outputs
        let order = encodings.indices.sorted { encodings[$0].ids.count < encodings[$1].ids.count }
        let starts = Array(stride(from: 0, to: n, by: max(batchSize, 1)))
        var out = Output(embeddings: [Float](repeating: 0, count: n * h), scores: [Float](repeating: 0, count: n * c))
        let lock = NSLock()
        func runBatch(_ k: Int, _ threads: ThreadPool) {
            let members = Array(order[starts[k]..<min(starts[k] + batchSize, n)])
            let o = forward(members.map { encodings[$0] }, pool: threads)
            lock.lock(); defer { lock.unlock() }
            for (j, i) in members.enumerated() {
                out.embeddings.replaceSubrange((i * h)..<((i + 1) * h), with: o.embeddings[(j * h)..<((j + 1) * h)])
                if c > 0 { out.scores.replaceSubrange((i * c)..<((i + 1) * c), with: o.scores[(j * c)..<((j + 1) * c)]) }
            }
        }
        if pool.threads > 1 && starts.count >= 2 * pool.threads {
            pool.parallelFor(starts.count) { runBatch($0, .single) }
        } else {
            for k in starts.indices { runBatch(k, pool) }
        }
        return out
    }
}
