import QuernCore
import QuernData
import QuernTasks

/// What a streaming job writes while it runs, as one unit: the results file, the error
/// file and, for NPY output, the vector data, each a gzip that can be resumed at a
/// recorded position, with the counts and the CSV header. They are checkpointed together
/// and published together, so a resumed run writes exactly the bytes an uninterrupted one
/// would.
final class RecordOutputs {
    let job: ActiveJob
    let format: Manifest.OutputFormat
    let level: Int
    let results: ChunkedGzipWriter
    let errors: RecordErrors
    let vectors: VectorOutput?
    var encoder: RowEncoder
    /// `output.include_fields`: each record's `carried` values, written after the task's fields.
    let includeFields: [String]
    private(set) var succeeded: Int
    /// Result lines written: one per succeeded record, more when a record gives several
    /// (embed's row per chunk); an NPY row's index.
    private(set) var lines: Int
    /// Stream items fully written (records and bad records): where a resumed run starts.
    var consumed: Int
    /// How many times the job has been resumed, this run included.
    let resumes: Int

    var resultsName: String { JobRunner.resultsNames[format]! }
    var checkpointPath: String { job.file("checkpoint.json") }

    /// The outputs of `job`, continued from `checkpoint` when there is one.
    init(
        job: ActiveJob, manifest: Manifest, checkpoint: Checkpoint?, errorLine: RecordErrors.LineFormat? = nil,
        ranges: (min: [Float], max: [Float])? = nil
    ) throws {
        self.job = job
        format = manifest.output.format
        level = manifest.output.compressionLevel
        let resultsName = JobRunner.resultsNames[format]!
        results = try ChunkedGzipWriter(
            path: job.file(resultsName + ".partial"), level: level,
            resume: checkpoint.map { ($0.results, $0.resultsPending) })
        let writer = try ChunkedGzipWriter(
            path: job.file(JobRunner.errorsName + ".partial"), level: level,
            resume: checkpoint.map { ($0.errors, $0.errorsPending) })
        errors = RecordErrors(
            writer: writer, maxErrors: manifest.limits.maxErrors, count: checkpoint?.counts.failed ?? 0,
            format: errorLine)
        vectors =
            format == .npy
            ? try VectorOutput(
                path: job.file(VectorOutput.name + ".data.partial"), level: level, dtype: manifest.output.dtype,
                resume: checkpoint?.vectors, dimension: checkpoint?.vectorDimension, ranges: ranges)
            : nil
        encoder = RowEncoder(format: format, header: checkpoint?.csvHeader)
        includeFields = manifest.output.includeFields
        succeeded = checkpoint?.counts.succeeded ?? 0
        lines = checkpoint?.lines ?? succeeded
        consumed = checkpoint?.consumed ?? 0
        resumes = (checkpoint?.resumes ?? -1) + 1
    }

    /// The checkpoint an earlier owner of `job` left, if it can be resumed from: readable,
    /// with its partial results (and vectors, for NPY) still there.
    static func checkpoint(of job: ActiveJob, format: Manifest.OutputFormat, log: JobLog) -> Checkpoint? {
        let path = job.file("checkpoint.json")
        guard Sys.exists(path) else { return nil }
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint.load(path)
        } catch {
            log.log(
                .warning, "checkpoint unreadable; restarting the job from the beginning",
                [("error", .string("\(error)"))])
            return nil
        }
        guard Sys.exists(job.file(JobRunner.resultsNames[format]! + ".partial")) else { return nil }
        if format == .npy && checkpoint.vectors == nil { return nil }
        return checkpoint
    }

    /// One window's outcomes in input order: rows to the results (formatted on all
    /// threads for JSONL), bad records to the error file.
    func write(_ batch: [Record], _ outcomes: [Result<ResultRow, QuernError>]) throws {
        let outcomes = try included(batch, outcomes)
        let encoded = RowEncoder.jsonLinesInParallel(outcomes, encoder) ?? []
        for (i, (record, outcome)) in zip(batch, outcomes).enumerated() {
            switch outcome {
            case .success(let row):
                if !encoded.isEmpty {
                    try results.append(encoded[i])
                    lines += 1 + row.following.count
                } else {
                    for var line in [row] + row.following {
                        if let vectors, case .floats(let v)? = line.fields.first?.1 {
                            line.fields = try vectors.append(v, row: lines) + line.fields.dropFirst()
                        }
                        try results.append(encoder.encode(line))
                        lines += 1
                    }
                }
                succeeded += 1
            case .failure(let e):
                try errors.record(record, e)
            }
        }
        if let last = batch.last { consumed = last.index + 1 }
    }

    /// The rows with each record's `include_fields` values after the task's fields. A
    /// name the task writes itself fails the job on its first row, naming both.
    func included(_ batch: [Record], _ outcomes: [Result<ResultRow, QuernError>]) throws -> [Result<
        ResultRow, QuernError
    >] {
        guard !includeFields.isEmpty else { return outcomes }
        return try zip(batch, outcomes).map { record, outcome in
            guard case .success(var row) = outcome else { return outcome }
            func carry(_ row: inout ResultRow) throws {
                for (name, value) in zip(includeFields, record.carried) {
                    if row.fields.contains(where: { $0.0 == name }) {
                        throw QuernError(
                            .invalidValue,
                            "output.include_fields names \"\(name)\", which this task writes in every result line; leave it out or rename the input field",
                            field: "output.include_fields")
                    }
                    // A string stays a plain CSV cell; anything else is its compact JSON.
                    row.fields.append((name, value.stringValue.map { .string($0) } ?? .json(value)))
                }
            }
            try carry(&row)
            // Every row of the record (embed's row per chunk) carries them.
            for i in row.following.indices { try carry(&row.following[i]) }
            return .success(row)
        }
    }

    /// A bad record the stream itself reported.
    func write(_ failure: RecordFailure) throws {
        try errors.record(failure)
        consumed = failure.index + 1
    }

    /// Every file synced, then `checkpoint.json` naming where each stands.
    func checkpoint(taskState: JSONValue) throws {
        try results.sync()
        try errors.writer.sync()
        try vectors?.data.sync()
        let c = Checkpoint(
            consumed: consumed, resumes: resumes, counts: Counts(succeeded: succeeded, failed: errors.count),
            results: results.position, resultsPending: results.pending, errors: errors.writer.position,
            errorsPending: errors.writer.pending, csvHeader: encoder.header, taskState: taskState,
            vectors: vectors.map { ($0.data.position, $0.data.pending) }, vectorDimension: vectors?.dimension,
            lines: lines)
        try c.save(checkpointPath)
    }

    /// Finishes every file and gives it its final name; returns the names.
    func publish() throws -> [String] {
        try results.finish()
        try errors.writer.finish()
        try Sys.rename(job.file(resultsName + ".partial"), job.file(resultsName))
        try Sys.rename(job.file(JobRunner.errorsName + ".partial"), job.file(JobRunner.errorsName))
        try vectors?.publish(rows: lines, to: job.file(VectorOutput.name), level: level)
        return JobRunner.outputNames(format)
    }
}
