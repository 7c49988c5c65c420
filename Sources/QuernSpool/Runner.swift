import Foundation
import QuernCore
import QuernData
import QuernTasks

/// How a job run ended.
public enum JobOutcome: Sendable, Equatable {
    case done(String)
    case failed(String, QuernError)
    /// Stopped by SIGTERM/SIGINT after a checkpoint; the job stays in `active/`.
    case interrupted
    /// Stopped because the disk is full: the job stays in `active/` at its last
    /// checkpoint (nothing published, nothing moved) and resumes when there is room.
    case paused
}

/// Runs one active job from (possibly) its last checkpoint to `done/` or `failed/`. The
/// task is whatever the manifest names (`TaskRegistry`): the runner asks it to prepare,
/// then either streams records through it window by window, keeping the output files and
/// their checkpoint, or hands it the whole input; either way it writes the report and
/// publishes the job.
public final class JobRunner {
    let spool: Spool
    let policy: PathPolicy
    let time: any TimeSource
    /// Seconds between checkpoints; 0 checkpoints after every batch.
    public var checkpointInterval: Double = 2
    public var heartbeatInterval: Double = 2
    /// Asked between batches: true once the job should checkpoint and stop (SIGTERM, or a
    /// test's condition).
    public var shouldStop: () -> Bool = { StopSignal.requested }
    /// The error file of the job being run, finished and kept if the job fails.
    private var openErrors: ChunkedGzipWriter?

    public init(spool: Spool, policy: PathPolicy, time: any TimeSource = SystemTime()) {
        self.spool = spool
        self.policy = policy
        self.time = time
        if let s = Sys.environment("QUERN_CHECKPOINT_SECONDS"), let v = Double(s), v >= 0 { checkpointInterval = v }
    }

    static let resultsNames: [Manifest.OutputFormat: String] = [
        .jsonl: "results.jsonl.gz", .csv: "results.csv.gz", .npy: "results.jsonl.gz"
    ]
    static let errorsName = RecordErrors.fileName
    /// A record named by `member` and `line` (`input.select`).
    struct SelectedRecord: Hashable {
        let member: String
        let line: Int
    }

    /// Selection files hold at most this many records (10 million: a few hundred MB).
    static let maxSelected = 10_000_000

    /// The records a selection file lists: JSON Lines (gzipped or not) whose lines have
    /// `member` and `line`, as `errors.jsonl.gz` and `unrun.jsonl.gz` do.
    static func selectedRecords(_ path: String) throws -> Set<SelectedRecord> {
        var spec = RecordSpec(format: .jsonl)
        spec.wantsObject = true
        let stream = try RecordStream(path: path, spec: spec)
        var out: Set<SelectedRecord> = []
        while let item = try stream.next() {
            guard case .record(let r) = item, let o = r.object, let member = o["member"]?.stringValue,
                let line = o["line"]?.intValue
            else {
                throw QuernError(
                    .invalidValue, "input.select \(path): every line must be an object with \"member\" and \"line\"",
                    field: "input.select")
            }
            out.insert(SelectedRecord(member: member, line: Int(line)))
            guard out.count <= maxSelected else {
                throw QuernError(
                    .invalidValue, "input.select lists more than \(maxSelected) records", field: "input.select")
            }
        }
        return out
    }

    /// `quern cancel` leaves this in an active job's directory.
    public static let cancelName = "cancel"
    /// The records a cancelled or expired job did not run: `{id, member, line}` a line.
    public static let unrunName = "unrun.jsonl.gz"

    /// Why `job` must stop early, checked between batches: "cancelled" (`quern cancel`)
    /// or "expired" (its deadline, counted from submission: the manifest's modification
    /// time, which claiming keeps).
    func earlyStop(_ job: ActiveJob, _ manifest: Manifest) -> () -> String? {
        let submitted = Sys.fileStatus(job.manifestPath).map { Double($0.st_mtim.tv_sec) } ?? time.now()
        let deadline = manifest.deadline?.time(submitted: submitted)
        return { [time] in
            if Sys.exists(job.file(Self.cancelName)) { return "cancelled" }
            if let deadline, time.now() >= deadline { return "expired" }
            return nil
        }
    }

    /// The files a streaming job (`RecordTask`) publishes: results, errors and, for NPY
    /// output, the vectors.
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

    public func run(_ job: ActiveJob) -> JobOutcome {
        let log: JobLog
        do {
            log = try JobLog(path: job.file("job.log"), id: job.id)
        } catch {
            return finishFailed(job, QuernError(.io, "cannot open job.log: \(error)"), log: nil)
        }
        var retries = 0
        while true {
            publishing = false
            do {
                return try execute(job, log: log)
            } catch  where Self.isTransient(error) && !publishing && !shouldStop() {
                let allowed = (try? Manifest.decode(Sys.readFile(job.manifestPath)))?.limits.ioRetries ?? 0
                guard retries < allowed else {
                    guard retries > 0 else { return outcome(of: error, job, log) }
                    var e = (error as? QuernError) ?? QuernError(.io, "\(error)")
                    let times = "\(retries) \(retries == 1 ? "retry" : "retries")"
                    e.message +=
                        "; still failing after \(times) from the last checkpoint (limits.io_retries): check the disk or the network file system, then `quern retry \(job.id)`"
                    return outcome(of: e, job, log)
                }
                retries += 1
                openErrors = nil
                let wait = min(60, Double(1 << (retries - 1))) * ioRetryDelay
                log.log(
                    .warning,
                    "transient I/O error (\(error)); resuming from the last checkpoint in \(wait) s, retry \(retries) of \(allowed)"
                )
                StopSignal.sleep(wait)
                if shouldStop() { return .interrupted }
            } catch {
                return outcome(of: error, job, log)
            }
        }
    }

    /// Seconds of the first wait before retrying after a transient I/O error (doubling).
    public var ioRetryDelay = 1.0
    /// Set once a run starts publishing its outputs: a failure then is not retried.
    var publishing = false

    /// A read of the input the system failed for a reason that may pass (the input doors
    /// mark those errors; writes to the spool are not retried).
    static func isTransient(_ error: Error) -> Bool { (error as? QuernError)?.transient == true }

    /// What an error that ended `execute` makes of the job.
    func outcome(of error: Error, _ job: ActiveJob, _ log: JobLog) -> JobOutcome {
        do {
            throw error
        } catch let e as SystemError where e.errno == ENOSPC || e.errno == EDQUOT {
            // Not the job's fault, and failing it would need the space it lacks: leave it
            // at its checkpoint, to be resumed.
            openErrors = nil
            log.log(
                .error, "the disk is full (\(e)); the job stops at its last checkpoint and resumes when there is room")
            return .paused
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
            let target = try spool.fail(
                dir: job.dir, id: job.id, error: error,
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
        let (modelPath, zoo) = try policy.model(manifest.model!)
        // A zoo reference is pinned to the entry the job starts with, so a resume or a
        // retry after the entry is replaced fails with model_mismatch instead of mixing
        // two models' results in one job.
        if let zoo, let model = manifest.model, (try? ModelZoo.Reference(model))?.digest == nil,
            var raw = try JSONParser.parse(Sys.readFile(job.manifestPath)).objectValue
        {
            raw["model"] = .string(zoo.pinned)
            try Sys.writeFileAtomically(job.manifestPath, JSONWriter.pretty(.object(raw)))
        }
        if let zoo, let changed = try policy.zoo?.verify(zoo), !changed.isEmpty {
            throw QuernError(
                .modelMismatch,
                "zoo model \(zoo.name)'s files are not those it was added with (\(changed.joined(separator: "; "))); `quern models verify \(zoo.name)` lists them, add the model again to trust the new files",
                field: "model")
        }
        guard Sys.isRegularFile(inputPath) else {
            guard let status = Sys.fileStatus(inputPath) else {
                throw QuernError(.fileNotFound, "input.path \(inputPath) does not exist", field: "input.path")
            }
            let kind = Sys.kind(status)
            throw QuernError(
                .notARegularFile,
                "input.path \(inputPath) is \(kind), not a regular file: give a file or an archive (tar, zip) of the data",
                field: "input.path")
        }
        let inputs = TaskInputs(
            manifest: manifest, modelPath: modelPath, inputPath: inputPath, policy: policy, zoo: zoo)
        let loadStart = time.monotonic()
        switch try manifest.task.prepare(inputs) {
        case .wholeInput(let task):
            return try runWholeInput(task, job: job, inputs: inputs, log: log, started: started, startedAt: startedAt)
        case .records(let task):
            return try runRecords(
                task, job: job, inputs: inputs, log: log, started: started, startedAt: startedAt,
                loadSeconds: time.monotonic() - loadStart)
        }
    }

    /// A task that reads all its records at once: it re-reads them from the start on
    /// resume, so its error file starts anew; its own checkpoints are its business.
    func runWholeInput(
        _ task: any WholeInputTask, job: ActiveJob, inputs: TaskInputs, log: JobLog, started: Double,
        startedAt: Double
    ) throws -> JobOutcome {
        let manifest = inputs.manifest
        let heartbeat = Heartbeat(spool: spool, dir: job.dir, started: startedAt, interval: heartbeatInterval)
        defer { heartbeat.stop() }
        let writer = try ChunkedGzipWriter(
            path: job.file(Self.errorsName + ".partial"), level: manifest.output.compressionLevel)
        openErrors = writer
        log.log(.info, "job started", [("task", .string(manifest.task.name)), ("model", .string(inputs.modelPath))])
        let early = earlyStop(job, manifest)
        let stop = shouldStop
        let context = WholeInputContext(
            directory: job.dir, inputPath: inputs.inputPath, log: log, time: time,
            errors: RecordErrors(writer: writer, maxErrors: manifest.limits.maxErrors),
            progress: heartbeat.update, shouldStop: { stop() || early() != nil })
        var finished: TaskResult?
        if early() == nil {
            do {
                if case .finished(let result) = try task.run(context) { finished = result }
            } catch {
                // A task asked to stop may throw rather than return; cancelled, that is no failure.
                if early() == nil || shouldStop() { throw error }
            }
        }
        guard let result = finished else {
            guard let status = early(), !shouldStop() else {
                openErrors = nil
                return .interrupted
            }
            // Cancelled or expired: a whole-input task has no partial result to keep.
            heartbeat.stop()
            try writer.finish()
            openErrors = nil
            try Sys.rename(writer.path, job.file(Self.errorsName))
            var report = Report(id: job.id, task: manifest.task.name)
            report["status"] = .string(status)
            report["model"] = Report.model(task.model)
            inputs.annotate(&report)
            report["records"] = Report.records(succeeded: 0, failed: 0)
            let json = report.json(
                startedAt: startedAt, finishedAt: time.now(), wallSeconds: time.monotonic() - started)
            try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(json))
            log.log(.info, "job \(status)", [])
            return .done(
                try spool.complete(job, keep: ["manifest.json", "report.json", Self.errorsName, "job.log"]))
        }
        heartbeat.stop()
        publishing = true
        try writer.finish()
        openErrors = nil
        try Sys.rename(writer.path, job.file(Self.errorsName))
        var final = result.report
        inputs.annotate(&final)
        let report = final.json(
            startedAt: startedAt, finishedAt: time.now(), wallSeconds: time.monotonic() - started)
        try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(report))
        log.log(.info, "job done", result.summary)
        return .done(
            try spool.complete(
                job, keep: Set(result.published + ["manifest.json", "report.json", Self.errorsName, "job.log"])))
    }

    /// A task that streams records: windows of records through the task, outcomes to the
    /// results and error files, a checkpoint every `checkpointInterval` seconds (the
    /// files' positions, the bytes not yet compressed, the task's totals), so a resumed
    /// run writes exactly the bytes an uninterrupted one would.
    func runRecords(
        _ task: any RecordTask, job: ActiveJob, inputs: TaskInputs, log: JobLog, started: Double,
        startedAt: Double, loadSeconds: Double
    ) throws -> JobOutcome {
        let manifest = inputs.manifest
        let inputPath = inputs.inputPath

        // Resume from the checkpoint an earlier owner left, if any.
        let checkpoint = RecordOutputs.checkpoint(of: job, format: manifest.output.format, log: log)
        if let c = checkpoint {
            try task.restore(c.taskState)
            log.log(.info, "resuming from checkpoint", [("records_done", .int(Int64(c.consumed)))])
        } else {
            log.log(
                .info, "job started",
                [
                    ("task", .string(manifest.task.name)), ("input", .string(inputPath)),
                    ("model", .string(inputs.modelPath))
                ])
        }
        let ranges = try manifest.output.ranges.map {
            try VectorOutput.loadRanges(try policy.resolve($0, field: "output.ranges"))
        }
        let out = try RecordOutputs(
            job: job, manifest: manifest, checkpoint: checkpoint, errorLine: task.errorLine, ranges: ranges)
        openErrors = out.errors.writer
        let skip = out.consumed

        // A retry reads only the records its selection file lists.
        let selected = try manifest.input.select.map {
            try Self.selectedRecords(try policy.resolve($0, field: "input.select"))
        }
        func wanted(_ member: String, _ line: Int?) -> Bool {
            guard let selected else { return true }
            return line.map { selected.contains(SelectedRecord(member: member, line: $0)) } ?? false
        }
        // A shard of a cluster job reads only its share (see ClusterJob).
        let shard = try ShardAssignment.load(job.file(ShardAssignment.fileName))
        let stream = try RecordStream(
            path: inputPath, spec: task.spec, limits: manifest.limits.stream,
            selection: shard.map { $0.plan.selection($0.shard) } ?? .all)
        let heartbeat = Heartbeat(spool: spool, dir: job.dir, started: startedAt, interval: heartbeatInterval)
        defer { heartbeat.stop() }

        var lastCheckpoint = time.monotonic()
        var lastProgress = 0.0
        let processStart = time.monotonic()
        // Rates count this process's work only: a resumed job's earlier totals are not
        // divided by the time since it restarted.
        let startCounters = Dictionary(task.counters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        func rates(now: Double) -> [(name: String, total: Int, rate: Double)] {
            let seconds = max(now - processStart, 1e-6)
            return task.counters.map { c in (c.name, c.value, Double(c.value - (startCounters[c.name] ?? 0)) / seconds)
            }
        }
        var batch: [Record] = []
        batch.reserveCapacity(task.window)
        // Cancelled or expired: the rest of the input is listed, not run.
        let early = earlyStop(job, manifest)
        var stopped: String?
        var unrun: ChunkedGzipWriter?
        var unrunCount = 0
        var lastEarlyCheck = -Double.infinity

        func writeCheckpoint() throws {
            try out.checkpoint(taskState: task.state)
            lastCheckpoint = time.monotonic()
        }

        func flush() throws {
            guard !batch.isEmpty else { return }
            try out.write(batch, task.run(batch))
            batch.removeAll(keepingCapacity: true)
            let now = time.monotonic()
            let progress = stream.progress, records = out.succeeded + out.errors.count
            let rate = Double(records - skip) / max(now - processStart, 1e-6), units = rates(now: now)
            var live = JSONObject([
                ("records", .int(Int64(records))), ("bytes_read", .int(Int64(progress.done))),
                ("bytes_total", .int(Int64(progress.total))), ("records_per_second", .double(rate))
            ])
            for u in units {
                live[u.name] = .int(Int64(u.total)); live[u.name + "_per_second"] = .double(u.rate)
            }
            heartbeat.update(.object(live))
            if Log.shared.human && now - lastProgress > 0.2 {
                lastProgress = now
                Log.shared.progress(
                    "\(job.id) "
                        + progressBar(
                            fraction: Double(progress.done) / Double(max(progress.total, 1)), records: records,
                            rate: rate, units: units.map { ($0.name, $0.rate) }))
            }
            if now - lastCheckpoint >= checkpointInterval { try writeCheckpoint() }
        }

        while let item = try stream.next() {
            if shouldStop() { break }
            // Between batches: has the job been cancelled, or run out of time?
            // (At most every 0.1 s: between batches, and while skipping records on resume.)
            if stopped == nil && batch.isEmpty && time.monotonic() - lastEarlyCheck >= 0.1 {
                lastEarlyCheck = time.monotonic()
                if let why = early() {
                    stopped = why
                    unrun = try ChunkedGzipWriter(
                        path: job.file(Self.unrunName + ".partial"), level: manifest.output.compressionLevel)
                    log.log(
                        .info, "job \(why): listing the records not run", [("records_done", .int(Int64(out.consumed)))])
                }
            }
            switch item {
            case .record(let r): if !wanted(r.member, r.line) { continue }
            case .failure(let f): if !wanted(f.member, f.line) { continue }
            }
            if let unrun {
                switch item {
                case .record(let r):
                    if r.index < skip { continue }
                    let line: JSONValue = [
                        "id": .string(r.id), "member": .string(r.member), "line": .int(Int64(r.line))
                    ]
                    _ = try unrun.append(JSONWriter.compact(line) + [0x0A])
                    unrunCount += 1
                case .failure(let f):
                    if f.index < skip { continue }
                    try out.write(f)
                }
                continue
            }
            switch item {
            case .record(let r):
                if r.index < skip { continue }
                batch.append(r)
                if batch.count >= task.window { try flush() }
            case .failure(let f):
                if f.index < skip { continue }
                try flush()  // keep error order equal to input order
                try out.write(f)
            }
        }
        if shouldStop() {
            // Finish the batch in hand, checkpoint, and leave the job in active/ for the next start.
            try flush()
            try writeCheckpoint()
            Log.shared.endProgress()
            openErrors = nil
            log.log(.info, "stopped by signal; checkpointed", [("records_done", .int(Int64(out.consumed)))])
            log.sync()
            return .interrupted
        }
        try flush()
        Log.shared.endProgress()
        heartbeat.stop()
        if out.succeeded + out.errors.count + unrunCount == 0 && shard == nil && stopped == nil {
            let noMember = stream.membersRead == 0 && manifest.input.members != nil
            throw QuernError(
                .emptyInput,
                noMember
                    ? "no archive member matches input.members \"\(manifest.input.members!)\""
                    : "the input holds no records",
                field: noMember ? "input.members" : "input.path")
        }

        // Publish: finish the files, name them, write the report, one rename to done/.
        // From here a failure is not retried: the partial files are being renamed.
        publishing = true
        var outputNames = try out.publish()
        if let unrun {
            try unrun.finish()
            try Sys.rename(unrun.path, job.file(Self.unrunName))
            outputNames.append(Self.unrunName)
        }
        openErrors = nil
        let processSeconds = time.monotonic() - processStart
        var report = Report(id: job.id, task: manifest.task.name)
        report["model"] = Report.model(task.model)
        inputs.annotate(&report)
        report["precision"] = .string(manifest.precision.rawValue)
        report["input"] = [
            "path": .string(inputPath), "bytes": .int(Int64(Sys.fileSize(path: inputPath))),
            "format": .string(manifest.input.format.rawValue), "members": .int(Int64(stream.membersRead))
        ]
        report["records"] = Report.records(
            succeeded: out.succeeded, failed: out.errors.count,
            (stopped == nil ? [] : [("cancelled", unrunCount)])
                + (out.lines == out.succeeded ? [] : [("result_lines", out.lines)]))
        if let stopped { report["status"] = .string(stopped) }
        report.timings["model_load_seconds"] = .double(loadSeconds)
        report.timings["process_seconds"] = .double(processSeconds)
        // The job process's peak memory, model included: what a memory limit must allow.
        report.timings["peak_rss_mb"] = .int(Int64(Sys.peakResidentKB / 1024))
        let done = out.succeeded + out.errors.count - skip
        var throughput = JSONObject([("records_per_second", .double(Double(done) / max(processSeconds, 1e-9)))])
        for u in rates(now: processStart + processSeconds) { throughput[u.name + "_per_second"] = .double(u.rate) }
        report["throughput"] = .object(throughput)
        if let m = task.metrics() { report["metrics"] = m }
        report["outputs"] = .object(try Self.outputDigests(outputNames, in: job.dir))
        report["resumed"] = .int(Int64(out.resumes))
        if let shard { report["shard"] = shard.json }
        let wall = time.monotonic() - started
        let json = report.json(startedAt: startedAt, finishedAt: time.now(), wallSeconds: wall)
        try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(json))
        log.log(
            .info, "job done",
            [
                ("records", .int(Int64(out.succeeded))), ("errors", .int(Int64(out.errors.count))),
                ("seconds", .double((wall * 1000).rounded() / 1000))
            ])
        let keep =
            outputNames + ["manifest.json", "report.json", "job.log"] + (shard == nil ? [] : [ShardAssignment.fileName])
        return .done(try spool.complete(job, keep: Set(keep)))
    }
}
