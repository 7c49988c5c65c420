import Foundation
import QuernCore
import QuernData
import QuernTasks

/// The behaviour behind `quern validate`, `submit` and `status`; the CLI only parses
/// arguments and prints.
public enum Commands {
    /// Decodes a manifest and checks everything it names, without running it: paths
    /// resolve inside the allowed roots, the model loads, the first records decode.
    /// Relative paths resolve against `base` (the submitter's working directory).
    public static func validate(manifestPath: String, base: String, roots: [String], zoo: ModelZoo?) throws -> (
        Manifest, JSONValue
    ) {
        let policy = PathPolicy(base: base, roots: roots, zoo: zoo)
        // Run from a shell, a relative path means what it means there (`../shared/x`);
        // it is made absolute by name, then checked against the roots like any other.
        // Manifests dropped into incoming/ keep refusing `..`.
        let manifest = try Manifest.decode(Sys.readFile(manifestPath)).resolvingPaths { path, field in
            try policy.resolve(
                path.hasPrefix("/") || ModelZoo.Reference.isReference(path)
                    ? path : Path.collapse(Path.absolute(path, relativeTo: base)), field: field)
        }
        let input = manifest.input.path
        let (modelPath, entry) = try policy.model(manifest.model!)
        let prepared = try manifest.task.prepare(
            TaskInputs(manifest: manifest, modelPath: modelPath, inputPath: input, policy: policy, zoo: entry)
        ).run
        let (spec, inputSize, family) = (prepared.spec, prepared.inputSize, prepared.model.family)
        let stream = try RecordStream(path: input, spec: spec, limits: manifest.limits.stream)
        var sampled = 0, bad = 0
        var firstProblem: JSONValue = .null
        while sampled < 100, let item = try stream.next() {
            sampled += 1
            switch item {
            case .record(let r):
                if let inputSize, r.features.count != inputSize {
                    bad += 1
                    if firstProblem == .null {
                        firstProblem = .string(
                            "\(r.member) line \(r.line): \(r.features.count) features, model takes \(inputSize)")
                    }
                }
            case .failure(let f):
                bad += 1
                if firstProblem == .null {
                    firstProblem = .string("\(f.member) line \(f.line ?? 0): \(f.error.message)")
                }
            }
        }
        let summary: JSONValue = [
            "valid": true, "task": .string(manifest.task.name), "input": .string(input),
            "model": .string(modelPath), "model_family": .string(family),
            "model_zoo": entry.map { .string($0.pinned) } ?? .null,
            "sampled_records": .int(Int64(sampled)), "sampled_bad_records": .int(Int64(bad)),
            "first_problem": firstProblem
        ]
        return (manifest, summary)
    }

    /// Validates, records the resolved absolute paths, and publishes into `incoming/`.
    public static func submit(manifestPath: String, spool: Spool, roots: [String]) throws -> String {
        let (id, bytes) = try resolved(manifestPath: manifestPath, base: Sys.getcwd(), spool: spool, roots: roots)
        return try spool.submit(bytes, name: id + ".json")
    }

    /// Validates, records the resolved absolute paths, and publishes as the cluster job
    /// `cluster/ID/` for a scheduler's array tasks (`quern run-shard`) and `quern merge`.
    public static func stage(manifestPath: String, spool: Spool, roots: [String]) throws -> String {
        let (id, bytes) = try resolved(manifestPath: manifestPath, base: Sys.getcwd(), spool: spool, roots: roots)
        return try spool.stage(bytes, id: id)
    }

    /// The job id and the manifest with every path it names made absolute (relative ones
    /// resolve against `base`), so that it means the same from the spool or a cluster node
    /// as from where it was written.
    static func resolved(manifestPath: String, base: String, spool: Spool, roots: [String], id: String? = nil) throws
        -> (String, [UInt8])
    {
        let (manifest, _) = try validate(
            manifestPath: manifestPath, base: base, roots: roots + [spool.root],
            zoo: ModelZoo.configured(spool: spool.root))
        let id = id ?? manifest.id ?? Path.stem(manifestPath)
        guard Manifest.isValidID(id) else {
            throw QuernError(
                .invalidID, "\"\(id)\" is not a valid job id (\(Manifest.idPattern)); set \"id\" in the manifest",
                field: "id")
        }
        try spool.checkIDFree(id)
        return (id, JSONWriter.pretty(.object(manifest.raw)))
    }

    /// Counts per state, the running jobs with their progress, and recent failures.
    public static func status(spool: Spool, time: any TimeSource = SystemTime(), recent: Int = 5) throws -> JSONValue {
        var counts = JSONObject()
        counts["incoming"] = .int(Int64(try spool.pending().count))
        for state in [JobState.active, .done, .failed, .cluster] {
            counts[state.rawValue] = .int(Int64(try spool.jobs(state).count))
        }
        var active: [JSONValue] = []
        for id in try spool.jobs(.active) {
            let dir = spool.path(.active, id)
            var o = JSONObject()
            o["id"] = .string(id)
            if let lease = try? JSONParser.parse(Sys.readFile(Path.join(dir, "lease.json"))).objectValue {
                o["pid"] = lease["pid"] ?? .null
                o["host"] = lease["host"] ?? .null
                if let beat = lease["heartbeat"]?.doubleValue {
                    o["heartbeat_age_seconds"] = .double(((time.now() - beat) * 10).rounded() / 10)
                }
                o["progress"] = lease["progress"] ?? .null
                if let host = lease["host"]?.stringValue, host == Sys.hostname, let pid = lease["pid"]?.intValue {
                    o["alive"] = .bool(JobLock.isHeld(dir) && Sys.processExists(Int32(pid)))
                }
            }
            active.append(.object(o))
        }
        var failures: [(Double, JSONValue)] = []
        for id in try spool.jobs(.failed) {
            let path = Path.join(spool.path(.failed, id), "error.json")
            guard let st = Sys.fileStatus(path), let e = try? JSONParser.parse(Sys.readFile(path)).objectValue else {
                continue
            }
            failures.append(
                (
                    Double(st.st_mtim.tv_sec),
                    [
                        "id": .string(id), "code": e["code"] ?? .null,
                        "message": e["message"] ?? .null, "failed_at": e["failed_at"] ?? .null
                    ]
                ))
        }
        let recentFailures = failures.sorted { $0.0 > $1.0 }.prefix(recent).map(\.1)
        return [
            "spool": .string(spool.root), "counts": .object(counts), "active": .array(active),
            "cluster": .array(try spool.jobs(.cluster).map { clusterStatus(spool: spool, id: $0) }),
            "recent_failures": .array(Array(recentFailures)),
            "paused": spool.isPaused
                ? ((try? JSONParser.parse(Sys.readFile(spool.pauseMarker, limit: 1 << 16))) ?? .bool(true))
                : .bool(false)
        ]
    }

    /// A cluster job's shards, from its part files and the shards' leases: committed,
    /// failed (with the error), started (with progress) or not started; with Slurm's ids
    /// and, while squeue lists them, each task's and the merge's Slurm state.
    static func clusterStatus(spool: Spool, id: String) -> JSONValue {
        let dir = spool.path(.cluster, id)
        var o = JSONObject([("id", .string(id))])
        let plan = (try? ClusterJob.savedPlan(jobDir: dir)) ?? nil
        let submission = (try? Slurm.submission(jobDir: dir)) ?? nil
        var queue: [String: (state: String, reason: String)] = [:]
        if let submission {
            queue = Slurm.queue([submission.arrayJobID] + (submission.mergeJobID.map { [$0] } ?? [])) ?? [:]
            var slurm = JSONObject([
                ("array_job_id", .string(submission.arrayJobID)),
                ("merge_job_id", submission.mergeJobID.map { .string($0) } ?? .null)
            ])
            if let m = submission.mergeJobID, let q = queue[m] {
                slurm["merge_state"] = .string(q.state); slurm["merge_reason"] = .string(q.reason)
            }
            o["slurm"] = .object(slurm)
        }
        if let plan { o["mode"] = .string(plan.mode.rawValue) }
        guard let count = plan?.count ?? submission?.tasks,
            let states = try? ClusterJob.partStates(jobDir: dir, count: count)
        else {
            o["shards"] = .null  // no shard has run yet
            return .object(o)
        }
        o["shards"] = .array(
            states.enumerated().map { i, state in
                var s = JSONObject([("shard", .int(Int64(i)))])
                switch state {
                case .committed: s["state"] = "committed"
                case .failed(let code, let message):
                    s["state"] = "failed"; s["code"] = .string(code); s["message"] = .string(message)
                case .started(let progress): s["state"] = "started"; s["progress"] = progress
                case .notStarted: s["state"] = "not_started"
                }
                if let a = submission?.arrayJobID, let q = queue["\(a)_\(i)"] {
                    s["slurm_state"] = .string(q.state); s["slurm_reason"] = .string(q.reason)
                }
                return .object(s)
            })
        return .object(o)
    }

    /// `quern status` for a terminal.
    public static func statusTable(_ status: JSONValue) -> String {
        guard let o = status.objectValue, let counts = o["counts"]?.objectValue else { return "" }
        var lines = ["spool \(o["spool"]?.stringValue ?? "")", ""]
        if let p = o["paused"], p != .bool(false) {
            let reason = p.objectValue?["reason"]?.stringValue.map { ": \($0)" } ?? ""
            lines.insert(
                "PAUSED since \(p.objectValue?["paused_at"]?.stringValue ?? "?")\(reason) (quern resume)", at: 1)
        }
        lines.append("STATE      JOBS")
        for state in ["incoming", "active", "done", "failed", "cluster"] {
            lines.append(
                state.padding(toLength: 11, withPad: " ", startingAt: 0) + String(counts[state]?.intValue ?? 0))
        }
        let active = o["active"]?.arrayValue ?? []
        if !active.isEmpty {
            lines += ["", "RUNNING"]
            for a in active.compactMap(\.objectValue) {
                let p = a["progress"]?.objectValue
                let records = p?["records"]?.intValue ?? 0
                let done = Double(p?["bytes_read"]?.intValue ?? 0),
                    total = Double(max(p?["bytes_total"]?.intValue ?? 1, 1))
                let alive = a["alive"]?.boolValue.map { $0 ? "" : "  (owner dead: will be resumed)" } ?? ""
                // Each counter a task reports beside records (generate: tokens) comes with its rate.
                let units = (p?.pairs ?? []).compactMap { key, value -> (name: String, rate: Double)? in
                    guard key.hasSuffix("_per_second"), key != "records_per_second", let r = value.doubleValue
                    else { return nil }
                    return (String(key.dropLast("_per_second".count)), r)
                }
                lines.append(
                    "  \(a["id"]?.stringValue ?? "?")  pid \(a["pid"]?.intValue ?? 0)  "
                        + progressBar(
                            fraction: done / total, records: Int(records), rate: p?["records_per_second"]?.doubleValue,
                            units: units) + alive)
            }
        }
        let cluster = o["cluster"]?.arrayValue ?? []
        if !cluster.isEmpty {
            lines += ["", "CLUSTER JOBS"]
            for c in cluster.compactMap(\.objectValue) {
                let shards = c["shards"]?.arrayValue?.compactMap(\.objectValue) ?? []
                let count = { (state: String) in shards.filter { $0["state"]?.stringValue == state }.count }
                var line =
                    "  \(c["id"]?.stringValue ?? "?")  "
                    + (shards.isEmpty
                        ? "no shard run yet"
                        : "\(count("committed"))/\(shards.count) committed, \(count("started")) started, \(count("failed")) failed")
                if let slurm = c["slurm"]?.objectValue {
                    line +=
                        "  (Slurm array \(slurm["array_job_id"]?.stringValue ?? "?"), merge \(slurm["merge_job_id"]?.stringValue ?? "not submitted")"
                        + (slurm["merge_state"]?.stringValue.map { " \($0)" } ?? "") + ")"
                }
                lines.append(line)
                for s in shards where s["state"]?.stringValue != "committed" {
                    let slurm =
                        s["slurm_state"]?.stringValue.map { "  [Slurm: \($0) \(s["slurm_reason"]?.stringValue ?? "")]" }
                        ?? ""
                    let detail =
                        s["state"]?.stringValue == "failed"
                        ? "failed: \(s["code"]?.stringValue ?? "") \(s["message"]?.stringValue ?? "")"
                        : (s["state"]?.stringValue ?? "").replacingOccurrences(of: "_", with: " ")
                            + (s["progress"]?.objectValue?["records"]?.intValue.map { ", \($0) records" } ?? "")
                    lines.append("    shard \(s["shard"]?.intValue ?? 0): " + detail + slurm)
                }
            }
        }
        let failures = o["recent_failures"]?.arrayValue ?? []
        if !failures.isEmpty {
            lines += ["", "RECENT FAILURES"]
            for f in failures.compactMap(\.objectValue) {
                lines.append(
                    "  \(f["id"]?.stringValue ?? "?")  \(f["code"]?.stringValue ?? "")  \(f["message"]?.stringValue ?? "")"
                )
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `quern cancel`: an active job stops at its next batch (its finished work is
    /// published to `done/JOB/` with status `cancelled`, the records it did not run listed
    /// in `unrun.jsonl.gz`); a pending one is claimed and published the same way at once,
    /// every record listed. Returns what happened, for people.
    public static func cancel(id: String, spool: Spool, roots: [String]) throws -> String {
        /// The file the job checks between batches.
        func requestCancel(in dir: String) throws {
            try Sys.writeFileAtomically(
                Path.join(dir, JobRunner.cancelName),
                JSONWriter.compact(["requested_at": .string(Timestamp.iso8601(SystemTime().now()))]))
        }
        let active = spool.path(.active, id)
        if Sys.isDirectory(active) {
            try requestCancel(in: active)
            // The job may have finished meanwhile: then the marker went with it.
            let finished = Path.join(spool.path(.done, id), JobRunner.cancelName)
            if Sys.exists(finished) {
                try? Sys.unlink(finished)
                return "job \(id) finished before the cancel arrived: done/\(id)/ is complete"
            }
            return "cancel requested: job \(id) stops at its next batch; what it finished goes to done/\(id)/"
        }
        for name in try spool.pending() {
            let path = Path.join(spool.directory(.incoming), name)
            let declared = (try? JSONParser.parse(Sys.readFile(path, limit: 1 << 20)))?.objectValue?["id"]?.stringValue
            guard (declared ?? Path.stem(name)) == id, let claim = try spool.claim(name) else { continue }
            let job = try spool.activate(claim, id: id)
            try requestCancel(in: job.dir)
            let runner = JobRunner(
                spool: spool,
                policy: PathPolicy(base: spool.root, roots: roots, zoo: ModelZoo.configured(spool: spool.root)))
            switch runner.run(job) {
            case .done: return "cancelled pending job \(id): done/\(id)/ lists its records in \(JobRunner.unrunName)"
            case .failed(_, let e):
                return "pending job \(id) could not run to be cancelled: failed/\(id)/ (\(e.message))"
            case .interrupted, .paused: return "job \(id) is cancelled but was interrupted; the next run finishes it"
            }
        }
        for state in [JobState.done, .failed] where Sys.exists(spool.path(state, id)) {
            throw QuernError(.invalidValue, "job \(id) has finished already (\(state.rawValue)/\(id)/)", field: "id")
        }
        if Sys.exists(spool.path(.cluster, id)) {
            throw QuernError(
                .invalidValue,
                "job \(id) runs on a cluster: cancel its array there (scancel), then `quern merge` publishes what finished",
                field: "id")
        }
        throw QuernError(.fileNotFound, "no pending or active job \(id) in \(spool.root)", field: "id")
    }

    /// Where `quern retry` keeps the selection files of the jobs it makes (inside the
    /// spool, so `gc` of the original job does not take them away).
    public static let retriesDirectory = "retries"

    /// `quern retry`: a new pending job `JOB-retry` (`-retry-2`, …) with the finished
    /// job's manifest, reading only its bad records (`errors.jsonl.gz`) and, for a
    /// cancelled or expired job, the records it did not run (`unrun.jsonl.gz`). A job that
    /// failed as a whole is submitted again unchanged. Returns the new job's id and path.
    public static func retry(id: String, spool: Spool) throws -> (id: String, path: String) {
        let done = spool.path(.done, id), failed = spool.path(.failed, id)
        guard let dir = [done, failed].first(where: { Sys.exists(Path.join($0, "manifest.json")) }) else {
            throw QuernError(.fileNotFound, "no finished job \(id) in \(spool.root) (done/ or failed/)", field: "id")
        }
        guard var raw = try JSONParser.parse(Sys.readFile(Path.join(dir, "manifest.json"), limit: 1 << 20)).objectValue
        else {
            throw QuernError(.invalidValue, "\(dir)/manifest.json is not a JSON object", field: "id")
        }
        var newID = id + "-retry", n = 1
        while spool.holdsJob(newID) {
            n += 1
            newID = "\(id)-retry-\(n)"
        }
        raw["id"] = .string(newID)
        if dir == done {
            // The records to read again, as (member, line) lines.
            var lines: [UInt8] = []
            var count = 0
            for name in [RecordErrors.fileName, JobRunner.unrunName] where Sys.exists(Path.join(dir, name)) {
                for record in try JobRunner.selectedRecords(Path.join(dir, name)) {
                    lines += JSONWriter.compact(["member": .string(record.member), "line": .int(Int64(record.line))])
                    lines.append(0x0A)
                    count += 1
                }
            }
            guard count > 0 else {
                throw QuernError(.invalidValue, "job \(id) has no bad or unrun records to retry", field: "id")
            }
            let retries = Path.join(spool.root, retriesDirectory)
            try Sys.mkdirs(retries)
            let select = Path.join(retries, newID + Retention.selectSuffix)
            try Sys.writeFileAtomically(select, lines)
            var input = raw["input"]?.objectValue ?? JSONObject()
            input["select"] = .string(select)
            raw["input"] = .object(input)
        }
        // The deadline of the first attempt is not the retry's.
        raw["deadline"] = nil
        let bytes = JSONWriter.pretty(.object(raw))
        _ = try Manifest.decode(bytes)
        return (newID, try spool.submit(bytes, name: newID + ".json"))
    }

    /// `quern ranges`: each column's minimum and maximum over the float32 vectors of an NPY
    /// file (an embed job's `results.npy.gz`, gzipped or not), written as an NPY of shape
    /// (2, dimension): the `output.ranges` of calibrated int8 / uint8 vectors, and
    /// sentence-transformers' `ranges`. Returns the number of vectors read.
    public static func ranges(input: String, output: String) throws -> Int {
        var spec = RecordSpec(format: .npy)
        spec.wantsFeatures = true
        let stream = try RecordStream(path: input, spec: spec)
        var lo: [Float] = [], hi: [Float] = [], n = 0
        while let item = try stream.next() {
            guard case .record(let r) = item else {
                if case .failure(let f) = item { throw f.error }
                continue
            }
            if n == 0 {
                lo = r.features
                hi = r.features
            } else {
                guard r.features.count == lo.count else {
                    throw QuernError(.invalidValue, "\(input): rows of \(lo.count) and \(r.features.count) values")
                }
                for (d, x) in r.features.enumerated() {
                    lo[d] = min(lo[d], x)
                    hi[d] = max(hi[d], x)
                }
            }
            n += 1
        }
        guard n >= 2 else {
            throw QuernError(.emptyInput, "\(input): ranges need at least 2 vectors, it has \(n)")
        }
        var bytes = NPYHeader.encode(descr: "<f4", shape: [2, lo.count])
        for x in lo + hi { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 } }
        try Sys.writeFileAtomically(output, bytes)
        return n
    }
}
