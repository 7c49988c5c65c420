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

    /// One pooled vector per sequence.
    public func embed(_ batch: [WordPieceTokenizer.Encoding], pool: ThreadPool = .shared) -> [[Float]] {
        let (x, seq, keep) = hiddenStates(batch, pool: pool)
        let h = config.hidden
        return batch.indices.map { i in
            var v = [Float](repeating: pooling == .max ? -.infinity : 0, count: h)
            let count = (0..<seq).filter { keep[i * seq + $0] != 0 }.count
            switch pooling {
            case .cls:
                for d in 0..<h { v[d] = x[i * seq * h + d] }
            case .mean:
                // Accumulate in Double: a long sequence's sum must not lose the small tokens.
                var sum = [Double](repeating: 0, count: h)
                for s in 0..<seq where keep[i * seq + s] != 0 {
                    for d in 0..<h { sum[d] += Double(x[(i * seq + s) * h + d]) }
                }
                for d in 0..<h { v[d] = Float(sum[d] / Double(max(count, 1))) }
            case .max:
                for s in 0..<seq where keep[i * seq + s] != 0 {
                    for d in 0..<h { v[d] = max(v[d], x[(i * seq + s) * h + d]) }
                }
            }
            if normalize {
                let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                if norm > 0 { v = v.map { Float(Double($0) / norm) } }
            }
            return v
        }
    }
}
