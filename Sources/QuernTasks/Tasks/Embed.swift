import QuernCore
import QuernData
import QuernModels

/// `embed`: one vector per text, pooled and normalised as the model directory says.
/// Written as JSON arrays, CSV columns, or (`output.format: npy`) one NPY array with the
/// ids and row numbers in the results file.
public enum EmbedTask: JobTask {
    public static let name = "embed"
    public static let writesVectors = true
    /// Vectors of floats compress little at any level: level 6 is 4× slower than level 1
    /// for a file 13 % smaller.
    public static let defaultCompressionLevel = 1

    public static func check(_ manifest: Manifest) throws { try checkTexts(manifest) }

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
        return .records(
            Embedder(
                model: model, spec: m.recordSpec(texts: true, labels: false),
                texts: TextRecords(model: encoder, batchSize: m.batchSize)))
    }
}

final class Embedder: RecordTask {
    let model: any Model
    let spec: RecordSpec
    let texts: TextRecords
    var inputSize: Int? { nil }
    var window: Int { texts.window }

    init(model: any Model, spec: RecordSpec, texts: TextRecords) {
        self.model = model
        self.spec = spec
        self.texts = texts
    }

    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        let (out, rows) = texts.run(batch)
        let h = texts.model.dimension
        return zip(batch, rows).map { r, row in
            row.map {
                ResultRow(id: r.id, fields: [("embedding", .floats(Array(out.embeddings[($0 * h)..<(($0 + 1) * h)])))])
            }
        }
    }

    var state: JSONValue { .null }
    func restore(_ state: JSONValue) throws {}
    func metrics() -> JSONValue? {
        ["dimension": .int(Int64(texts.model.dimension)), "max_length": .int(Int64(texts.model.maxLength))]
    }
}
