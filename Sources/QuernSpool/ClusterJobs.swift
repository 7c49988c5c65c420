import Foundation
import QuernCore
import QuernData
import QuernTasks

/// Which share of a cluster job one shard's run reads. It is written as `shard.json` in
/// the shard's job directory before the job becomes active, so a resumed run (after a
/// requeue or a crash) reads the same share.
struct ShardAssignment {
    static let fileName = "shard.json"
    let shard: Shard
    let plan: ShardPlan

    var json: JSONValue {
        let r = plan.range(shard)
        return [
            "index": .int(Int64(shard.index)), "count": .int(Int64(shard.count)), "mode": .string(plan.mode.rawValue),
            "units": .int(Int64(plan.units)), "range": [.int(Int64(r.lowerBound)), .int(Int64(r.upperBound))]
        ]
    }

    static func load(_ path: String) throws -> ShardAssignment? {
        guard Sys.exists(path) else { return nil }
        guard let o = try JSONParser.parse(Sys.readFile(path)).objectValue, let i = o["index"]?.intValue else {
            throw QuernError(.internalError, "\(path) is not a shard assignment")
        }
        let plan = try ShardPlan(json: .object(o))
        return ShardAssignment(shard: try Shard(index: Int(i), count: plan.count), plan: plan)
    }
}

/// A job run as N shards by a cluster scheduler, in `cluster/JOB/` (see `JobState.cluster`):
///
///     cluster/JOB/manifest.json      paths absolute, as `quern stage` wrote it
///     cluster/JOB/shards.json        the plan: members or records, N, how many units
///     cluster/JOB/shards/part-I-of-N/   shard I's own spool (checkpoints, lease, job.log)
///     cluster/JOB/parts/part-I-of-N/    shard I's committed outputs and report
///
/// A shard is an ordinary job in its own spool, so it checkpoints, resumes after a
/// requeue, and refuses a second live owner exactly as spool jobs do. Its finished
/// directory is committed by one rename onto a name that does not exist yet; a
/// duplicate or requeued run that finishes later finds the name taken and discards its
/// copy, so nothing committed is ever replaced.
public enum ClusterJob {
    public static let planName = "shards.json"
    public static let partsDirectory = "parts"
    public static let workDirectory = "shards"

    /// Tasks whose records can be split (see `JobTask.readsWholeInput`); the others run as
    /// a single task.
    public static func shardable(_ task: any JobTask.Type) -> Bool { !task.readsWholeInput }

    public enum ShardOutcome: Sendable {
        /// This run committed the part.
        case committed(String)
        /// Another run of the same shard had committed it; this one changed nothing.
        case alreadyCommitted(String)
        /// The shard's run failed; `error.json` is in its spool's `failed/`. For good when
        /// the input or model is bad; a retryable code (I/O) is run again from the start.
        case failed(QuernError)
        /// Stopped by a signal after a checkpoint; a requeued run resumes it.
        case interrupted
        /// Another live process is running this shard.
        case busy
    }

    static func manifest(jobDir: String) throws -> (Manifest, [UInt8]) {
        let path = Path.join(jobDir, "manifest.json")
        guard Sys.isRegularFile(path) else {
            throw QuernError(
                .fileNotFound,
                "\(jobDir) is not a cluster job (no manifest.json); stage one with `quern stage` or `quern slurm submit`"
            )
        }
        let bytes = try Sys.readFile(path)
        return (try Manifest.decode(bytes), bytes)
    }

    /// The plan in the job's `shards.json`; nil before any shard has run.
    public static func savedPlan(jobDir: String) throws -> ShardPlan? {
        let path = Path.join(jobDir, planName)
        guard Sys.exists(path) else { return nil }
        return try ShardPlan(json: try JSONParser.parse(Sys.readFile(path)))
    }

    /// The job's shard plan for `count` shards: the one in `shards.json`, or a new one.
    /// Every shard computes the same plan from the same input, so whichever publishes
    /// first (a link, which never replaces) wins and the others read it.
    static func plan(jobDir: String, manifest: Manifest, inputPath: String, count: Int) throws -> ShardPlan {
        let path = Path.join(jobDir, planName)
        if let plan = try savedPlan(jobDir: jobDir) {
            guard plan.count == count else {
                throw QuernError(
                    .usage, "this job is planned as \(plan.count) shards (\(path)); it cannot run as shard of \(count)",
                    field: "shard")
            }
            return plan
        }
        let spec = RecordSpec(format: manifest.input.format, members: manifest.input.members)
        let plan = try ShardPlan.make(path: inputPath, spec: spec, limits: manifest.limits.stream, count: count)
        let staged = path + ".\(Sys.hostname).\(Sys.pid)"
        try Sys.writeFileAtomically(staged, JSONWriter.pretty(plan.json))
        defer { try? Sys.unlink(staged) }
        do {
            try Sys.linkNoReplace(staged, path)
        } catch let e as SystemError where e.errno == EEXIST {
            return try savedPlan(jobDir: jobDir)!
        }
        return plan
    }

    /// Runs one shard of the cluster job in `jobDir` to its committed part.
    public static func runShard(jobDir: String, shard: Shard, policy: PathPolicy) throws -> ShardOutcome {
        // SIGTERM (a requeue, a time limit) finishes the batch in hand and checkpoints.
        StopSignal.install()
        let (manifest, bytes) = try manifest(jobDir: jobDir)
        let id = manifest.id ?? Path.basename(jobDir)
        guard shardable(manifest.task) || shard.count == 1 else {
            throw QuernError(
                .usage,
                "\(manifest.task.name) jobs see all their records at once and run as a single task; run them with 1 shard",
                field: "task")
        }
        let committed = Path.join(Path.join(jobDir, partsDirectory), shard.name)
        if Sys.exists(committed) { return .alreadyCommitted(committed) }
        let inputPath = try policy.resolve(manifest.input.path, field: "input.path")
        let plan = try plan(jobDir: jobDir, manifest: manifest, inputPath: inputPath, count: shard.count)

        let work = try Spool(root: Path.join(Path.join(jobDir, workDirectory), shard.name))
        // A run that finished but died before its commit: commit what it left.
        if let done = try work.jobs(.done).first { return try commit(work.path(.done, done), to: committed) }
        var job = try work.adoptOrphans().first
        if job == nil {
            guard try work.jobs(.active).isEmpty else { return .busy }
            // An earlier permanent failure is tried again from the start (the input or
            // model may have been fixed); it fails the same way if not.
            for name in try work.jobs(.failed) { try Sys.removeTree(work.path(.failed, name)) }
            var claim = try work.adoptClaims().first
            if claim == nil {
                if !Sys.exists(Path.join(work.directory(.incoming), id + ".json")) {
                    _ = try work.submit(bytes, name: id + ".json")
                }
                claim = try work.claim(id + ".json")
            }
            guard let claim else { return .busy }
            let assignment = Path.join(claim.dir, ShardAssignment.fileName)
            if !Sys.exists(assignment) {
                try Sys.writeFileAtomically(
                    assignment, JSONWriter.pretty(ShardAssignment(shard: shard, plan: plan).json))
            }
            job = try work.activate(claim, id: id)
        }
        switch JobRunner(spool: work, policy: policy).run(job!) {
        case .done(let target): return try commit(target, to: committed)
        case .failed(_, let e): return .failed(e)
        case .interrupted, .paused: return .interrupted
        }
    }

    /// One rename of the shard's finished directory onto its part name, which fails
    /// rather than replace a part another run committed first.
    static func commit(_ dir: String, to committed: String) throws -> ShardOutcome {
        try Sys.mkdirs(Path.dirname(committed))
        do {
            try Sys.rename(dir, committed)
        } catch let e as SystemError where e.errno == EEXIST || e.errno == ENOTEMPTY {
            try? Sys.removeTree(dir)
            return .alreadyCommitted(committed)
        }
        try Sys.fsyncDirectory(Path.dirname(committed))
        try Sys.fsyncDirectory(Path.dirname(dir))
        return .committed(committed)
    }

    /// Where one shard stands, from the files alone.
    public enum PartState: Sendable, Equatable {
        case committed
        case failed(code: String, message: String)
        /// Running or interrupted: the lease's progress, if any.
        case started(progress: JSONValue)
        case notStarted
    }

    public static func partStates(jobDir: String, count: Int) throws -> [PartState] {
        try (0..<count).map { i in
            let shard = try Shard(index: i, count: count)
            if Sys.isDirectory(Path.join(Path.join(jobDir, partsDirectory), shard.name)) { return .committed }
            let work = Path.join(Path.join(jobDir, workDirectory), shard.name)
            for state in [JobState.failed, .active] {
                let dir = Path.join(work, state.rawValue)
                guard let name = (try? Sys.listDirectory(dir))?.filter({ !$0.hasPrefix(".") }).first else { continue }
                if state == .failed {
                    let e =
                        (try? JSONParser.parse(Sys.readFile(Path.join(Path.join(dir, name), "error.json"))).objectValue)
                        ?? JSONObject()
                    return .failed(
                        code: e["code"]?.stringValue ?? "?", message: e["message"]?.stringValue ?? "no error.json")
                }
                let lease = try? JSONParser.parse(Sys.readFile(Path.join(Path.join(dir, name), "lease.json")))
                    .objectValue
                return .started(progress: lease?["progress"] ?? .null)
            }
            return .notStarted
        }
    }

    /// Assembles the committed parts of `cluster/id` into the ordinary `done/id/`: one
    /// results file in input order, one error file, one report. A shard that failed for
    /// good moves the job to `failed/` with every shard's error (committed parts kept
    /// under it); shards not yet finished leave it where it is, with a message naming them.
    public static func merge(spool: Spool, id: String, time: any TimeSource = SystemTime()) throws -> String {
        let jobDir = spool.path(.cluster, id)
        guard Sys.isDirectory(jobDir) else {
            throw QuernError(.fileNotFound, "no cluster job \"\(id)\" in \(spool.directory(.cluster))")
        }
        let started = time.monotonic()
        let (manifest, _) = try manifest(jobDir: jobDir)
        guard let plan = try savedPlan(jobDir: jobDir) else {
            throw QuernError(.usage, "no shard of \(id) has run yet (no \(planName)); nothing to merge")
        }
        let states = try partStates(jobDir: jobDir, count: plan.count)
        let failed = states.enumerated().compactMap { i, s -> String? in
            if case .failed(let code, let message) = s {
                return "shard \(i)/\(plan.count) failed (\(code)): \(message)"
            }
            return nil
        }
        let missing = states.enumerated().filter { $0.element != .committed }.map { "\($0.offset)" }
        if !failed.isEmpty {
            let e = QuernError(
                .invalidRecord, failed.joined(separator: "; ") + ". The other parts are kept in \(partsDirectory)/.")
            let target = try spool.fail(
                dir: jobDir, id: id, error: e,
                keep: ["manifest.json", planName, partsDirectory, workDirectory, Slurm.directory])
            throw QuernError(e.code, e.message + " Job moved to \(target).")
        }
        guard missing.isEmpty else {
            throw QuernError(
                .usage,
                "cannot merge \(id): shard\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) of \(plan.count) not committed yet (running, requeued or not started); merge again when they are"
            )
        }
        let parts = (0..<plan.count).map {
            Path.join(Path.join(jobDir, partsDirectory), try! Shard(index: $0, count: plan.count).name)
        }
        let reports = try parts.map { p -> JSONObject in
            guard let r = try JSONParser.parse(Sys.readFile(Path.join(p, "report.json"))).objectValue else {
                throw QuernError(.internalError, "\(p)/report.json is not a JSON object")
            }
            return r
        }
        // Slurm's scripts and logs (when it ran the shards) stay with the result.
        let provenance = Sys.exists(Path.join(jobDir, Slurm.directory)) ? [Slurm.directory] : []
        if !shardable(manifest.task) {
            return try publishWhole(
                part: parts[0], report: reports[0], spool: spool, id: id, plan: plan, keep: provenance)
        }
        let resultsName = JobRunner.resultsNames[manifest.output.format]!
        let staging = Path.join(jobDir, ".merge.\(Sys.pid)")
        try? Sys.removeTree(staging)
        try Sys.mkdir(staging)
        let rowsBefore = reports.map(resultLines)
        switch manifest.output.format {
        case .jsonl:
            try concatenate(parts.map { Path.join($0, resultsName) }, into: Path.join(staging, resultsName))
        case .csv:
            try mergeCSV(
                parts.map { Path.join($0, resultsName) }, into: Path.join(staging, resultsName),
                level: manifest.output.compressionLevel)
        case .npy:
            try mergeVectorLines(
                parts.map { Path.join($0, resultsName) }, rows: rowsBefore, into: Path.join(staging, resultsName),
                level: manifest.output.compressionLevel)
            try mergeVectors(
                parts.map { Path.join($0, VectorOutput.name) }, rows: rowsBefore.reduce(0, +),
                into: Path.join(staging, VectorOutput.name), level: manifest.output.compressionLevel)
        }
        try concatenate(
            parts.map { Path.join($0, JobRunner.errorsName) }, into: Path.join(staging, JobRunner.errorsName))
        let names = JobRunner.outputNames(manifest.output.format)
        var report = combine(reports, id: id, plan: plan, task: manifest.task)
        report["outputs"] = .object(try JobRunner.outputDigests(names, in: staging))
        report.timings["merge_seconds"] = .double(time.monotonic() - started)
        try Sys.writeFile(Path.join(staging, "report.json"), JSONWriter.pretty(report.json))
        for name in names + ["report.json"] { try Sys.rename(Path.join(staging, name), Path.join(jobDir, name)) }
        try Sys.removeTree(staging)
        return try spool.completeCluster(id: id, keep: Set(names + ["report.json", "manifest.json"] + provenance))
    }

    /// A task run as a single shard (finetune, quantize, prune): its part is the whole
    /// result, published as it is, with the shard's provenance in the report.
    static func publishWhole(
        part: String, report: JSONObject, spool: Spool, id: String, plan: ShardPlan,
        keep: [String]
    ) throws -> String {
        let jobDir = Path.dirname(Path.dirname(part))
        var report = Report(json: report)
        report["shards"] = [
            "mode": .string(plan.mode.rawValue), "count": 1, "units": .int(Int64(plan.units)),
            "parts": [["shard": report["shard"] ?? .null, "host": report["host"] ?? .null]]
        ]
        report["shard"] = nil
        try Sys.writeFile(Path.join(part, "report.json"), JSONWriter.pretty(report.json))
        let names = try Sys.listDirectory(part).filter { $0 != ShardAssignment.fileName && $0 != "manifest.json" }
        for name in names { try Sys.rename(Path.join(part, name), Path.join(jobDir, name)) }
        return try spool.completeCluster(id: id, keep: Set(names + ["manifest.json"] + keep))
    }

    // MARK: outputs

    /// Gzip files joined byte for byte: a multi-member gzip of the parts' data in order.
    static func concatenate(_ files: [String], into target: String) throws {
        let out = try Sys.open(target, O_WRONLY | O_CREAT | O_TRUNC)
        defer { Sys.close(out) }
        for file in files { try Sys.appendFile(file, to: out, path: target) }
    }

    /// Every line of every gzip file, in order, to `line`.
    static func eachLine(_ file: String, _ line: ([UInt8]) throws -> Void) throws {
        let inflater = try GzipInflater(path: file)
        var carry: [UInt8] = []
        while true {
            let chunk = try inflater.read()
            if chunk.isEmpty { break }
            var start = 0
            for (i, b) in chunk.enumerated() where b == 0x0A {
                carry.append(contentsOf: chunk[start...i])
                try line(carry)
                carry.removeAll(keepingCapacity: true)
                start = i + 1
            }
            carry.append(contentsOf: chunk[start...])
        }
        if !carry.isEmpty { try line(carry) }
    }

    /// CSV parts each start with the header line (a part without rows has none): the
    /// first header is kept, the others dropped.
    static func mergeCSV(_ files: [String], into target: String, level: Int) throws {
        let out = try ChunkedGzipWriter(path: target, level: level)
        var headerWritten = false
        for file in files {
            var first = true
            try eachLine(file) { line in
                defer { first = false }
                if first && headerWritten { return }
                headerWritten = true
                try out.append(line)
            }
        }
        try out.finish()
    }

    /// A part's result lines: one per record, or more (embed's row per chunk), as its
    /// report counts them.
    static func resultLines(_ report: JSONObject) -> Int {
        let records = report["records"]?.objectValue
        return Int(records?["result_lines"]?.intValue ?? records?["succeeded"]?.intValue ?? 0)
    }

    /// NPY jobs' result lines name each vector's row in its part's array; in the merged
    /// array the rows of part k come after those of parts 0..<k. Only the digits of
    /// `"row":` change: the line keeps the bytes the part wrote.
    static func mergeVectorLines(_ files: [String], rows: [Int], into target: String, level: Int) throws {
        let out = try ChunkedGzipWriter(path: target, level: level)
        var offset = 0
        let key = Array(",\"row\":".utf8)
        for (k, file) in files.enumerated() {
            try eachLine(file) { line in
                guard offset > 0 else { try out.append(line); return }
                guard let o = try JSONParser.parse(line).objectValue, let id = o["id"]?.stringValue,
                    let row = o["row"]?.intValue
                else {
                    throw QuernError(.internalError, "\(file): a result line without id and row")
                }
                var w = JSONWriter()
                w.raw("{\"id\":")
                w.string(id)
                let prefix = w.bytes + key
                guard line.starts(with: prefix) else {
                    throw QuernError(.internalError, "\(file): unexpected result line layout")
                }
                var end = prefix.count
                while end < line.count, line[end] >= 0x30 && line[end] <= 0x39 { end += 1 }
                try out.append(prefix + Array(String(Int(row) + offset).utf8) + line[end...])
            }
            offset += rows[k]
        }
        try out.finish()
    }

    /// One NPY header member for all the rows, then each part's data member as it is.
    static func mergeVectors(_ files: [String], rows: Int, into target: String, level: Int) throws {
        var dimension = 0, descr = "<f4", dataStarts: [Int] = []
        for file in files {
            // The header member is the first of the file; its first 64 KB hold it whole.
            let fd = try Sys.open(file, O_RDONLY)
            var bytes = [UInt8](repeating: 0, count: 1 << 16)
            let n = try bytes.withUnsafeMutableBytes { try Sys.read(fd, $0) }
            Sys.close(fd)
            bytes.removeSubrange(n...)
            let (length, header) = try Zlib.firstGzipMember(bytes)
            guard let (d, shape) = NPYHeader.decode(header) else {
                throw QuernError(.internalError, "\(file) does not start with an NPY header member")
            }
            descr = d
            // A part without rows says [0, 0]: its width is not known, the others' is.
            if shape.count == 2, shape[0] > 0 { dimension = shape[1] }
            dataStarts.append(length)
        }
        try VectorOutput.assemble(
            target, descr: descr, shape: [rows, dimension], level: level, parts: Array(zip(files, dataStarts)))
    }

    // MARK: report

    /// The parts' reports as one: counts summed, the job's span from the first shard's
    /// start to the last one's finish (throughput over that span, not an average of
    /// rates), per-shard seconds summed, metrics recombined from their counts, and
    /// each part's provenance.
    static func combine(_ reports: [JSONObject], id: String, plan: ShardPlan, task: any JobTask.Type) -> Report {
        func int(_ r: JSONObject, _ a: String, _ b: String) -> Int { Int(r[a]?.objectValue?[b]?.intValue ?? 0) }
        func double(_ r: JSONObject, _ a: String, _ b: String) -> Double { r[a]?.objectValue?[b]?.doubleValue ?? 0 }
        func text(_ r: JSONObject, _ a: String, _ b: String) -> String? { r[a]?.objectValue?[b]?.stringValue }
        let first = reports[0]
        var report = Report(id: id, task: task.name)
        report["model"] = first["model"] ?? .null
        report["precision"] = first["precision"] ?? .null
        var input = first["input"]?.objectValue ?? JSONObject()
        // Member shards read disjoint members; record shards each read the members before their range.
        input["members"] = .int(
            Int64(
                plan.mode == .members
                    ? reports.map { int($0, "input", "members") }.reduce(0, +)
                    : reports.map { int($0, "input", "members") }.max() ?? 0))
        report["input"] = .object(input)
        let read = reports.map { int($0, "records", "read") }.reduce(0, +)
        report["records"] = [
            "read": .int(Int64(read)),
            "succeeded": .int(Int64(reports.map { int($0, "records", "succeeded") }.reduce(0, +))),
            "failed": .int(Int64(reports.map { int($0, "records", "failed") }.reduce(0, +)))
        ]
        // Result lines, when records gave more than one each (embed's row per chunk).
        if reports.contains(where: { $0["records"]?.objectValue?["result_lines"] != nil }) {
            var o = report["records"]?.objectValue ?? JSONObject()
            o["result_lines"] = .int(Int64(reports.map(resultLines).reduce(0, +)))
            report["records"] = .object(o)
        }
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let starts = reports.compactMap { text($0, "timings", "started_at") },
            ends = reports.compactMap { text($0, "timings", "finished_at") }
        let start = starts.min(), end = ends.max()
        let span =
            zip([start].compactMap { $0.flatMap(iso.date) }, [end].compactMap { $0.flatMap(iso.date) })
            .map { $1.timeIntervalSince($0) }.first ?? 0
        report["timings"] = [
            "started_at": start.map { .string($0) } ?? .null, "finished_at": end.map { .string($0) } ?? .null,
            "wall_seconds": .double(span),
            "shard_wall_seconds_sum": .double(reports.map { double($0, "timings", "wall_seconds") }.reduce(0, +)),
            "shard_wall_seconds_max": .double(reports.map { double($0, "timings", "wall_seconds") }.max() ?? 0),
            "model_load_seconds_sum": .double(reports.map { double($0, "timings", "model_load_seconds") }.reduce(0, +)),
            "process_seconds_sum": .double(reports.map { double($0, "timings", "process_seconds") }.reduce(0, +))
        ]
        report["throughput"] = ["records_per_second": .double(span > 0 ? Double(read) / span : 0)]
        if let m = task.combineMetrics(reports.compactMap { $0["metrics"]?.objectValue }) {
            report["metrics"] = .object(m)
        }
        report["resumed"] = .int(Int64(reports.map { Int($0["resumed"]?.intValue ?? 0) }.reduce(0, +)))
        report["shards"] = [
            "mode": .string(plan.mode.rawValue), "count": .int(Int64(plan.count)), "units": .int(Int64(plan.units)),
            "parts": .array(
                reports.map { r in
                    [
                        "shard": r["shard"] ?? .null, "host": r["host"] ?? .null, "records": r["records"] ?? .null,
                        "timings": r["timings"] ?? .null, "resumed": r["resumed"] ?? .null,
                        "outputs": r["outputs"] ?? .null
                    ]
                })
        ]
        return report
    }
}
