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
        /// RoBERTa's positions: numbered from this padding id + 1, a padding token itself
        /// taking the padding id's row (nil: BERT's, from 0).
        public var positionPadding: Int32?
        /// Positions a sequence may take (RoBERTa's first `padding id + 1` rows are not).
        public var usablePositions: Int { maxPositions - (positionPadding.map { Int($0) + 1 } ?? 0) }
        /// An int8 model (published by a `quantize` job): config.json's `quantization`
        /// block; its weight matrices are stored as I8 (see `BertEncoder.MatrixInput`).
        public var quantization: JSONValue?

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
            quantization = json["quantization"]
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

    /// A layer's weight matrices grouped by the activations they read: each group's input
    /// is quantized once (query, key and value share theirs). In an int8 model each
    /// matrix `P.weight` is I8 with `P.weight_scale` (one per output channel); a
    /// statically quantized input adds, under `layer prefix + rawValue`, `input_scale` and
    /// `input_zero_point` (one each) and, when smoothed, `input_smoothing` (one divisor
    /// per input channel, already multiplied into the matrices' columns).
    public enum MatrixInput: String, CaseIterable, Sendable {
        case attention = "attention.self"
        case attentionOutput = "attention.output.dense"
        case intermediate = "intermediate.dense"
        case output = "output.dense"

        /// The matrices (tensor name prefixes within a layer) that read this input.
        public var matrices: [String] {
            self == .attention ? ["attention.self.query", "attention.self.key", "attention.self.value"] : [rawValue]
        }

        /// Channels of the input.
        public func width(_ c: Config) -> Int { self == .output ? c.intermediate : c.hidden }

        public static func prefix(layer: Int) -> String { "encoder.layer.\(layer)." }
    }

    /// Sees a weight matrix group's input during a forward pass (calibration): layer,
    /// group, `[rows, width]` values.
    public typealias Observer = (Int, MatrixInput, UnsafePointer<Float>, Int) -> Void

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
    /// The word embeddings `[vocab, hidden]`: fp32, or in an int8 model int8 rows with
    /// one symmetric scale each (the table is most of a small encoder's bytes).
    let words: Tensor
    let wordsInt8: (values: [Int8], scales: [Float])?
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
        // A quantized model runs int8 whatever was asked: its fp32 weights are gone.
        self.precision = config.quantization != nil ? .int8 : precision
        let h = config.hidden, inner = config.intermediate
        func t(_ name: String, _ shape: [Int]) throws -> Tensor { try weights.float32(name, shape: shape) }
        func norm(_ name: String) throws -> ([Float], [Float]) {
            (try t(name + ".weight", [h]).data, try t(name + ".bias", [h]).data)
        }
        /// A group's matrices stacked into one operator (query, key and value: one GEMM).
        func matrix(_ layer: Int, _ input: MatrixInput, rows: Int) throws -> LinearOperator {
            let p = MatrixInput.prefix(layer: layer), k = input.width(config)
            guard config.quantization != nil else {
                let data = try input.matrices.flatMap { try t(p + $0 + ".weight", [rows, k]).data }
                return LinearOperator.choose(
                    Tensor(shape: [rows * input.matrices.count, k], data: data), precision: precision)
            }
            var values: [Int8] = [], scales: [Float] = []
            for m in input.matrices {
                values += try weights.int8(p + m + ".weight", shape: [rows, k])
                scales += try t(p + m + ".weight_scale", [rows]).data
            }
            guard scales.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw QuernError(.modelInvalid, "\(p + input.rawValue): a weight_scale is negative or not finite")
            }
            let q = QuantizedWeights(values: values, scales: scales, n: scales.count, k: k)
            let g = p + input.rawValue
            guard weights.has(g + ".input_scale") else { return LinearOperator.choose(q) }
            let scale = try t(g + ".input_scale", [1]).data[0], zero = try t(g + ".input_zero_point", [1]).data[0]
            guard scale > 0, scale.isFinite, zero >= 0, zero <= 255, zero == zero.rounded() else {
                throw QuernError(
                    .modelInvalid, "\(g): input_scale \(scale) / input_zero_point \(zero) are not a u8 range")
            }
            var smoothing: [Float]?
            if weights.has(g + ".input_smoothing") {
                smoothing = try t(g + ".input_smoothing", [k]).data
                guard smoothing!.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                    throw QuernError(.modelInvalid, "\(g): input_smoothing holds a divisor that is not positive")
                }
            }
            return .int8Static(q, QGEMM.InputRange(scale: scale, zeroPoint: Int32(zero), smoothing: smoothing))
        }
        let wordsName = "embeddings.word_embeddings.weight"
        if config.quantization != nil && weights.dtype(wordsName) == "I8" {
            let scales = try t("embeddings.word_embeddings.weight_scale", [config.vocabSize]).data
            guard scales.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw QuernError(.modelInvalid, "embeddings.word_embeddings: a weight_scale is negative or not finite")
            }
            wordsInt8 = (try weights.int8(wordsName, shape: [config.vocabSize, h]), scales)
            words = Tensor(shape: [0, h], data: [])
        } else {
            words = try t(wordsName, [config.vocabSize, h])
            wordsInt8 = nil
        }
        positions = try t("embeddings.position_embeddings.weight", [config.maxPositions, h])
        types = try t("embeddings.token_type_embeddings.weight", [config.typeVocabSize, h])
        embeddingNorm = try norm("embeddings.LayerNorm")
        layers = try (0..<config.layers).map { i in
            let p = MatrixInput.prefix(layer: i)
            let qkvBias = try ["query", "key", "value"].flatMap { try t(p + "attention.self.\($0).bias", [h]).data }
            return Layer(
                qkv: try matrix(i, .attention, rows: h),
                qkvBias: qkvBias,
                output: try matrix(i, .attentionOutput, rows: h),
                outputBias: try t(p + "attention.output.dense.bias", [h]).data,
                norm1: try norm(p + "attention.output.LayerNorm"),
                up: try matrix(i, .intermediate, rows: inner),
                upBias: try t(p + "intermediate.dense.bias", [inner]).data,
                down: try matrix(i, .output, rows: h),
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
    public func hiddenStates(
        _ batch: [TokenSequence], workspace ws: Workspace, pool: ThreadPool = .shared, observe: Observer? = nil
    ) -> [Int] {
        var offsets = [0]
        for e in batch { offsets.append(offsets.last! + e.ids.count) }
        let rows = offsets.last!, h = config.hidden
        guard rows > 0 else { return offsets }
        ws.reserve(rows: rows, hidden: h, intermediate: config.intermediate)
        // Embeddings: word + position + type, then layer norm.
        let padding = config.positionPadding
        positions.data.withUnsafeBufferPointer { p in
            types.data.withUnsafeBufferPointer { t in
                for (i, e) in batch.enumerated() {
                    var realTokens = 0
                    for (s, id) in e.ids.enumerated() {
                        let row = ws.x + (offsets[i] + s) * h
                        // transformers' create_position_ids_from_input_ids for RoBERTa.
                        var position = s
                        if let padding {
                            if id != padding { realTokens += 1 }
                            position = Int(padding) + (id == padding ? 0 : realTokens)
                        }
                        let pr = p.baseAddress! + position * h
                        // A pair's second type on a one-type model (transformers cannot run
                        // those): the last type row, never a row outside the table.
                        let type = e.typeIDs.isEmpty ? 0 : min(Int(e.typeIDs[s]), config.typeVocabSize - 1)
                        let tr = t.baseAddress! + type * h
                        if let (values, scales) = wordsInt8 {
                            let scale = scales[Int(id)]
                            values.withUnsafeBufferPointer { q in
                                let wr = q.baseAddress! + Int(id) * h
                                for d in 0..<h { row[d] = Float(wr[d]) * scale + pr[d] + tr[d] }
                            }
                        } else {
                            words.data.withUnsafeBufferPointer { w in
                                let wr = w.baseAddress! + Int(id) * h
                                for d in 0..<h { row[d] = wr[d] + pr[d] + tr[d] }
                            }
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
        for (i, layer) in layers.enumerated() {
            observe?(i, .attention, ws.x, rows)
            linear(layer.qkv, ws.x, layer.qkvBias, .none, ws.qkv)
            Attention.sequences(
                qkv: ws.qkv, offsets: offsets, heads: config.heads, headDim: h / config.heads, into: ws.context,
                bf16: precision == .int8, pool: pool)
            observe?(i, .attentionOutput, ws.context, rows)
            linear(layer.output, ws.context, layer.outputBias, .none, ws.projected)
            residualNorm(layer.norm1)
            observe?(i, .intermediate, ws.x, rows)
            linear(layer.up, ws.x, layer.upBias, .gelu, ws.inner)
            observe?(i, .output, ws.inner, rows)
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
