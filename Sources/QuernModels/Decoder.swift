import QuernCore
import QuernKernels

/// A decoder-only transformer as the kernels run it, whichever family's file it was
/// read from: token (and learned position) embeddings, `layers` pre-norm blocks of
/// causal self-attention and an MLP, a final norm and the output projection. Llama,
/// Qwen2 and Mistral (RMS norm, rotary positions, grouped-query attention, SwiGLU) and
/// GPT-2 (layer norm, learned positions, tanh GELU) are settings of this one stack.
///
/// `forward` runs new tokens of many sequences in one pass: their rows are packed
/// together for every projection (one GEMM per weight matrix, whatever the mix of
/// prompts and single decode steps), and attention reads each sequence's own
/// `KVCache`. Every row is computed in the same order whatever else is in the pass,
/// which is what makes generation batch-invariant.
public struct Decoder: Sendable {
    public struct Shape: Sendable, Equatable {
        public var vocabulary: Int
        public var hidden: Int
        public var layers: Int
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        public var intermediate: Int
        /// Positions the model was trained for: the longest prompt + completion.
        public var context: Int
        public var norm: Norm
        public var normEps: Float
        public var mlp: MLP
        /// Sliding-window attention (Mistral): a query sees this many positions back.
        public var window: Int?

        public enum Norm: String, Sendable { case rms, layer }
        public enum MLP: String, Sendable {
            /// `down(silu(gate(x)) · up(x))` (Llama).
            case gatedSiLU
            /// `proj(gelu_tanh(fc(x)))` (GPT-2).
            case geluTanh
        }

        public var qkvWidth: Int { (heads + 2 * kvHeads) * headDim }
        public var kvWidth: Int { kvHeads * headDim }

        public init(
            vocabulary: Int, hidden: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, intermediate: Int,
            context: Int, norm: Norm, normEps: Float, mlp: MLP, window: Int? = nil
        ) {
            self.vocabulary = vocabulary
            self.hidden = hidden
            self.layers = layers
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
            self.intermediate = intermediate
            self.context = context
            self.norm = norm
            self.normEps = normEps
            self.mlp = mlp
            self.window = window
        }
    }

    /// A norm's gain (and bias, for layer norm).
    public struct NormWeights: Sendable {
        public var gamma: [Float]
        public var beta: [Float]?
        public init(gamma: [Float], beta: [Float]? = nil) {
            self.gamma = gamma
            self.beta = beta
        }
    }

    /// One block's weights. `qkv` stacks the query, key and value projections
    /// (`[(heads + 2·kvHeads)·headDim, hidden]`); for a gated MLP `up` stacks gate and
    /// up (`[2·intermediate, hidden]`).
    public struct Layer: Sendable {
        public var attentionNorm: NormWeights
        public var qkv: LinearOperator
        public var qkvBias: [Float]?
        public var output: LinearOperator
        public var outputBias: [Float]?
        public var mlpNorm: NormWeights
        public var up: LinearOperator
        public var upBias: [Float]?
        public var down: LinearOperator
        public var downBias: [Float]?

        public init(
            attentionNorm: NormWeights, qkv: LinearOperator, qkvBias: [Float]?, output: LinearOperator,
            outputBias: [Float]?, mlpNorm: NormWeights, up: LinearOperator, upBias: [Float]?, down: LinearOperator,
            downBias: [Float]?
        ) {
            self.attentionNorm = attentionNorm
            self.qkv = qkv
            self.qkvBias = qkvBias
            self.output = output
            self.outputBias = outputBias
            self.mlpNorm = mlpNorm
            self.up = up
            self.upBias = upBias
            self.down = down
            self.downBias = downBias
        }
    }

    public let shape: Shape
    /// `[vocabulary, hidden]`.
    public let embeddings: [Float]
    /// `[context, hidden]` for learned positions (GPT-2); nil with rotary positions.
    public let positionEmbeddings: [Float]?
    public let rotary: RotaryEmbedding?
    public let layers: [Layer]
    public let finalNorm: NormWeights
    /// `[vocabulary, hidden]`: the output embeddings (the input ones, when tied).
    public let head: LinearOperator

    public init(
        shape: Shape, embeddings: [Float], positionEmbeddings: [Float]?, rotary: RotaryEmbedding?, layers: [Layer],
        finalNorm: NormWeights, head: LinearOperator
    ) {
        precondition(embeddings.count == shape.vocabulary * shape.hidden && layers.count == shape.layers)
        precondition((positionEmbeddings == nil) != (rotary == nil), "a decoder has learned or rotary positions")
        self.shape = shape
        self.embeddings = embeddings
        self.positionEmbeddings = positionEmbeddings
        self.rotary = rotary
        self.layers = layers
        self.finalNorm = finalNorm
        self.head = head
    }

    /// A cache for one sequence of up to `positions` positions (prompt + completion),
    /// within the context.
    public func makeCache(capacity positions: Int) -> KVCache {
        KVCache(layers: shape.layers, limit: min(positions, shape.context), width: shape.kvWidth)
    }

    /// New tokens for one sequence: they take the positions after its cache's length.
    public struct Step {
        public let cache: KVCache
        public let tokens: [Int32]
        public init(cache: KVCache, tokens: [Int32]) {
            self.cache = cache
            self.tokens = tokens
        }
    }

    /// Which rows' logits `forward` computes: each step's last token (generation) or all
    /// of them (scoring, perplexity).
    public enum Logits: Sendable { case last, all }

    /// Runs `steps` (each sequence at most once), appending their keys and values to
    /// their caches, and returns logits `[rows, vocabulary]` for the rows `logits` asks
    /// for, in step order. Tokens must be in `0..<vocabulary` and fit the caches.
    public func forward(_ steps: [Step], logits: Logits = .last, pool: ThreadPool = .shared) -> [Float] {
        let s = shape, h = s.hidden
        let counts = steps.map(\.tokens.count)
        let rows = counts.reduce(0, +)
        guard rows > 0 else { return [] }
        var offsets = [0]
        for c in counts { offsets.append(offsets.last! + c) }
        var positions = [Int]()
        positions.reserveCapacity(rows)
        for step in steps {
            step.cache.reserve(step.cache.length + step.tokens.count)
            positions.append(contentsOf: step.cache.length..<(step.cache.length + step.tokens.count))
        }

        // x: the residual stream [rows, hidden].
        var x = [Float](repeating: 0, count: rows * h)
        x.withUnsafeMutableBufferPointer { xp in
            var r = 0
            for step in steps {
                for t in step.tokens {
                    precondition(t >= 0 && Int(t) < s.vocabulary, "token \(t) outside the vocabulary")
                    let dst = xp.baseAddress! + r * h
                    embeddings.withUnsafeBufferPointer { e in dst.update(from: e.baseAddress! + Int(t) * h, count: h) }
                    if let p = positionEmbeddings {
                        p.withUnsafeBufferPointer {
                            Elementwise.add($0.baseAddress! + positions[r] * h, into: dst, count: h)
                        }
                    }
                    r += 1
                }
            }
        }
        let tables = rotary.map { $0.tables(positions) }
        var normed = [Float](repeating: 0, count: rows * h)
        var qkv = [Float](repeating: 0, count: rows * s.qkvWidth)
        var attended = [Float](repeating: 0, count: rows * s.heads * s.headDim)
        var projected = [Float](repeating: 0, count: rows * h)
        let upWidth = s.mlp == .gatedSiLU ? 2 * s.intermediate : s.intermediate
        var up = [Float](repeating: 0, count: rows * upWidth)
        var activated = [Float](repeating: 0, count: s.mlp == .gatedSiLU ? rows * s.intermediate : 0)
        let longest = steps.map { $0.cache.length + $0.tokens.count }.max()!

        for (l, layer) in layers.enumerated() {
            norm(x, rows: rows, layer.attentionNorm, into: &normed)
            apply(layer.qkv, normed, rows: rows, bias: layer.qkvBias, into: &qkv, pool: pool)
            qkv.withUnsafeMutableBufferPointer { qp in
                let base = qp.baseAddress!
                if let rotary, let tables {
                    rotary.apply(
                        base, rows: rows, stride: s.qkvWidth, heads: s.heads + s.kvHeads, headDim: s.headDim,
                        cos: tables.cos, sin: tables.sin)
                }
                for (i, step) in steps.enumerated() {
                    step.cache.append(
                        layer: l, rows: base + offsets[i] * s.qkvWidth + s.heads * s.headDim, count: counts[i],
                        stride: s.qkvWidth)
                }
            }
            attend(steps, offsets: offsets, qkv: qkv, layer: l, longest: longest, into: &attended, pool: pool)
            apply(layer.output, attended, rows: rows, bias: layer.outputBias, into: &projected, pool: pool)
            add(projected, into: &x)

            norm(x, rows: rows, layer.mlpNorm, into: &normed)
            apply(layer.up, normed, rows: rows, bias: layer.upBias, into: &up, pool: pool)
            switch s.mlp {
            case .gatedSiLU:
                up.withUnsafeBufferPointer { u in
                    activated.withUnsafeMutableBufferPointer {
                        Elementwise.gatedSiLU(u.baseAddress!, rows: rows, n: s.intermediate, into: $0.baseAddress!)
                    }
                }
                apply(layer.down, activated, rows: rows, bias: layer.downBias, into: &projected, pool: pool)
            case .geluTanh:
                up.withUnsafeMutableBufferPointer { Elementwise.geluTanh($0.baseAddress!, count: rows * upWidth) }
                apply(layer.down, up, rows: rows, bias: layer.downBias, into: &projected, pool: pool)
            }
            add(projected, into: &x)
        }
        for step in steps { step.cache.length += step.tokens.count }

        // The final norm and the output projection, on the rows asked for only.
        let picked: [Int] = logits == .all ? Array(0..<rows) : offsets.dropFirst().map { $0 - 1 }
        var last = [Float](repeating: 0, count: picked.count * h)
        x.withUnsafeBufferPointer { xp in
            last.withUnsafeMutableBufferPointer { lp in
                for (i, r) in picked.enumerated() {
                    (lp.baseAddress! + i * h).update(from: xp.baseAddress! + r * h, count: h)
                }
            }
        }
        var lastNormed = last
        norm(last, rows: picked.count, finalNorm, into: &lastNormed)
        var out = [Float](repeating: 0, count: picked.count * s.vocabulary)
        apply(head, lastNormed, rows: picked.count, bias: nil, into: &out, pool: pool)
        return out
    }

    private func norm(_ x: [Float], rows: Int, _ w: NormWeights, into y: inout [Float]) {
        let n = shape.hidden, eps = shape.normEps
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                w.gamma.withUnsafeBufferPointer { g in
                    switch shape.norm {
                    case .rms:
                        Norms.rmsNorm(
                            xp.baseAddress!, rows: rows, n: n, gamma: g.baseAddress!, eps: eps, into: yp.baseAddress!)
                    case .layer:
                        (w.beta ?? []).withUnsafeBufferPointer { b in
                            Norms.layerNorm(
                                xp.baseAddress!, rows: rows, n: n, gamma: g.baseAddress!, beta: b.baseAddress, eps: eps,
                                into: yp.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    private func apply(
        _ w: LinearOperator, _ x: [Float], rows: Int, bias: [Float]?, into y: inout [Float], pool: ThreadPool
    ) {
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                if let bias {
                    bias.withUnsafeBufferPointer { b in
                        w.apply(
                            xp.baseAddress!, m: rows, bias: b.baseAddress!, activation: .none, into: yp.baseAddress!,
                            pool: pool)
                    }
                } else {
                    w.apply(xp.baseAddress!, m: rows, bias: nil, activation: .none, into: yp.baseAddress!, pool: pool)
                }
            }
        }
    }

    private func add(_ d: [Float], into x: inout [Float]) {
        d.withUnsafeBufferPointer { dp in
            x.withUnsafeMutableBufferPointer {
                Elementwise.add(dp.baseAddress!, into: $0.baseAddress!, count: dp.count)
            }
        }
    }

    /// Attention of every step's new rows against its cache, split over (step, head
    /// group) tasks.
    private func attend(
        _ steps: [Step], offsets: [Int], qkv: [Float], layer: Int, longest: Int, into out: inout [Float],
        pool: ThreadPool
    ) {
        let s = shape, width = s.heads * s.headDim
        let scale = 1 / Float(s.headDim).squareRoot()
        qkv.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                let q = qp.baseAddress!, o = op.baseAddress!
                let run = { (i: Int) in
                    let step = steps[i], rows = step.tokens.count
                    let scratch = UnsafeMutablePointer<Float>.allocate(
                        capacity: Attention.cachedScratch(positions: longest))
                    defer { scratch.deallocate() }
                    let (keys, values) = step.cache.layer(layer)
                    Attention.cached(
                        q: q + offsets[i] * s.qkvWidth, qStride: s.qkvWidth, rows: rows, first: step.cache.length,
                        keys: keys, values: values, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                        window: s.window, scale: scale, into: o + offsets[i] * width, outStride: width,
                        scores: scratch)
                }
                if steps.count == 1 || pool.threads == 1 {
                    for i in steps.indices { run(i) }
                } else {
                    pool.parallelFor(steps.count, run)
                }
            }
        }
    }
}

/// The keys and values a sequence has computed, per layer: `[capacity, kvHeads·headDim]`
/// each, filled up to `length` positions. It holds at most `limit` positions (prompt and
/// longest completion, within the context) but grows to them by doubling as tokens come:
/// memory follows what a sequence has run, not the `max_tokens` it asked for, so a
/// record asking for a whole context does not reserve gigabytes it may never use.
public final class KVCache: @unchecked Sendable {
    /// Positions the sequence may reach.
    public let limit: Int
    public let width: Int
    /// Positions filled (the tokens the sequence has run).
    public internal(set) var length = 0
    /// Positions allocated.
    public private(set) var capacity: Int
    private var keys: AlignedBuffer<Float>
    private var values: AlignedBuffer<Float>
    let layers: Int
    /// Positions allocated at first: a short prompt and its first tokens.
    static let initialCapacity = 64

    init(layers: Int, limit: Int, width: Int) {
        self.layers = layers
        self.limit = limit
        self.width = width
        capacity = min(limit, Self.initialCapacity)
        keys = AlignedBuffer(count: layers * capacity * width, zeroed: false)
        values = AlignedBuffer(count: layers * capacity * width, zeroed: false)
    }

    /// Room for `positions` (at most `limit`): the buffers doubled (or grown to fit) and
    /// each layer's filled rows moved to the new layout.
    func reserve(_ positions: Int) {
        precondition(positions <= limit, "KV cache full")
        guard positions > capacity else { return }
        let grown = min(limit, max(positions, 2 * capacity))
        let newKeys = AlignedBuffer<Float>(count: layers * grown * width, zeroed: false)
        let newValues = AlignedBuffer<Float>(count: layers * grown * width, zeroed: false)
        for l in 0..<layers {
            (newKeys.pointer + l * grown * width).update(
                from: keys.pointer + l * capacity * width, count: length * width)
            (newValues.pointer + l * grown * width).update(
                from: values.pointer + l * capacity * width, count: length * width)
        }
        keys = newKeys
        values = newValues
        capacity = grown
    }

    /// An independent copy holding the same positions (a prompt's other choices).
    public func copy() -> KVCache {
        let c = KVCache(layers: layers, limit: limit, width: width)
        c.reserve(length)
        for l in 0..<layers {
            (c.keys.pointer + l * c.capacity * width).update(
                from: keys.pointer + l * capacity * width, count: length * width)
            (c.values.pointer + l * c.capacity * width).update(
                from: values.pointer + l * capacity * width, count: length * width)
        }
        c.length = length
        return c
    }

    func layer(_ l: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>) {
        (UnsafePointer(keys.pointer + l * capacity * width), UnsafePointer(values.pointer + l * capacity * width))
    }

    /// Copies `count` rows of keys then values (each `width` floats, values right after
    /// the keys) from `rows` (row stride `stride`) after the filled positions of layer `l`.
    func append(layer l: Int, rows: UnsafePointer<Float>, count: Int, stride: Int) {
        precondition(length + count <= capacity, "reserve before appending")
        for r in 0..<count {
            let at = (l * capacity + length + r) * width
            (keys.pointer + at).update(from: rows + r * stride, count: width)
            (values.pointer + at).update(from: rows + r * stride + width, count: width)
        }
    }
}
