import Foundation
import QuernCore
import QuernKernels

/// The encoder of the `bert` family (see `Bert`), run on the kernel set: token + position + type embeddings
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
            // Bounds far above any BERT-family encoder, so that sizes read from the file
            // are checked before the tensors they imply are looked for or allocated.
            func int(_ key: String, max: Int, default d: Int? = nil) throws -> Int {
                guard let v = json[key]?.intValue ?? d.map(Int64.init), v > 0, v <= max else {
                    throw QuernError(
                        .modelInvalid, "\(source): \(key) must be a positive integer of at most \(max)", field: "model")
                }
                return Int(v)
            }
            vocabSize = try int("vocab_size", max: 1 << 22)
            hidden = try int("hidden_size", max: 1 << 14)
            layers = try int("num_hidden_layers", max: 1 << 8)
            heads = try int("num_attention_heads", max: 1 << 10)
            intermediate = try int("intermediate_size", max: 1 << 16)
            maxPositions = try int("max_position_embeddings", max: 1 << 17)
            typeVocabSize = try int("type_vocab_size", max: 1 << 10, default: 2)
            layerNormEps = Float(json["layer_norm_eps"]?.doubleValue ?? 1e-12)
            guard hidden % heads == 0 else {
                throw QuernError(
                    .modelInvalid, "\(source): hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)",
                    field: "model")
            }
            if let act = json["hidden_act"]?.stringValue, act != "gelu" {
                throw QuernError(
                    .modelInvalid, "\(source): hidden_act \(act) is not supported (gelu, the exact erf form, only)",
                    field: "model")
            }
            if let p = json["position_embedding_type"]?.stringValue, p != "absolute" {
                throw QuernError(
                    .modelInvalid, "\(source): position_embedding_type \(p) is not supported (absolute only)",
                    field: "model")
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

    /// Takes the encoder's tensors (by Quern's names: `Bert.keyMap`) at a precision.
    public init(
        config: Config, weights: inout StrictWeights, precision: LinearOperator.Precision = .fp32,
        pooling: Pooling = .mean, normalize: Bool = false
    ) throws {
        self.config = config
        self.pooling = pooling
        self.normalize = normalize
        self.precision = precision
        let h = config.hidden, inner = config.intermediate
        func t(_ name: String, _ shape: [Int]) throws -> Tensor { try weights.float32(name, shape: shape) }
        func norm(_ name: String) throws -> ([Float], [Float]) {
            (try t(name + ".weight", [h]).data, try t(name + ".bias", [h]).data)
        }
        words = try t("embeddings.word_embeddings.weight", [config.vocabSize, h])
        positions = try t("embeddings.position_embeddings.weight", [config.maxPositions, h])
        types = try t("embeddings.token_type_embeddings.weight", [config.typeVocabSize, h])
        embeddingNorm = try norm("embeddings.LayerNorm")
        layers = try (0..<config.layers).map { i in
            let p = "encoder.layer.\(i)."
            let q = try t(p + "attention.self.query.weight", [h, h]), k = try t(p + "attention.self.key.weight", [h, h])
            let v = try t(p + "attention.self.value.weight", [h, h])
            let qkvBias = try ["query", "key", "value"].flatMap { try t(p + "attention.self.\($0).bias", [h]).data }
            return Layer(
                qkv: LinearOperator.choose(
                    Tensor(shape: [3 * h, h], data: q.data + k.data + v.data), precision: precision),
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
    public func hiddenStates(_ batch: [TokenSequence], workspace ws: Workspace, pool: ThreadPool = .shared) -> [Int] {
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
                Norms.layerNorm(
                    ws.x, rows: rows, n: h, gamma: g.baseAddress, beta: b.baseAddress, eps: eps, into: ws.x, pool: pool)
            }
        }
        func residualNorm(_ n: ([Float], [Float])) {
            n.0.withUnsafeBufferPointer { g in
                n.1.withUnsafeBufferPointer { b in
                    Norms.residualLayerNorm(
                        ws.x, adding: ws.projected, rows: rows, n: h, gamma: g.baseAddress, beta: b.baseAddress,
                        eps: eps, pool: pool)
                }
            }
        }
        func linear(
            _ op: LinearOperator, _ x: UnsafeMutablePointer<Float>, _ bias: [Float], _ act: Activation,
            _ y: UnsafeMutablePointer<Float>
        ) {
            bias.withUnsafeBufferPointer {
                op.apply(x, m: rows, bias: $0.baseAddress, activation: act, into: y, pool: pool)
            }
        }
        for layer in layers {
            linear(layer.qkv, ws.x, layer.qkvBias, .none, ws.qkv)
            Attention.sequences(
                qkv: ws.qkv, offsets: offsets, heads: config.heads, headDim: h / config.heads, into: ws.context,
                bf16: precision == .int8, pool: pool)
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
    func embed(_ batch: [TokenSequence], pool threads: ThreadPool = .shared) -> [[Float]] {
        let ws = Workspace()
        let offsets = hiddenStates(batch, workspace: ws, pool: threads)
        let flat = pool(ws.x, offsets: offsets, mode: pooling, normalize: normalize)
        let h = config.hidden
        return batch.indices.map { Array(flat[($0 * h)..<(($0 + 1) * h)]) }
    }
}
