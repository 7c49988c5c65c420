import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// `score`: each text against its pair (`input.pair_field`: the cosine of the two
/// embeddings, or a cross-encoder's single output), or against every query of a query
/// file (`score.queries`: cosine, best `top_k` kept, best first).
public enum ScoreTask: JobTask {
    public static let name = "score"
    public static let blocks: [any ManifestBlock.Type] = [Scoring.self]

    /// The `score` block.
    public struct Scoring: ManifestBlock, Equatable {
        public static let key = "score"
        public static let pathFields = ["queries"]
        /// A JSONL, CSV or TXT file of query texts (a path, resolved like input.path).
        public var queries: String?
        public var topK = 10
        /// Fields of the query file; default to input.text_field / input.id_field.
        public var textField: String?
        public var idField: String?

        public init() {}

        public init(from b: inout StrictObject) throws {
            queries = try b.string("queries")
            topK = try b.int("top_k", range: 1...10_000) ?? topK
            textField = try b.string("text_field")
            idField = try b.string("id_field")
        }
    }

    public static func check(_ manifest: Manifest) throws {
        try EmbedTask.checkTexts(manifest)
        let scoring = manifest.block(Scoring.self)
        switch (manifest.input.pairField, scoring.queries) {
        case (nil, nil):
            throw QuernError(
                .missingField,
                "task score needs input.pair_field (score each text against its pair) or score.queries (each text against a query file)",
                field: "score.queries")
        case (.some, .some):
            throw QuernError(
                .invalidValue, "task score takes input.pair_field or score.queries, not both", field: "score.queries")
        default: break
        }
        if manifest.input.pairField != nil && manifest.input.format == .txt {
            throw QuernError(
                .unsupportedFormat, "pairs need two fields: use jsonl or csv with input.pair_field, not txt",
                field: "input.format")
        }
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        let (model, encoder) = try EmbedTask.encoder(job)
        let m = job.manifest
        let texts = try TextRecords(m, model: encoder)
        let scoring = m.block(Scoring.self)
        let mode: Scorer.Mode
        if let queries = scoring.queries {
            let path = try job.policy.resolve(queries, field: "score.queries")
            guard let format = Manifest.inferFormat(path), Manifest.textFormats.contains(format) else {
                throw QuernError(
                    .unsupportedFormat, "score.queries must be a .jsonl, .csv or .txt file of texts",
                    field: "score.queries")
            }
            var spec = RecordSpec(
                format: format, idField: scoring.idField ?? m.input.idField,
                textField: scoring.textField ?? m.input.textField ?? "text")
            spec.wantsText = true
            let q = try Scorer.queries(path: path, spec: spec, texts: texts, limits: m.limits.stream)
            let vectors = LinearOperator.fp32(
                PackedWeights(Tensor(shape: [q.ids.count, encoder.dimension], data: q.vectors)))
            mode = .queries(ids: q.ids, vectors: vectors, topK: scoring.topK)
        } else if let classifier = model.capability(SequenceClassifier.self) {
            guard classifier.outputs == 1 else {
                throw QuernError(
                    .modelInvalid,
                    "\(job.modelPath) has a \(classifier.outputs)-class head; score of pairs takes a bi-encoder (no head) or a cross-encoder (one output). Use predict for its classes",
                    field: "model")
            }
            mode = .crossEncoder
        } else {
            mode = .pairs
        }
        return .records(Scorer(model: model, spec: m.recordSpec(texts: true, labels: false), texts: texts, mode: mode))
    }

    /// Scored counts summed, mean scores weighted by them.
    public static func combineMetrics(_ parts: [JSONObject]) -> JSONObject? {
        parts.isEmpty ? nil : weightedMeans(parts, count: "scored", means: ["mean_score", "mean_best_score"])
    }
}

final class Scorer: RecordTask {
    enum Mode {
        case pairs
        case crossEncoder
        /// The queries' unit vectors as the weights of a linear map (one output per query).
        case queries(ids: [String], vectors: LinearOperator, topK: Int)
    }

    let model: any Model
    let spec: RecordSpec
    let texts: TextRecords
    let mode: Mode
    var inputSize: Int? { nil }
    var window: Int { texts.window }
    private var scored = 0, sum = 0.0

    init(model: any Model, spec: RecordSpec, texts: TextRecords, mode: Mode) {
        self.model = model
        self.spec = spec
        self.texts = texts
        self.mode = mode
    }

    /// Reads and embeds a query file. Queries stay in memory, so there is a cap.
    static func queries(
        path: String, spec: RecordSpec, texts: TextRecords, limits: StreamLimits,
        maxQueries: Int = 1_000_000
    ) throws -> (ids: [String], vectors: [Float]) {
        let stream = try RecordStream(path: path, spec: spec, limits: limits)
        var records: [Record] = []
        while let item = try stream.next() {
            switch item {
            case .record(let r):
                records.append(r)
                if records.count > maxQueries {
                    throw QuernError(
                        .invalidValue, "score.queries holds more than \(maxQueries) queries; split the job",
                        field: "score.queries")
                }
            case .failure(let f):
                throw QuernError(
                    f.error.code, "score.queries \(f.member), line \(f.line ?? 0): \(f.error.message)",
                    field: "score.queries")
            }
        }
        guard !records.isEmpty else {
            throw QuernError(.emptyInput, "score.queries \(path) holds no queries", field: "score.queries")
        }
        let (out, rows, _) = texts.run(records)
        let h = texts.model.dimension
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
        let h = texts.model.dimension
        switch mode {
        case .crossEncoder:
            let (out, rows, _) = texts.run(batch, pairs: true)
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
            let (out, rows, _) = texts.run(sides)
            var k = 0
            return batch.indices.map { i in
                if let e = failures[i] { return .failure(e) }
                defer { k += 2 }
                return rows[k].flatMap { a in
                    rows[k + 1].map { b in row(batch[i].id, score: Self.cosine(out.embeddings, a * h, b * h, h)) }
                }
            }
        case .queries(let ids, let queries, let topK):
            // Cosines of every text against every query in one GEMM: unit rows × unit queriesᵀ.
            let (out, rows, _) = texts.run(batch)
            let q = ids.count, keep = min(topK, q)
            var units = [Float](repeating: 0, count: batch.count * h)
            for (i, row) in rows.enumerated() {
                if case .success(let k) = row {
                    Self.unitVector(out.embeddings, at: k * h, count: h, into: &units, at: i * h)
                }
            }
            var sims = [Float](repeating: 0, count: batch.count * q)
            units.withUnsafeBufferPointer { u in
                sims.withUnsafeMutableBufferPointer { out in
                    queries.apply(
                        u.baseAddress!, m: batch.count, bias: nil, activation: .none, into: out.baseAddress!,
                        pool: texts.pool)
                }
            }
            return zip(batch, rows).enumerated().map { i, pair in
                pair.1.map { _ in
                    let best = Self.top(keep, of: sims[(i * q)..<((i + 1) * q)])
                    scored += 1
                    sum += Double(sims[i * q + best[0]])
                    return ResultRow(
                        id: pair.0.id,
                        fields: [
                            ("matches", .strings(best.map { ids[$0] })),
                            ("scores", .floats(best.map { sims[i * q + $0] }))
                        ])
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
            return [
                "scored": .int(Int64(scored)), "queries": .int(Int64(ids.count)), "top_k": .int(Int64(k)),
                "mean_best_score": mean
            ]
        }
        return ["scored": .int(Int64(scored)), "mean_score": mean]
    }
}
