import QuernCore
import QuernKernels

/// Where a decoder family's tensors come from, by Hugging Face's names (`layers.3.mlp.up_proj`):
/// a safetensors checkpoint, or a GGUF file whose names and row orders are mapped back.
/// Both load strictly: a missing or mis-shaped tensor is an error naming it, and
/// `finish()` refuses any tensor nobody took.
protocol DecoderWeights {
    /// A tensor as fp32, its shape checked.
    mutating func float32(_ name: String, shape: [Int]) throws -> [Float]
    /// Several `[rows, cols]` weight matrices (`name.weight`) stacked into one operator at
    /// `precision`; a GGUF's own 4-bit blocks are used as stored when it is `q4`.
    mutating func linear(_ parts: [(String, Int)], cols: Int, precision: LinearOperator.Precision) throws
        -> LinearOperator
    func has(_ name: String) -> Bool
    mutating func ignore(where known: (String) -> Bool)
    func finish() throws
    /// How the weights ran, for `describe()` (a GGUF's tensor types).
    var summary: String { get }
}

/// A safetensors checkpoint (F32, F16 or BF16; widened to fp32 at load).
struct SafetensorsDecoderWeights: DecoderWeights {
    var weights: StrictWeights

    mutating func float32(_ name: String, shape: [Int]) throws -> [Float] {
        try weights.float32(name, shape: shape).data
    }

    mutating func linear(_ parts: [(String, Int)], cols: Int, precision: LinearOperator.Precision) throws
        -> LinearOperator
    {
        var data = [Float]()
        for (name, rows) in parts { data += try weights.float32(name + ".weight", shape: [rows, cols]).data }
        let rows = parts.reduce(0) { $0 + $1.1 }
        return LinearOperator.choose(Tensor(shape: [rows, cols], data: data), precision: precision)
    }

    func has(_ name: String) -> Bool { weights.has(name) }
    mutating func ignore(where known: (String) -> Bool) { weights.ignore(where: known) }
    func finish() throws { try weights.finish() }
    var summary: String { "safetensors" }
}

/// A GGUF file read as a Hugging Face Llama checkpoint: llama.cpp's tensor names mapped
/// to Hugging Face's, and the query and key rows, which llama.cpp's converter permutes
/// for its rotary layout, put back (`GGUFFile.unpermuteRotary`).
struct GGUFDecoderWeights: DecoderWeights {
    let file: GGUFFile
    /// Hugging Face name → GGUF name.
    let names: [String: String]
    /// Hugging Face names of rows to unpermute → the heads they split into.
    let rotary: [String: Int]
    private var taken: Set<String> = []
    private(set) var types: [String: Int] = [:]

    /// llama.cpp's names for a Llama block's tensors, by Hugging Face's.
    static let blockNames: [(gguf: String, hf: String)] = [
        ("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
        ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")
    ]

    init(file: GGUFFile, layers: Int, heads: Int, kvHeads: Int) {
        self.file = file
        var names = [
            "embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight", "rope_freqs.weight": "rope_freqs.weight"
        ]
        var rotary: [String: Int] = [:]
        for i in 0..<layers {
            for (g, h) in Self.blockNames {
                for suffix in ["weight", "bias"] { names["layers.\(i).\(h).\(suffix)"] = "blk.\(i).\(g).\(suffix)" }
            }
            rotary["layers.\(i).self_attn.q_proj"] = heads
            rotary["layers.\(i).self_attn.k_proj"] = kvHeads
        }
        self.names = names
        self.rotary = rotary
    }

    func info(_ name: String) throws -> GGUFTensorInfo {
        guard let g = names[name], let t = file.tensors[g] else {
            throw QuernError(
                .modelMismatch, "\(Path.basename(file.path)) has no tensor \"\(names[name] ?? name)\"", field: "model")
        }
        return t
    }

    mutating func float32(_ name: String, shape: [Int]) throws -> [Float] {
        let t = try info(name)
        taken.insert(t.name)
        types[t.type.name, default: 0] += 1
        return try file.float32(t.name, shape: shape)
    }

    mutating func linear(_ parts: [(String, Int)], cols: Int, precision: LinearOperator.Precision) throws
        -> LinearOperator
    {
        let infos = try parts.map { (name, rows) -> GGUFTensorInfo in
            let t = try info(name + ".weight")
            guard t.shape == [rows, cols] else {
                throw QuernError(
                    .modelMismatch,
                    "tensor \"\(t.name)\" has shape \(t.shape) (GGUF dims \(t.dims)); the model's metadata implies \([rows, cols])",
                    field: "model")
            }
            return t
        }
        for t in infos {
            taken.insert(t.name)
            types[t.type.name, default: 0] += 1
        }
        let total = parts.reduce(0) { $0 + $1.1 }
        // 4-bit blocks as stored, rows put back in Hugging Face's order.
        if precision == .q4 && infos.allSatisfy({ Q4Weights.ggmlTypes.contains($0.type) }) {
            var sources: [(GGUFTensorInfo, Int)] = []
            for ((name, rows), t) in zip(parts, infos) {
                let order = Self.rowOrder(rows: rows, heads: rotary[name])
                sources += order.map { (t, $0) }
            }
            let file = self.file
            return .q4(
                Q4Weights(n: total, k: cols) { r in
                    let (t, row) = sources[r]
                    let rowBytes = t.byteCount / t.shape[0]
                    return (
                        t.type,
                        UnsafeRawBufferPointer(rebasing: file.bytes(of: t)[(row * rowBytes)..<((row + 1) * rowBytes)])
                    )
                })
        }
        // Anything else is widened to its exact fp32 values; int8 (and q4 of another
        // format) then quantizes as the manifest's precision asks.
        var data = [Float]()
        data.reserveCapacity(total * cols)
        for ((name, rows), t) in zip(parts, infos) {
            let values = try file.float32(t.name)
            data +=
                try rotary[name].map { try GGUFFile.unpermuteRotary(values, rows: rows, cols: cols, heads: $0) }
                ?? values
        }
        let widened = precision == .q4 ? LinearOperator.Precision.fp32 : precision
        return LinearOperator.choose(Tensor(shape: [total, cols], data: data), precision: widened)
    }

    /// GGUF row of each Hugging Face row: the rotary permutation's inverse per head (see
    /// `GGUFFile.unpermuteRotary`), or the identity.
    static func rowOrder(rows: Int, heads: Int?) -> [Int] {
        guard let heads else { return Array(0..<rows) }
        let headDim = rows / heads, half = headDim / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half { order[h * headDim + j * half + i] = h * headDim + 2 * i + j }
            }
        }
        return order
    }

    func has(_ name: String) -> Bool { names[name].map { file.tensors[$0] != nil } ?? false }

    mutating func ignore(where known: (String) -> Bool) {
        for (hf, g) in names where known(hf) && file.tensors[g] != nil { taken.insert(g) }
    }

    func finish() throws {
        let extra = Set(file.tensorNames).subtracting(taken)
        if !extra.isEmpty {
            throw QuernError(
                .modelMismatch,
                "\(Path.basename(file.path)) has tensors a Llama model does not use: \(extra.sorted().prefix(5).joined(separator: ", "))",
                field: "model")
        }
    }

    var summary: String {
        "gguf " + types.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
    }
}
