import QuernCore
import QuernData
import QuernModels

/// `embed`: one vector per text, pooled and normalised as the model directory says.
/// Written as JSON arrays, CSV columns, or (`output.format: npy`) one NPY array with the
/// ids and row numbers in the results file.
public enum EmbedTask: JobTask {
    public static let name = "embed"
    public static let writesVectors = true
    public static let blocks: [any ManifestBlock.Type] = [Embedding.self]

    /// The `embed` block.
    public struct Embedding: ManifestBlock, Equatable {
        public static let key = "embed"
        /// Keep the first this many values of each vector (Matryoshka models), renormalised
        /// when the model normalises its vectors; nil keeps them all.
        public var dimensions: Int?
        /// Add `truncated` (true when the text was cut to the model's length) to each line.
        public var markTruncated = false
        /// Embed long texts whole: windows of `tokens` tokens overlapping by `overlap`, their
        /// vectors averaged into one per record (renormalised when the model normalises),
        /// or with `perChunk` one result row per window.
        public var chunk: (tokens: Int, overlap: Int)?
        /// `chunk.rows: "chunk"`: a row per window (id, chunk index, token and character
        /// offsets) instead of one averaged row per record (`"record"`).
        public var perChunk = false

        public init() {}

        public init(from b: inout StrictObject) throws {
            dimensions = try b.int("dimensions", range: 1...(1 << 20))
            markTruncated = try b.bool("mark_truncated") ?? false
            if var c = try b.object("chunk") {
                let tokens = try c.int("tokens", required: true, range: 8...65536)!
                let overlap = try c.int("overlap", range: 0...65535) ?? 0
                perChunk = try c.choice("rows", ["record", "chunk"]) == "chunk"
                try c.finish()
                guard overlap <= tokens / 2 else {
                    throw QuernError(
                        .invalidValue, "embed.chunk.overlap must be at most half of embed.chunk.tokens",
                        field: "embed.chunk.overlap")
                }
                chunk = (tokens, overlap)
            }
        }

        public static func == (a: Self, b: Self) -> Bool {
            a.dimensions == b.dimensions && a.markTruncated == b.markTruncated && a.chunk?.tokens == b.chunk?.tokens
                && a.chunk?.overlap == b.chunk?.overlap && a.perChunk == b.perChunk
        }
    }
    /// Vectors of floats compress little at any level: level 6 is 4× slower than level 1
    /// for a file 13 % smaller.
    public static let defaultCompressionLevel = 1

    public static func check(_ manifest: Manifest) throws {
        if manifest.input.format == .openaiBatch {
            _ = try manifest.modelField("a text encoder directory, e.g. all-MiniLM-L6-v2")
            guard manifest.output.format != .npy else {
                throw QuernError(
                    .invalidValue, "openai-batch input writes OpenAI's batch output lines: use output.format jsonl",
                    field: "output.format")
            }
            return
        }
        try checkTexts(manifest)
    }

    /// What `embed` and `score` need: a text encoder and texts.
    static func checkTexts(_ manifest: Manifest) throws {
        _ = try manifest.modelField("a text encoder directory, e.g. all-MiniLM-L6-v2")
        guard Manifest.textFormats.contains(manifest.input.format) else {
            throw QuernError(
                .unsupportedFormat,
                "task \(manifest.task.name) reads texts: input.format must be jsonl, csv or txt, not \(manifest.input.format.rawValue)",
                field: "input.format")
        }
    }

    /// The job's model as a text encoder, or the error saying it is not one.
    static func encoder(_ job: TaskInputs) throws -> (any Model, any TextEncoder) {
        let model = try job.loadModel()
        guard let encoder = model.capability(TextEncoder.self) else {
            throw job.lacks(TextEncoder.self, "a text encoder", model: model)
        }
        return (model, encoder)
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        let (model, encoder) = try encoder(job)
        let m = job.manifest
        var spec = m.recordSpec(texts: m.input.format != .openaiBatch, labels: false)
        if m.input.format == .openaiBatch {
            spec.wantsFeatures = false
            spec.wantsObject = true
            spec.idField = m.input.idField ?? "custom_id"
        }
        let settings = m.block(Embedding.self)
        if settings.chunk != nil && m.input.format == .openaiBatch {
            throw QuernError(
                .invalidValue, "embed.chunk applies to texts, not OpenAI Batch requests", field: "embed.chunk")
        }
        let texts = try TextRecords(m, model: encoder)
        if let (tokens, overlap) = settings.chunk {
            // A window holds the specials and the prompt, then text tokens: at least one
            // more than the overlap, or the windows would not move along the text.
            let fixed = texts.tokenizer.chunks("", prompt: texts.prompt, tokens: tokens, overlap: 0, offsets: false)[0]
                .sequence.ids.count
            let length = min(tokens, encoder.maxLength)
            guard length - fixed > overlap else {
                throw QuernError(
                    .invalidValue,
                    "embed.chunk: windows of \(length) tokens (the model takes \(encoder.maxLength)) hold \(fixed) special and prompt tokens, leaving \(max(0, length - fixed)) for text, not more than the overlap of \(overlap); raise chunk.tokens, lower chunk.overlap or shorten the prompt",
                    field: "embed.chunk")
            }
        }
        if let d = settings.dimensions, d > encoder.dimension {
            throw QuernError(
                .invalidValue, "embed.dimensions is \(d); this model's vectors have \(encoder.dimension)",
                field: "embed.dimensions")
        }
        return .records(
            Embedder(
                model: model, spec: spec, texts: texts,
                openAI: m.input.format == .openaiBatch ? job.modelName : nil, settings: settings))
    }
}

final class Embedder: RecordTask {
    let model: any Model
    let spec: RecordSpec
    let texts: TextRecords
    /// The model's name in OpenAI response bodies, when the input is OpenAI Batch requests.
    let openAI: String?
    let settings: EmbedTask.Embedding
    /// Records whose text was cut to the model's length, so far (checkpointed).
    var truncated = 0
    var inputSize: Int? { nil }
    var window: Int { texts.window }

    init(
        model: any Model, spec: RecordSpec, texts: TextRecords, openAI: String? = nil,
        settings: EmbedTask.Embedding = .init()
    ) {
        self.model = model
        self.spec = spec
        self.texts = texts
        self.openAI = openAI
        self.settings = settings
    }

    /// Row `k` of `out` as written: its first `dimensions` values, renormalised when the
    /// model normalises (what OpenAI's `dimensions` and sentence-transformers'
    /// `truncate_dim` followed by normalisation give).
    func vector(_ out: TextOutput, _ k: Int, dimensions: Int?) -> [Float] {
        let h = texts.model.dimension
        let d = min(dimensions ?? h, h)
        var v = Array(out.embeddings[(k * h)..<(k * h + d)])
        if d < h && texts.model.normalizes {
            let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            if norm > 0 { v = v.map { Float(Double($0) / norm) } }
        }
        return v
    }

    var errorLine: RecordErrors.LineFormat? { openAI == nil ? nil : OpenAIBatch.errorLine }

    /// Body fields of an embeddings request.
    static let embeddingFields: Set<String> = ["input", "encoding_format", "dimensions"]
    /// Texts one request may ask for (OpenAI's limit).
    static let maxInputs = 2048

    /// An embeddings request's texts, whether it wants base64, and its `dimensions`.
    func request(_ r: Record) throws -> (texts: [String], base64: Bool, dimensions: Int?) {
        var (url, body) = try OpenAIBatch.request(r, endpoints: [OpenAIBatch.embeddingsEndpoint])
        let input = try body.take("input", required: true)!
        let texts: [String]
        switch input {
        case .string(let s): texts = [s]
        case .array(let a) where !a.isEmpty && a.count <= Self.maxInputs && a.allSatisfy({ $0.stringValue != nil }):
            texts = a.compactMap(\.stringValue)
        default:
            throw QuernError(
                .invalidValue,
                "\"body.input\" must be a string or an array of 1 to \(Self.maxInputs) strings (token arrays are not supported)",
                field: "body.input")
        }
        let base64 = try body.choice("encoding_format", ["float", "base64"]) == "base64"
        let dimensions = try body.int("dimensions", range: 1...Int(Int32.max))
        if let d = dimensions, d > self.texts.model.dimension {
            throw QuernError(
                .invalidValue,
                "\"body.dimensions\" is \(d); this model's embeddings have \(self.texts.model.dimension)",
                field: "body.dimensions")
        }
        try OpenAIBatch.finish(body, url: url, supported: Self.embeddingFields)
        return (texts, base64, dimensions)
    }

    /// OpenAI embeddings requests: every text of the window in one run, then one output
    /// line per request.
    func runOpenAI(_ batch: [Record], name: String) -> [Result<ResultRow, QuernError>] {
        let requests = batch.map { r in r.attempt { try request(r) } }
        var flat: [Record] = []
        for (r, q) in zip(batch, requests) {
            guard case .success(let q) = q else { continue }
            for t in q.texts {
                var each = r
                each.text = t
                flat.append(each)
            }
        }
        let (out, rows, _) = texts.run(flat)
        var next = 0
        return zip(batch, requests).map { r, q in
            q.flatMap { q in
                let mine = rows[next..<(next + q.texts.count)]
                next += q.texts.count
                var vectors: [[Float]] = []
                for row in mine {
                    switch row {
                    case .success(let k): vectors.append(vector(out, k, dimensions: q.dimensions))
                    case .failure(let e): return .failure(e)
                    }
                }
                let tokens = q.texts.reduce(0) { $0 + texts.tokenizer.encode($1).ids.count }
                let key = OpenAIBatch.requestKey(r)
                return .success(
                    OpenAIBatch.row(
                        custom: r.id, key: key,
                        body: OpenAIBatch.embeddingsBody(
                            model: name, vectors: vectors, base64: q.base64, promptTokens: tokens)))
            }
        }
    }

    /// Each record's text in windows (the prompt in each): one vector per record, the
    /// mean of its windows' vectors renormalised when the model normalises; or with
    /// `perChunk` one row per window, its vector as a plain embedding is written.
    func runChunked(_ batch: [Record], tokens: Int, overlap: Int) -> [Result<ResultRow, QuernError>] {
        var sequences: [TokenSequence] = [], windows: [Result<[TextChunk], QuernError>] = []
        for r in batch {
            guard let text = r.text else {
                windows.append(
                    .failure(QuernError(.missingValue, "record has no text", line: r.line, member: r.member)))
                continue
            }
            let w = texts.tokenizer.chunks(
                text, prompt: texts.prompt, tokens: tokens, overlap: overlap, offsets: settings.perChunk)
            windows.append(.success(w))
            sequences += w.map(\.sequence)
        }
        let out = texts.model.run(sequences, batchSize: texts.batchSize, pool: texts.pool)
        let h = texts.model.dimension
        var next = 0
        return zip(batch, windows).map { r, w in
            w.map { w in
                let s = next..<(next + w.count)
                next += w.count
                guard !settings.perChunk else {
                    let rows = zip(s, w).enumerated().map { k, item in
                        let (row, chunk) = item
                        var fields: [(String, ResultRow.Value)] = [
                            ("embedding", .floats(vector(out, row, dimensions: settings.dimensions))),
                            ("chunk", .int(k)), ("token_start", .int(chunk.tokens.lowerBound)),
                            ("token_end", .int(chunk.tokens.upperBound))
                        ]
                        // Null when unknown: every row has the same columns (CSV's header).
                        let c = chunk.characters
                        fields += [
                            ("char_start", c.map { .int($0.lowerBound) } ?? .json(.null)),
                            ("char_end", c.map { .int($0.upperBound) } ?? .json(.null))
                        ]
                        return ResultRow(id: r.id, fields: fields)
                    }
                    var first = rows[0]
                    first.following = Array(rows.dropFirst())
                    return first
                }
                var mean = [Double](repeating: 0, count: h)
                for k in s { for d in 0..<h { mean[d] += Double(out.embeddings[k * h + d]) } }
                let pooled = TextOutput(embeddings: mean.map { Float($0 / Double(s.count)) }, scores: [])
                var v = vector(pooled, 0, dimensions: settings.dimensions)
                if texts.model.normalizes && settings.dimensions == nil {
                    let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    if norm > 0 { v = v.map { Float(Double($0) / norm) } }
                }
                var fields: [(String, ResultRow.Value)] = [("embedding", .floats(v))]
                fields.append(("chunks", .int(s.count)))
                if settings.markTruncated { fields.append(("truncated", .bool(false))) }
                return ResultRow(id: r.id, fields: fields)
            }
        }
    }

    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        if let openAI { return runOpenAI(batch, name: openAI) }
        if let c = settings.chunk { return runChunked(batch, tokens: c.tokens, overlap: c.overlap) }
        let (out, rows, cut) = texts.run(batch)
        truncated += cut.filter { $0 }.count
        return zip(zip(batch, rows), cut).map { item, wasCut in
            let (r, row) = item
            return row.map {
                var fields: [(String, ResultRow.Value)] = [
                    ("embedding", .floats(vector(out, $0, dimensions: settings.dimensions)))
                ]
                if settings.markTruncated { fields.append(("truncated", .bool(wasCut))) }
                return ResultRow(id: r.id, fields: fields)
            }
        }
    }

    var state: JSONValue { ["truncated": .int(Int64(truncated))] }
    func restore(_ state: JSONValue) throws { truncated = Int(state.objectValue?["truncated"]?.intValue ?? 0) }
    func metrics() -> JSONValue? {
        var o = JSONObject([
            ("dimension", .int(Int64(settings.dimensions ?? texts.model.dimension))),
            ("model_dimension", .int(Int64(texts.model.dimension))),
            ("max_length", .int(Int64(texts.model.maxLength))), ("truncated_records", .int(Int64(truncated)))
        ])
        if !texts.prompt.isEmpty { o["prompt"] = .string(texts.prompt) }
        return .object(o)
    }
}
