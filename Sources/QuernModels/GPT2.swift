import QuernCore
import QuernKernels

/// The `gpt2` family: Hugging Face's `GPT2LMHeadModel`: learned position embeddings,
/// pre-norm blocks with layer norm, fused q/k/v attention (`c_attn`), a tanh-GELU MLP,
/// and output embeddings tied to the input ones. Its projections are `Conv1D` layers,
/// stored `[in, out]`, which load transposed into the `[out, in]` every kernel takes.
public enum GPT2: ModelFamily {
    public static let modelType = "gpt2"
    public static var provides: [Any.Type] { [(any CausalLM).self] }

    /// `GPT2LMHeadModel` nests the stack under `transformer.`; a bare `GPT2Model` does not.
    public static func keyMap(_ name: String) -> String {
        name.hasPrefix("transformer.") ? String(name.dropFirst(12)) : name
    }

    public static func shape(json: JSONObject, source: String = "config.json") throws -> Decoder.Shape {
        let c = ConfigFields(json, source: source)
        let hidden = try c.int("n_embd", max: 1 << 15)
        let heads = try c.int("n_head", max: 1 << 10)
        guard hidden % heads == 0 else { throw c.fail("n_embd \(hidden) is not a multiple of n_head \(heads)") }
        let act = try c.string("activation_function", default: "gelu_new")
        guard ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) else {
            throw c.fail("activation_function \(act) is not supported (gelu_new, the tanh approximation)")
        }
        try c.require("scale_attn_weights", in: [.bool(true)], what: "attention scaled by 1/√head_dim only")
        try c.require("scale_attn_by_inverse_layer_idx", in: [.bool(false)], what: "false only")
        try c.require("reorder_and_upcast_attn", in: [.bool(false)], what: "false only")
        try c.require("add_cross_attention", in: [.bool(false)], what: "a decoder without cross-attention only")
        return Decoder.Shape(
            vocabulary: try c.int("vocab_size", max: 1 << 22), hidden: hidden,
            layers: try c.int("n_layer", max: 1 << 9), heads: heads, kvHeads: heads, headDim: hidden / heads,
            intermediate: try c.int("n_inner", max: 1 << 17, default: 4 * hidden),
            context: try c.int("n_positions", max: 1 << 21, default: 1024), norm: .layer,
            normEps: Float(try c.positive("layer_norm_epsilon", default: 1e-5)), mlp: .geluTanh)
    }

    public static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model {
        let s = try shape(json: files.config, source: files.configPath)
        let h = s.hidden
        let (file, digest) = try files.weights()
        var w = try StrictWeights(file, keyMap: keyMap)
        let precision = options.precision
        // Causal-mask buffers that older transformers versions saved with the weights.
        w.ignore { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") }

        /// A Conv1D weight `[in, out]` as a linear operator over `[out, in]`.
        func conv1D(_ name: String, in k: Int, out n: Int) throws -> LinearOperator {
            let t = try w.float32(name + ".weight", shape: [k, n])
            var transposed = [Float](repeating: 0, count: k * n)
            for i in 0..<k { for j in 0..<n { transposed[j * k + i] = t.data[i * n + j] } }
            return LinearOperator.choose(Tensor(shape: [n, k], data: transposed), precision: precision)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] { try w.float32(name, shape: [n]).data }
        func norm(_ name: String) throws -> Decoder.NormWeights {
            .init(gamma: try vector(name + ".weight", h), beta: try vector(name + ".bias", h))
        }
        var layers: [Decoder.Layer] = []
        for i in 0..<s.layers {
            let p = "h.\(i)."
            layers.append(
                Decoder.Layer(
                    attentionNorm: try norm(p + "ln_1"),
                    qkv: try conv1D(p + "attn.c_attn", in: h, out: 3 * h),
                    qkvBias: try vector(p + "attn.c_attn.bias", 3 * h),
                    output: try conv1D(p + "attn.c_proj", in: h, out: h),
                    outputBias: try vector(p + "attn.c_proj.bias", h),
                    mlpNorm: try norm(p + "ln_2"),
                    up: try conv1D(p + "mlp.c_fc", in: h, out: s.intermediate),
                    upBias: try vector(p + "mlp.c_fc.bias", s.intermediate),
                    down: try conv1D(p + "mlp.c_proj", in: s.intermediate, out: h),
                    downBias: try vector(p + "mlp.c_proj.bias", h)))
        }
        let embeddings = try w.float32("wte.weight", shape: [s.vocabulary, h])
        // GPT-2's output embeddings are always the input ones; a saved copy is the same tensor.
        w.ignore { $0 == "lm_head.weight" }
        let decoder = Decoder(
            shape: s, embeddings: embeddings.data,
            positionEmbeddings: try w.float32("wpe.weight", shape: [s.context, h]).data, rotary: nil, layers: layers,
            finalNorm: try norm("ln_f"), head: LinearOperator.choose(embeddings, precision: precision))
        try w.finish()
        return try DecoderModel(
            family: modelType, files: files, weights: digest, decoder: decoder, precision: precision,
            weightsSummary: "safetensors")
    }
}
