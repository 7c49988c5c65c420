import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// Texts to model inputs: each record's text (and pair) tokenized, truncated to the
/// job's length, then run through the encoder in unpadded passes (`BertModel.run`).
final class TextEncoder {
    let model: BertModel
    let session: WordPieceTokenizer.Session
    let batchSize: Int
    let pool: ThreadPool

    init(model: BertModel, batchSize: Int, pool: ThreadPool = .shared) {
        self.model = model
        session = WordPieceTokenizer.Session(model.tokenizer)
        self.batchSize = batchSize
        self.pool = pool
    }

    /// Records to hand to a task at a time: enough passes for every thread to run whole
    /// passes of its own.
    static func window(batchSize: Int) -> Int { max(batchSize * 32, 1024) }

    func encode(_ text: String) -> WordPieceTokenizer.Encoding { session.encode(text, maxLength: model.maxLength) }

    /// The record's text, or its pair as one sequence when `pairs` (cross-encoders).
    func encode(_ r: Record, pairs: Bool) -> Result<WordPieceTokenizer.Encoding, QuernError> {
        guard let text = r.text else {
            return .failure(QuernError(.missingValue, "record has no text", line: r.line, member: r.member))
        }
        if pairs {
            guard let b = r.pair else { return .failure(QuernError(.missingValue, "record has no pair text", line: r.line, member: r.member)) }
            return .success(session.encode(text, b, maxLength: model.maxLength))
        }
        return .success(encode(text))
    }

    /// Encodes and runs the records: the model output and, per record, its row in that
    /// output or its error.
    func run(_ batch: [Record], pairs: Bool = false) -> (BertModel.Output, [Result<Int, QuernError>]) {
        var encodings: [WordPieceTokenizer.Encoding] = []
        encodings.reserveCapacity(batch.count)
        let rows = batch.map { r -> Result<Int, QuernError> in
            encode(r, pairs: pairs).map { e in
                encodings.append(e)
                return encodings.count - 1
            }
        }
        return (model.run(encodings, batchSize: batchSize, pool: pool), rows)
    }

    /// `predict`/`evaluate` outputs: the head's scores per record (pairs for cross-encoders).
    func outputs(pairs: Bool) -> PredictTask.Outputs {
        { [self] batch in
            let (out, rows) = run(batch, pairs: pairs)
            let c = model.outputs
            return rows.map { $0.map { Array(out.scores[($0 * c)..<(($0 + 1) * c)]) } }
        }
    }
}

/// `embed`: one vector per text, pooled and normalised as the model directory says.
final class EmbedTask: JobTask {
    let encoder: TextEncoder
    var window: Int { TextEncoder.window(batchSize: encoder.batchSize) }

    init(encoder: TextEncoder) { self.encoder = encoder }

    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        let (out, rows) = encoder.run(batch)
        let h = encoder.model.dimension
        return zip(batch, rows).map { r, row in
            row.map { ResultRow(id: r.id, fields: [("embedding", .floats(Array(out.embeddings[($0 * h)..<(($0 + 1) * h)])))]) }
        }
    }

    var state: JSONValue { .null }
    func restore(_ state: JSONValue) throws {}
    func metrics() -> JSONValue? { ["dimension": .int(Int64(encoder.model.dimension)), "max_length": .int(Int64(encoder.model.maxLength))] }
}

/// `score`: each text against its pair (cosine of the two embeddings, or a
/// cross-encoder's single output), or against every query of a query file (cosine,
/// best `top_k` kept, best first).
final class ScoreTask: JobTask {
    enum Mode {
        case pairs
        case crossEncoder
        /// The queries' unit vectors as the weights of a linear map (one output per query).
        case queries(ids: [String], vectors: LinearOperator, topK: Int)
    }

    let encoder: TextEncoder
    let mode: Mode
    var window: Int { TextEncoder.window(batchSize: encoder.batchSize) }
    private var scored = 0, sum = 0.0

    init(encoder: TextEncoder, mode: Mode) {
        self.encoder = encoder
        self.mode = mode
    }

    /// Reads and embeds a query file. Queries stay in memory, so there is a cap.
    static func queries(path: String, spec: RecordSpec, encoder: TextEncoder, limits: StreamLimits,
                        maxQueries: Int = 1_000_000) throws -> (ids: [String], vectors: [Float]) {
        let stream = try RecordStream(path: path, spec: spec, limits: limits)
        var records: [Record] = []
        while let item = try stream.next() {
            switch item {
            case .record(let r):
                records.append(r)
                if records.count > maxQueries {
                    throw QuernError(.invalidValue, "score.queries holds more than \(maxQueries) queries; split the job", field: "score.queries")
                }
            case .failure(let f):
                throw QuernError(f.error.code, "score.queries \(f.member), line \(f.line ?? 0): \(f.error.message)", field: "score.queries")
            }
        }
        guard !records.isEmpty else { throw QuernError(.emptyInput, "score.queries \(path) holds no queries", field: "score.queries") }
        let (out, rows) = encoder.run(records)
        let h = encoder.model.dimension
        var vectors = [Float](repeating: 0, count: records.count * h)
        for (i, row) in rows.enumerated() {
            guard case .success(let k) = row else { continue }
            unitVector(out.embeddings, at: k * h, count: h, into: &vectors, at: i * h)
        }
        return (records.map(\.id), vectors)
    }

    /// Copies a vector scaled to unit length (cosine becomes a dot product).
    static func unitVector(_ v: [Float], at a: Int, count h: Int, into out: inout [Float], at b: Int) {
        var norm = 0.0
        for d in 0..<h { norm += Double(v[a + d]) * Double(v[a + d]) }
        let s = norm > 0 ? Float(1 / norm.squareRoot()) : 0
        for d in 0..<h { out[b + d] = v[a + d] * s }
    }

    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        let h = encoder.model.dimension
        switch mode {
        case .crossEncoder:
            let (out, rows) = encoder.run(batch, pairs: true)
            return zip(batch, rows).map { r, row in row.map { self.row(r.id, score: out.scores[$0]) } }
        case .pairs:
            // Both sides in one run: the texts, then their pairs (missing pairs fail the record).
            var sides: [Record] = []
            sides.reserveCapacity(batch.count * 2)
            var failures: [Int: QuernError] = [:]
            for (i, r) in batch.enumerated() {
                guard let b = r.pair else {
                    failures[i] = QuernError(.missingValue, "record has no pair text", line: r.line, member: r.member)
                    continue
                }
                var second = r
                second.text = b
                sides.append(r)
                sides.append(second)
            }
            let (out, rows) = encoder.run(sides)
            var k = 0
            return batch.indices.map { i in
                if let e = failures[i] { return .failure(e) }
                defer { k += 2 }
                return rows[k].flatMap { a in rows[k + 1].map { b in row(batch[i].id, score: Self.cosine(out.embeddings, a * h, b * h, h)) } }
            }
        case .queries(let ids, let queries, let topK):
            // Cosines of every text against every query in one GEMM: unit rows × unit queriesᵀ.
            let (out, rows) = encoder.run(batch)
            let q = ids.count, keep = min(topK, q)
            var units = [Float](repeating: 0, count: batch.count * h)
            for (i, row) in rows.enumerated() {
                if case .success(let k) = row { Self.unitVector(out.embeddings, at: k * h, count: h, into: &units, at: i * h) }
            }
            var sims = [Float](repeating: 0, count: batch.count * q)
            units.withUnsafeBufferPointer { u in
                sims.withUnsafeMutableBufferPointer { out in
                    queries.apply(u.baseAddress!, m: batch.count, bias: nil, activation: .none, into: out.baseAddress!, pool: encoder.pool)
                }
            }
            return zip(batch, rows).enumerated().map { i, pair in
                pair.1.map { _ in
                    let best = Self.top(keep, of: sims[(i * q)..<((i + 1) * q)])
                    scored += 1
                    sum += Double(sims[i * q + best[0]])
                    return ResultRow(id: pair.0.id, fields: [("matches", .strings(best.map { ids[$0] })),
                                                             ("scores", .floats(best.map { sims[i * q + $0] }))])
                }
            }
        }
    }

    /// Indices of the `k` largest values, best first; ties keep the earlier index.
    static func top(_ k: Int, of values: ArraySlice<Float>) -> [Int] {
        var best: [Int] = []
        best.reserveCapacity(k + 1)
        let base = values.startIndex
        for (j, v) in values.enumerated() {
            if best.count == k, let last = best.last, v <= values[base + last] { continue }
            var at = best.count
            while at > 0 && v > values[base + best[at - 1]] { at -= 1 }
            best.insert(j, at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }

    func row(_ id: String, score: Float) -> ResultRow {
        scored += 1
        sum += Double(score)
        return ResultRow(id: id, fields: [("score", .float(score))])
    }

    static func cosine(_ v: [Float], _ a: Int, _ b: Int, _ h: Int) -> Float {
        var dot = 0.0, na = 0.0, nb = 0.0
        for d in 0..<h {
            dot += Double(v[a + d]) * Double(v[b + d])
            na += Double(v[a + d]) * Double(v[a + d])
            nb += Double(v[b + d]) * Double(v[b + d])
        }
        return na > 0 && nb > 0 ? Float(dot / (na * nb).squareRoot()) : 0
    }

    var state: JSONValue { ["scored": .int(Int64(scored)), "sum": .double(sum)] }
    func restore(_ state: JSONValue) throws {
        scored = Int(state.objectValue?["scored"]?.intValue ?? 0)
        sum = state.objectValue?["sum"]?.doubleValue ?? 0
    }
    func metrics() -> JSONValue? {
        let mean = JSONValue.double(sum / Double(max(scored, 1)))
        if case .queries(let ids, _, let k) = mode {
            return ["scored": .int(Int64(scored)), "queries": .int(Int64(ids.count)), "top_k": .int(Int64(k)), "mean_best_score": mean]
        }
        return ["scored": .int(Int64(scored)), "mean_score": mean]
    }
}

/// `finetune` of a text model: a classification head (a linear layer, the multinomial
/// logistic regression of the encoder's sentence embeddings) trained on the frozen
/// encoder. Embeddings are computed once per job and cached in the job directory, so
/// epochs, and a resumed job, reuse them; the published model is the encoder's files
/// plus the head in `head/`, which `BertModel.load` picks up for predict and evaluate.
enum TextHead {
    static let cacheName = "embeddings.cache"

    /// The head's architecture and the training inputs: one embedding per good record,
    /// labels indexed by the sorted class names found in the records.
    static func prepare(manifest: Manifest, modelPath: String, inputPath: String, job: ActiveJob,
                        errors: ChunkedGzipWriter, log: JobLog) throws -> (StackConfig, ModelJobInput, cached: Bool) {
        let model = try BertModel.load(modelPath, precision: .fp32, maxLength: manifest.maxLength)
        var spec = manifest.recordSpec(text: true)
        spec.wantsLabel = true
        let stream = try RecordStream(path: inputPath, spec: spec, limits: manifest.limits.stream)
        var texts: [String] = [], names: [String] = []
        var out = ModelJobInput()
        while let item = try stream.next() {
            if StopSignal.requested { throw QuernError(.io, "stopped by signal while reading records") }
            switch item {
            case .record(let r):
                guard let text = r.text, let label = r.label else {
                    try out.reject(r.id, r.member, r.line, QuernError(.missingValue, r.text == nil ? "record has no text" : "record has no label"),
                                   errors: errors, maxErrors: manifest.limits.maxErrors)
                    continue
                }
                texts.append(text)
                names.append(label)
                out.counts.succeeded += 1
            case .failure(let f):
                try out.reject(f.id, f.member, f.line, f.error, errors: errors, maxErrors: manifest.limits.maxErrors)
            }
        }
        guard !texts.isEmpty else { throw QuernError(.emptyInput, "the input holds no usable records", field: "input.path") }
        let classes = Array(Set(names)).sorted()
        guard classes.count >= 2 else {
            throw QuernError(.invalidValue, "finetune needs at least two classes in input.label_field; found \(classes.first.map { "only \"\($0)\"" } ?? "none")", field: "input.label_field")
        }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        out.labels = names.map { index[$0]! }

        // Embeddings: from the cache when it was made by this model for these records.
        let h = model.dimension
        let cachePath = job.file(cacheName)
        var cached = false
        if let file = try? SafetensorsFile(path: cachePath), file.metadata["model_sha256"] == model.weightsSHA256,
           let e = try? file.float32("embeddings", shape: [texts.count, h]) {
            out.inputs = e.data
            cached = true
            log.log(.info, "embeddings from the job's cache", [("records", .int(Int64(texts.count)))])
        } else {
            let encoder = TextEncoder(model: model, batchSize: manifest.batchSize)
            out.inputs.reserveCapacity(texts.count * h)
            let window = TextEncoder.window(batchSize: manifest.batchSize)
            for start in stride(from: 0, to: texts.count, by: window) {
                if StopSignal.requested { throw QuernError(.io, "stopped by signal while computing embeddings") }
                let encodings = texts[start..<min(start + window, texts.count)].map(encoder.encode)
                out.inputs += model.run(encodings, batchSize: encoder.batchSize, pool: encoder.pool).embeddings
            }
            try Sys.writeFileAtomically(cachePath, Safetensors.encode(["embeddings": ([texts.count, h], out.inputs)],
                                                                      metadata: ["model_sha256": model.weightsSHA256]),
                                        durability: .content)
            log.log(.info, "embeddings computed and cached", [("records", .int(Int64(texts.count))), ("dimension", .int(Int64(h)))])
        }
        let config = StackConfig(family: "mlp", inputShape: [h], specs: [.linear(outFeatures: classes.count, activation: .none)],
                                 labels: classes)
        return (config, out, cached)
    }

    /// `model/`: copies of the encoder's files (copies, not links: the published model
    /// must not change when its source does) and the trained head in `head/`, built in
    /// `model.partial/` then renamed.
    static func publish(job: ActiveJob, encoder: String, head: StackConfig, tensors: [String: Tensor],
                        normalizer: ([Float], [Float])?) throws {
        let partial = job.file("model.partial"), final = job.file("model")
        try? Sys.removeTree(partial)
        try Sys.mkdirs(partial)
        func copyTree(_ from: String, _ to: String) throws {
            for name in try Sys.listDirectory(from) where name != BertModel.headDirectory && !name.hasPrefix(".") {
                let source = Path.join(from, name), target = Path.join(to, name)
                if Sys.isDirectory(source) {
                    try Sys.mkdirs(target)
                    try copyTree(source, target)
                } else if Sys.isRegularFile(source) {
                    try Sys.writeFile(target, Sys.readFile(source, limit: 1 << 34))
                }
            }
        }
        try copyTree(encoder, partial)
        let headDir = Path.join(partial, BertModel.headDirectory)
        try Sys.mkdirs(headDir)
        try ModelJobInput.writeModel(into: headDir, config: head, tensors: tensors.mapValues { ($0.shape, .f32($0.data)) },
                                     normalizer: normalizer)
        try? Sys.removeTree(final)
        try Sys.rename(partial, final)
    }
}
