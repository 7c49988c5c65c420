import Foundation
import QuernCore
import QuernKernels

/// The `llama` family: Hugging Face's `LlamaForCausalLM` and the configs that share its
/// block (`qwen2`: q/k/v biases; `mistral`: sliding-window attention): RMS norm, rotary
/// positions (`rope_theta`, with default, linear, llama3 or yarn scaling), grouped-query
/// attention and a SwiGLU MLP, output embeddings tied or not. SmolLM/SmolLM2,
/// TinyLlama, Llama 2/3, Qwen2/2.5 and Mistral checkpoints load here.
public enum Llama: GGUFModelFamily {
    public static let modelType = "llama"
    public static let aliases = ["qwen2", "mistral"]
    public static var provides: [Any.Type] { [(any CausalLM).self] }

    /// Checkpoint names → Quern's: the stack's tensors sit under `model.`.
    public static func keyMap(_ name: String) -> String {
        name.hasPrefix("model.") ? String(name.dropFirst(6)) : name
    }

    /// What config.json says, bounded.
    public struct Config: Sendable, Equatable {
        public var shape: Decoder.Shape
        public var theta: Double
        public var scaling: RotaryEmbedding.Scaling
        public var tied: Bool
        /// q/k/v projections have biases (Qwen2; `attention_bias` in Llama's config, which
        /// also gives the output projection one).
        public var qkvBias: Bool
        public var outputBias: Bool
        public var mlpBias: Bool

        public init(json: JSONObject, source: String = "config.json") throws {
            let c = ConfigFields(json, source: source)
            let type = try c.string("model_type", default: Llama.modelType)
            let hidden = try c.int("hidden_size", max: 1 << 15)
            let heads = try c.int("num_attention_heads", max: 1 << 10)
            let kvHeads = try c.int("num_key_value_heads", max: heads, default: heads)
            guard heads % kvHeads == 0 else {
                throw c.fail("num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
            }
            guard hidden % heads == 0 || c.json["head_dim"] != nil else {
                throw c.fail("hidden_size \(hidden) is not a multiple of num_attention_heads \(heads); give head_dim")
            }
            let headDim = try c.int("head_dim", max: 1 << 10, default: hidden / heads)
            guard headDim % 2 == 0 else { throw c.fail("head_dim \(headDim) must be even for rotary positions") }
            let act = try c.string("hidden_act", default: "silu")
            guard act == "silu" else { throw c.fail("hidden_act \(act) is not supported (silu, SwiGLU)") }
            try c.require("pretraining_tp", in: [.int(1)], what: "1 only")
            let context = try c.int("max_position_embeddings", max: 1 << 21, default: 2048)
            var window: Int?
            let sliding = try type == "qwen2" && c.bool("use_sliding_window", default: false)
            if type == "mistral" || sliding {
                window = try c.optionalInt("sliding_window", max: 1 << 21)
            }
            shape = Decoder.Shape(
                vocabulary: try c.int("vocab_size", max: 1 << 22), hidden: hidden,
                layers: try c.int("num_hidden_layers", max: 1 << 9), heads: heads, kvHeads: kvHeads, headDim: headDim,
                intermediate: try c.int("intermediate_size", max: 1 << 17), context: context, norm: .rms,
                normEps: Float(try c.positive("rms_norm_eps", default: 1e-6)), mlp: .gatedSiLU,
                window: window.flatMap { $0 < context ? $0 : nil })
            tied = try c.bool("tie_word_embeddings", default: false)
            let attentionBias = try c.bool("attention_bias", default: false)
            qkvBias = type == "qwen2" || attentionBias
            outputBias = type != "qwen2" && attentionBias
            mlpBias = try c.bool("mlp_bias", default: false)

            // Rotary settings: transformers 5 writes `rope_parameters` (theta inside);
            // older configs `rope_theta` and `rope_scaling`.
            let rope = c.json["rope_parameters"]?.objectValue ?? c.json["rope_scaling"]?.objectValue
            let r = ConfigFields(rope ?? JSONObject(), source: source + " rope parameters")
            theta = try rope?["rope_theta"] != nil ? r.positive("rope_theta") : c.positive("rope_theta", default: 10000)
            let kind = try r.string("rope_type", default: r.string("type", default: "default"))
            switch kind {
            case "default":
                scaling = .none
            case "linear":
                scaling = .linear(factor: try r.positive("factor"))
            case "llama3":
                scaling = .llama3(
                    factor: try r.positive("factor"), lowFrequencyFactor: try r.positive("low_freq_factor"),
                    highFrequencyFactor: try r.positive("high_freq_factor"),
                    originalContext: try r.positive("original_max_position_embeddings"))
            case "yarn":
                let factor = try r.positive("factor")
                func mscale(_ m: Double) -> Double { factor <= 1 ? 1 : 0.1 * m * log(factor) + 1 }
                var attention = try rope?["attention_factor"] == nil ? nil : r.positive("attention_factor")
                if attention == nil, rope?["mscale"] != nil, rope?["mscale_all_dim"] != nil {
                    attention = mscale(try r.positive("mscale")) / mscale(try r.positive("mscale_all_dim"))
                }
                scaling = .yarn(
                    factor: factor,
                    originalContext: try r.positive("original_max_position_embeddings", default: Double(context)),
                    betaFast: try r.positive("beta_fast", default: 32),
                    betaSlow: try r.positive("beta_slow", default: 1),
                    attentionFactor: attention, truncate: try r.bool("truncate", default: true))
            default:
                throw c.fail("rope type \"\(kind)\" is not supported (default, linear, llama3, yarn)")
            }
        }
    }

    public static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model {
        let config = try Config(json: files.config, source: files.configPath)
        let (file, digest) = try files.weights()
        var weights = SafetensorsDecoderWeights(weights: try StrictWeights(file, keyMap: keyMap))
        // Rotary inverse frequencies saved by old checkpoints are recomputed from the config.
        weights.ignore { $0.hasSuffix(".rotary_emb.inv_freq") }
        let decoder = try build(config, &weights, precision: options.precision, frequencyFactors: nil)
        return try DecoderModel(
            family: files.config["model_type"]?.stringValue ?? modelType, files: files, weights: digest,
            decoder: decoder, precision: options.precision, weightsSummary: weights.summary)
    }

    /// A GGUF file of the `llama` architecture: hyperparameters from its metadata (read
    /// through `Config`, so the same bounds apply), tensors as stored where Quern has a
    /// kernel for their format.
    public static func load(gguf file: GGUFFile, options: ModelOptions) throws -> any Model {
        try DecoderModel(
            gguf: file, family: modelType, decoder: try decoder(gguf: file, options: options),
            precision: options.precision)
    }

    /// The decoder of a GGUF file, without its tokenizer.
    static func decoder(gguf file: GGUFFile, options: ModelOptions) throws -> Decoder {
        let a = try file.string("general.architecture")
        func key(_ k: String) -> String { a + "." + k }
        var o = JSONObject()
        o["model_type"] = .string(modelType)
        for (hf, g) in [
            ("hidden_size", "embedding_length"), ("num_attention_heads", "attention.head_count"),
            ("num_key_value_heads", "attention.head_count_kv"), ("intermediate_size", "feed_forward_length"),
            ("num_hidden_layers", "block_count"), ("max_position_embeddings", "context_length"),
            ("head_dim", "attention.key_length")
        ] where file.metadata[key(g)] != nil {
            o[hf] = .int(Int64(try file.int(key(g))))
        }
        o["rms_norm_eps"] = .double(try file.double(key("attention.layer_norm_rms_epsilon")))
        o["rope_theta"] = .double(try file.double(key("rope.freq_base"), default: 10000))
        let vocabulary =
            try file.metadata[key("vocab_size")] != nil
            ? file.int(key("vocab_size")) : file.tensors["token_embd.weight"]?.shape.first ?? 0
        o["vocab_size"] = .int(Int64(vocabulary))
        o["tie_word_embeddings"] = .bool(file.tensors["output.weight"] == nil)
        switch try file.string(key("rope.scaling.type"), default: "none") {
        case "none": break
        case let type:
            var r = JSONObject()
            r["rope_type"] = .string(type)
            r["factor"] = .double(try file.double(key("rope.scaling.factor")))
            if file.metadata[key("rope.scaling.original_context_length")] != nil {
                r["original_max_position_embeddings"] = .int(
                    Int64(try file.int(key("rope.scaling.original_context_length"))))
            }
            o["rope_scaling"] = .object(r)
        }
        let config = try Config(json: o, source: file.path)
        let s = config.shape
        if let rotaryDims = file.metadata[key("rope.dimension_count")]?.intValue, rotaryDims != s.headDim {
            throw QuernError(
                .modelInvalid,
                "\(file.path): rope.dimension_count \(rotaryDims) is not the head size \(s.headDim); partial rotary is not supported",
                field: "model")
        }
        var weights = GGUFDecoderWeights(file: file, layers: s.layers, heads: s.heads, kvHeads: s.kvHeads)
        var factors: [Double]?
        if weights.has("rope_freqs.weight") {
            factors = try weights.float32("rope_freqs.weight", shape: [s.headDim / 2]).map(Double.init)
        }
        let decoder = try build(config, &weights, precision: options.precision, frequencyFactors: factors)
        return decoder
    }

    /// The decoder from a config and its tensors, whichever file they came from.
    static func build<W: DecoderWeights>(
        _ config: Config, _ w: inout W, precision: LinearOperator.Precision, frequencyFactors: [Double]?
    ) throws -> Decoder {
        let s = config.shape, h = s.hidden, hd = s.headDim
        func bias(_ parts: [(String, Int)], _ present: Bool) throws -> [Float]? {
            guard present else { return nil }
            return try parts.flatMap { try w.float32($0.0 + ".bias", shape: [$0.1]) }
        }
        var layers: [Decoder.Layer] = []
        for i in 0..<s.layers {
            let p = "layers.\(i)."
            let qkv = [
                (p + "self_attn.q_proj", s.heads * hd), (p + "self_attn.k_proj", s.kvWidth),
                (p + "self_attn.v_proj", s.kvWidth)
            ]
            let gateUp = [(p + "mlp.gate_proj", s.intermediate), (p + "mlp.up_proj", s.intermediate)]
            layers.append(
                Decoder.Layer(
                    attentionNorm: .init(gamma: try w.float32(p + "input_layernorm.weight", shape: [h])),
                    qkv: try w.linear(qkv, cols: h, precision: precision), qkvBias: try bias(qkv, config.qkvBias),
                    output: try w.linear([(p + "self_attn.o_proj", h)], cols: s.heads * hd, precision: precision),
                    outputBias: try bias([(p + "self_attn.o_proj", h)], config.outputBias),
                    mlpNorm: .init(gamma: try w.float32(p + "post_attention_layernorm.weight", shape: [h])),
                    up: try w.linear(gateUp, cols: h, precision: precision), upBias: try bias(gateUp, config.mlpBias),
                    down: try w.linear([(p + "mlp.down_proj", h)], cols: s.intermediate, precision: precision),
                    downBias: try bias([(p + "mlp.down_proj", h)], config.mlpBias)))
        }
        let embeddings = try w.float32("embed_tokens.weight", shape: [s.vocabulary, h])
        // A tied checkpoint may still carry a copy of the embeddings as lm_head.
        let head: LinearOperator
        if config.tied {
            w.ignore { $0 == "lm_head.weight" }
            // The output projection of a tied model is the embedding table as stored
            // (4-bit only when the file stores it so; otherwise its fp32 values).
            head = try w.linear([("embed_tokens", s.vocabulary)], cols: h, precision: precision)
        } else {
            head = try w.linear([("lm_head", s.vocabulary)], cols: h, precision: precision)
        }
        let scaling = frequencyFactors.map { RotaryEmbedding.Scaling.factors($0) } ?? config.scaling
        let decoder = Decoder(
            shape: s, embeddings: embeddings, positionEmbeddings: nil,
            rotary: RotaryEmbedding(dimensions: hd, theta: config.theta, scaling: scaling), layers: layers,
            finalNorm: .init(gamma: try w.float32("norm.weight", shape: [h])), head: head)
        try w.finish()
        return decoder
    }
}
