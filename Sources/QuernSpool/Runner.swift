import Foundation
import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// Per-job log: JSON lines in the job's `job.log`, echoed to the process log.
final class JobLog: @unchecked Sendable {
    let fd: Int32
    let id: String
    init(path: String, id: String) throws {
        fd = try Sys.open(path, O_WRONLY | O_CREAT | O_APPEND)
        self.id = id
    }
    deinit { Sys.close(fd) }

    func log(_ level: Log.Level, _ message: String, _ fields: [(String, JSONValue)] = []) {
        let all = [("job", JSONValue.string(id))] + fields
        try? Sys.writeAll(fd, Log.line(level, message, all))
        Log.shared.log(level, message, all)
    }
    func sync() { try? Sys.fsync(fd) }
}

/// Rewrites `lease.json` every few seconds with a fresh heartbeat and the job's
/// progress, from its own thread, so `quern status` and other hosts see a live owner.
final class Heartbeat: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let queue = DispatchQueue(label: "quern.heartbeat")
    private let lock = NSLock()
    private var progress: JSONValue = .null

    init(spool: Spool, dir: String, started: Double, interval: Double) {
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            try? spool.writeLease(in: dir, started: started, progress: self.current)
        }
        timer.resume()
    }

    var current: JSONValue {
        lock.lock(); defer { lock.unlock() }
        return progress
    }

    func update(_ p: JSONValue) {
        lock.lock(); defer { lock.unlock() }
        progress = p
    }

    /// Stops the timer and waits out any write in flight: after this returns nothing
    /// touches the job directory, so it can be renamed.
    func stop() {
        timer.cancel()
        queue.sync {}
    }
}

/// How a job run ended.
public enum JobOutcome: Sendable, Equatable {
    case done(String)
    case failed(String, QuernError)
    /// Stopped by SIGTERM/SIGINT after a checkpoint; the job stays in `active/`.
    case interrupted
}

/// Runs one active job from (possibly) its last checkpoint to `done/` or `failed/`.
public final class JobRunner {
    let spool: Spool
    let policy: PathPolicy
    let time: any TimeSource
    /// Seconds between checkpoints; 0 checkpoints after every batch.
    public var checkpointInterval: Double = 2
    public var heartbeatInterval: Double = 2
    /// The error file of the job being run, finished and kept if the job fails.
    private var openErrors: ChunkedGzipWriter?

    public init(spool: Spool, policy: PathPolicy, time: any TimeSource = SystemTime()) {
        self.spool = spool
        self.policy = policy
        self.time = time
        if let s = Sys.environment("QUERN_CHECKPOINT_SECONDS"), let v = Double(s), v >= 0 { checkpointInterval = v }
    }

    static let resultsNames: [Manifest.OutputFormat: String] = [.jsonl: "results.jsonl.gz", .csv: "results.csv.gz", .npy: "results.jsonl.gz"]
    static let errorsName = "errors.jsonl.gz"

    /// The files a record job publishes: results, errors and, for NPY output, the vectors.
    static func outputNames(_ format: Manifest.OutputFormat) -> [String] {
        [resultsNames[format]!, errorsName] + (format == .npy ? [VectorOutput.name] : [])
    }

    /// The report's `outputs`: each file's sha256 and size.
    static func outputDigests(_ names: [String], in dir: String) throws -> JSONObject {
        var outputs = JSONObject()
        for name in names {
            let d = try SHA256Stream.file(Path.join(dir, name))
            outputs[name] = ["sha256": .string(d.sha256), "bytes": .int(Int64(d.bytes))]
        }
        return outputs
    }

    /// JSONL lines of a window's rows, formatted on all threads: an embed window is
    /// hundreds of thousands of floats, and formatting them on the writing thread alone
    /// left the other cores idle between windows. Nil for CSV (its header is state) and
    /// NPY (the vectors go to their own file first), which format in order.
    static func encodeInParallel(_ outcomes: [Result<ResultRow, QuernError>], _ encoder: RowEncoder,
                                 pool: ThreadPool = .shared) -> [[UInt8]]? {
        guard encoder.format == .jsonl, pool.threads > 1, outcomes.count >= 64 else { return nil }
        var lines = [[UInt8]](repeating: [], count: outcomes.count)
        let chunk = (outcomes.count + pool.threads * 4 - 1) / (pool.threads * 4)
        lines.withUnsafeMutableBufferPointer { out in
            pool.parallelFor((outcomes.count + chunk - 1) / chunk) { c in
                for i in (c * chunk)..<min(outcomes.count, (c + 1) * chunk) {
                    if case .success(let row) = outcomes[i] { out[i] = RowEncoder.jsonLine(row) }
                }
            }
        }
        return lines
    }

    /// One line of errors.jsonl.gz: where the bad record was and what was wrong with it.
    static func errorLine(id: String?, member: String, line: Int?, _ e: QuernError) -> [UInt8] {
        var o = JSONObject()
        if let id { o["id"] = .string(id) }
        o["member"] = .string(member)
        if let line { o["line"] = .int(Int64(line)) }
        o["code"] = .string(e.code.rawValue)
        o["message"] = .string(e.message)
        var entry = JSONWriter.compact(.object(o))
        entry.append(0x0A)
        return entry
    }

    public func run(_ job: ActiveJob) -> JobOutcome {
        let log: JobLog
        do {
            log = try JobLog(path: job.file("job.log"), id: job.id)
        } catch {
            return finishFailed(job, QuernError(.io, "cannot open job.log: \(error)"), log: nil)
        }
        do {
            return try execute(job, log: log)
        } catch let e as QuernError {
            return finishFailed(job, e, log: log)
        } catch let e as SystemError {
            return finishFailed(job, QuernError(.io, e.description), log: log)
        } catch {
            return finishFailed(job, QuernError(.internalError, "\(error)"), log: log)
        }
    }

    func finishFailed(_ job: ActiveJob, _ error: QuernError, log: JobLog?) -> JobOutcome {
        log?.log(.error, "job failed: \(error.message)", [("code", .string(error.code.rawValue))])
        log?.sync()
        // Bad records seen before the failure are kept: they often explain it.
        if let errors = openErrors, (try? errors.finish()) != nil {
            try? Sys.rename(errors.path, job.file(Self.errorsName))
        }
        openErrors = nil
        do {
            let target = try spool.fail(dir: job.dir, id: job.id, error: error,
                                        keep: ["manifest.json", "job.log", Self.errorsName])
            return .failed(target, error)
        } catch {
            Log.shared.error("cannot move job \(job.id) to failed/: \(error)")
            return .failed(job.dir, QuernError(.io, "\(error)"))
        }
    }

    func execute(_ job: ActiveJob, log: JobLog) throws -> JobOutcome {
        let started = time.monotonic()
        let startedAt = time.now()
        let manifest = try Manifest.decode(Sys.readFile(job.manifestPath))
        let inputPath = try policy.resolve(manifest.input.path, field: "input.path")
        let modelPath = try policy.resolve(manifest.model!, field: "model")
        guard Sys.isRegularFile(inputPath) else {
            throw QuernError(.fileNotFound, "input.path \(inputPath) is not a regular file", field: "input.path")
        }
        if manifest.task.readsWholeInput {
            let heartbeat = Heartbeat(spool: spool, dir: job.dir, started: startedAt, interval: heartbeatInterval)
            defer { heartbeat.stop() }
            // These tasks re-read their records from the start on resume, so the error file starts anew.
            let errors = try ChunkedGzipWriter(path: job.file(Self.errorsName + ".partial"), level: manifest.output.compressionLevel)
            openErrors = errors
            let outcome: JobOutcome
            switch manifest.task {
            case .finetune:
                outcome = try FinetuneJob(job: job, manifest: manifest, log: log, time: time)
                    .run(inputPath: inputPath, modelPath: modelPath, spool: spool, heartbeat: heartbeat, errors: errors)
            case .prune:
                log.log(.info, "job started", [("task", "prune"), ("model", .string(modelPath))])
                outcome = try PruneJob(job: job, manifest: manifest, log: log, time: time)
                    .run(inputPath: inputPath, modelPath: modelPath, spool: spool, heartbeat: heartbeat, errors: errors)
            default:
                log.log(.info, "job started", [("task", .string(manifest.task.rawValue)), ("model", .string(modelPath))])
                outcome = try QuantizeJob(job: job, manifest: manifest, log: log, time: time)
                    .run(inputPath: inputPath, modelPath: modelPath, spool: spool, errors: errors)
            }
            openErrors = nil
            return outcome
        }
        let loadStart = time.monotonic()
        let model = try RecordJob.load(manifest: manifest, modelPath: modelPath, policy: policy)
        let loadSeconds = time.monotonic() - loadStart
        let task = model.task

        // Resume from the checkpoint an earlier owner left, if any.
        let resultsName = Self.resultsNames[manifest.output.format]!
        let checkpointPath = job.file("checkpoint.json")
        var checkpoint: Checkpoint?
        if Sys.exists(checkpointPath) {
            do {
                checkpoint = try Checkpoint.load(checkpointPath)
            } catch {
                log.log(.warning, "checkpoint unreadable; restarting the job from the beginning", [("error", .string("\(error)"))])
            }
        }
        if checkpoint != nil && !Sys.exists(job.file(resultsName + ".partial")) { checkpoint = nil }
        if manifest.output.format == .npy && checkpoint?.vectors == nil { checkpoint = nil }
        let resumes = (checkpoint?.resumes ?? -1) + 1
        if let c = checkpoint {
            try task.restore(c.taskState)
            log.log(.info, "resuming from checkpoint", [("records_done", .int(Int64(c.consumed)))])
        } else {
            log.log(.info, "job started", [("task", .string(manifest.task.rawValue)), ("input", .string(inputPath)),
                                           ("model", .string(modelPath))])
        }
        let results = try ChunkedGzipWriter(path: job.file(resultsName + ".partial"), level: manifest.output.compressionLevel,
                                            resume: checkpoint.map { ($0.results, $0.resultsPending) })
        let errors = try ChunkedGzipWriter(path: job.file(Self.errorsName + ".partial"), level: manifest.output.compressionLevel,
                                           resume: checkpoint.map { ($0.errors, $0.errorsPending) })
        openErrors = errors
        let vectors = manifest.output.format == .npy
            ? try VectorOutput(path: job.file(VectorOutput.name + ".data.partial"), level: manifest.output.compressionLevel,
                               dtype: manifest.output.dtype, resume: checkpoint?.vectors, dimension: checkpoint?.vectorDimension)
            : nil
        var encoder = RowEncoder(format: manifest.output.format, header: checkpoint?.csvHeader)
        var counts = checkpoint?.counts ?? Counts()
        let skip = checkpoint?.consumed ?? 0

        // A shard of a cluster job reads only its share (see ClusterJob).
        let shard = try ShardAssignment.load(job.file(ShardAssignment.fileName))
        let stream = try RecordStream(path: inputPath, spec: model.spec, limits: manifest.limits.stream,
                                      selection: shard.map { $0.plan.selection($0.shard) } ?? .all)
        let heartbeat = Heartbeat(spool: spool, dir: job.dir, started: startedAt, interval: heartbeatInterval)
        defer { heartbeat.stop() }

        func recordError(_ index: Int, id: String?, member: String, line: Int?, _ e: QuernError) throws {
            counts.failed += 1
            try errors.append(Self.errorLine(id: id, member: member, line: line, e))
            if counts.failed > manifest.limits.maxErrors {
                let at = line.map { "\(member), line \($0)" } ?? member
                throw QuernError(.tooManyErrors, "more than limits.max_errors (\(manifest.limits.maxErrors)) bad records; the last, at \(at): \(e.message). See errors.jsonl.gz, fix the input or raise the limit", field: "limits.max_errors")
            }
        }

        var consumed = skip
        var lastCheckpoint = time.monotonic()
        var lastProgress = 0.0
        let processStart = time.monotonic()
        var batch: [Record] = []
        batch.reserveCapacity(task.window)

        func writeCheckpoint() throws {
            try results.sync()
            try errors.sync()
            try vectors?.data.sync()
            let c = Checkpoint(consumed: consumed, resumes: resumes, counts: counts, results: results.position,
                               resultsPending: results.pending, errors: errors.position, errorsPending: errors.pending,
                               csvHeader: encoder.header, taskState: task.state,
                               vectors: vectors.map { ($0.data.position, $0.data.pending) }, vectorDimension: vectors?.dimension)
            try c.save(checkpointPath)
            lastCheckpoint = time.monotonic()
        }

        func flush() throws {
            guard !batch.isEmpty else { return }
            let outcomes = task.run(batch)
            let encoded = Self.encodeInParallel(outcomes, encoder) ?? []
            for (i, (record, outcome)) in zip(batch, outcomes).enumerated() {
                switch outcome {
                case .success(var row):
                    if !encoded.isEmpty {
                        try results.append(encoded[i])
                    } else {
                        if let vectors, case .floats(let v)? = row.fields.first?.1 {
                            row.fields = try vectors.append(v, row: counts.succeeded)
                        }
                        try results.append(encoder.encode(row))
                    }
                    counts.succeeded += 1
                case .failure(let e):
                    try recordError(record.index, id: record.id, member: record.member, line: record.line, e)
                }
            }
            consumed = batch.last!.index + 1
            batch.removeAll(keepingCapacity: true)
            let now = time.monotonic()
            let progress = stream.progress
            heartbeat.update(["records": .int(Int64(counts.succeeded + counts.failed)), "bytes_read": .int(Int64(progress.done)),
                              "bytes_total": .int(Int64(progress.total))])
            if Log.shared.human && now - lastProgress > 0.2 {
                lastProgress = now
                let rate = Double(counts.succeeded + counts.failed - skip) / max(now - processStart, 1e-6)
                Log.shared.progress("\(job.id) " + progressBar(fraction: Double(progress.done) / Double(max(progress.total, 1)),
                                                               records: counts.succeeded + counts.failed, rate: rate))
            }
            if now - lastCheckpoint >= checkpointInterval { try writeCheckpoint() }
        }

        while let item = try stream.next() {
            if StopSignal.requested { break }
            switch item {
            case .record(let r):
                if r.index < skip { continue }
                batch.append(r)
                if batch.count >= task.window { try flush() }
            case .failure(let f):
                if f.index < skip { continue }
                try flush()  // keep error order equal to input order
                try recordError(f.index, id: f.id, member: f.member, line: f.line, f.error)
                consumed = f.index + 1
            }
        }
        if StopSignal.requested {
            // Finish the batch in hand, checkpoint, and leave the job in active/ for the next start.
            try flush()
            try writeCheckpoint()
            Log.shared.endProgress()
            openErrors = nil
            log.log(.info, "stopped by signal; checkpointed", [("records_done", .int(Int64(consumed)))])
            log.sync()
            return .interrupted
        }
        try flush()
        Log.shared.endProgress()
        heartbeat.stop()
        if counts.succeeded + counts.failed == 0 && shard == nil {
            throw QuernError(.emptyInput, stream.membersRead == 0 && manifest.input.members != nil
                             ? "no archive member matches input.members \"\(manifest.input.members!)\""
                             : "the input holds no records", field: stream.membersRead == 0 && manifest.input.members != nil ? "input.members" : "input.path")
        }

        // Publish: finish both files, name them, write the report, one rename to done/.
        try results.finish()
        try errors.finish()
        openErrors = nil
        try Sys.rename(job.file(resultsName + ".partial"), job.file(resultsName))
        try Sys.rename(job.file(Self.errorsName + ".partial"), job.file(Self.errorsName))
        try vectors?.publish(rows: counts.succeeded, to: job.file(VectorOutput.name), level: manifest.output.compressionLevel)
        let outputNames = Self.outputNames(manifest.output.format)
        let processSeconds = time.monotonic() - processStart
        let outputs = try Self.outputDigests(outputNames, in: job.dir)
        let wall = time.monotonic() - started
        let done = counts.succeeded + counts.failed - skip
        var report = JSONObject()
        report["id"] = .string(job.id)
        report["task"] = .string(manifest.task.rawValue)
        report["status"] = "done"
        report["model"] = ["path": .string(modelPath), "family": .string(model.family),
                           "sha256": .string(model.weightsSHA256), "bytes": .int(Int64(model.weightsBytes))]
        report["precision"] = .string(manifest.precision.rawValue)
        report["input"] = ["path": .string(inputPath), "bytes": .int(Int64(Sys.fileSize(path: inputPath))),
                           "format": .string(manifest.input.format.rawValue), "members": .int(Int64(stream.membersRead))]
        report["records"] = ["read": .int(Int64(counts.succeeded + counts.failed)), "succeeded": .int(Int64(counts.succeeded)),
                             "failed": .int(Int64(counts.failed))]
        report["timings"] = ["started_at": .string(Timestamp.iso8601(startedAt)), "finished_at": .string(Timestamp.iso8601(time.now())),
                             "wall_seconds": .double(wall), "model_load_seconds": .double(loadSeconds),
                             "process_seconds": .double(processSeconds)]
        report["throughput"] = ["records_per_second": .double(Double(done) / max(processSeconds, 1e-9))]
        if let m = task.metrics() { report["metrics"] = m }
        report["outputs"] = .object(outputs)
        report["resumed"] = .int(Int64(resumes))
        if let shard { report["shard"] = shard.json }
        report["host"] = .string(Sys.hostname)
        try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(.object(report)))
        log.log(.info, "job done", [("records", .int(Int64(counts.succeeded))), ("errors", .int(Int64(counts.failed))),
                                    ("seconds", .double((wall * 1000).rounded() / 1000))])
        let target = try spool.complete(job, keep: Set(outputNames + ["manifest.json", "report.json", "job.log"]
                                                       + (shard == nil ? [] : [ShardAssignment.fileName])))
        return .done(target)
    }
}

struct Counts: Equatable {
    var succeeded = 0
    var failed = 0
}

/// The resume point of a job: how many stream items are fully written, where each
/// output file stands, the output bytes not yet compressed, and the task's totals.
struct Checkpoint {
    var consumed: Int
    var resumes: Int
    var counts: Counts
    var results: GzipPosition
    var resultsPending: [UInt8]
    var errors: GzipPosition
    var errorsPending: [UInt8]
    var csvHeader: [String]?
    var taskState: JSONValue
    /// `output.format: npy`: where the vector data stands, and the vectors' length.
    var vectors: (GzipPosition, [UInt8])? = nil
    var vectorDimension: Int? = nil

    func save(_ path: String) throws {
        var o = JSONObject()
        o["version"] = 1
        o["consumed"] = .int(Int64(consumed))
        o["resumes"] = .int(Int64(resumes))
        o["succeeded"] = .int(Int64(counts.succeeded))
        o["failed"] = .int(Int64(counts.failed))
        o["results"] = results.json
        o["results_pending"] = .string(Data(resultsPending).base64EncodedString())
        o["errors"] = errors.json
        o["errors_pending"] = .string(Data(errorsPending).base64EncodedString())
        if let h = csvHeader { o["csv_header"] = .array(h.map { .string($0) }) }
        o["task"] = taskState
        if let (position, pending) = vectors {
            o["vectors"] = position.json
            o["vectors_pending"] = .string(Data(pending).base64EncodedString())
            o["vector_dimension"] = vectorDimension.map { .int(Int64($0)) } ?? .null
        }
        try Sys.writeFileAtomically(path, JSONWriter.compact(.object(o)), durability: .content)
    }

    static func load(_ path: String) throws -> Checkpoint {
        let bad = QuernError(.internalError, "checkpoint \(path) is unreadable; delete it to restart the job from the beginning")
        guard let o = try JSONParser.parse(Sys.readFile(path)).objectValue,
              let consumed = o["consumed"]?.intValue, let results = o["results"], let errors = o["errors"],
              let rp = o["results_pending"]?.stringValue.flatMap({ Data(base64Encoded: $0) }),
              let ep = o["errors_pending"]?.stringValue.flatMap({ Data(base64Encoded: $0) }) else { throw bad }
        return Checkpoint(consumed: Int(consumed), resumes: Int(o["resumes"]?.intValue ?? 0),
                          counts: Counts(succeeded: Int(o["succeeded"]?.intValue ?? 0), failed: Int(o["failed"]?.intValue ?? 0)),
                          results: try GzipPosition(json: results), resultsPending: [UInt8](rp),
                          errors: try GzipPosition(json: errors), errorsPending: [UInt8](ep),
                          csvHeader: o["csv_header"]?.arrayValue?.compactMap(\.stringValue), taskState: o["task"] ?? .null,
                          vectors: try o["vectors"].map { (try GzipPosition(json: $0),
                                                           [UInt8](o["vectors_pending"]?.stringValue.flatMap { Data(base64Encoded: $0) } ?? Data())) },
                          vectorDimension: o["vector_dimension"]?.intValue.map(Int.init))
    }
}
