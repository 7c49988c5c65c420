import Foundation
import QuernCore
import QuernTasks

/// How a cluster job is put on Slurm: the array's size and resources, the binary the
/// nodes run, and what the tasks may read.
public struct SlurmOptions: Sendable {
    /// Array tasks (shards). Tasks that see all their records at once run as one.
    public var tasks: Int
    public var partition: String?
    /// `--time`, in any form sbatch takes (`30`, `2:00:00`, `1-0`).
    public var time: String?
    /// CPUs per task; each task runs Quern's kernels on exactly these (`QUERN_THREADS`).
    public var cpusPerTask = 1
    /// More sbatch options, one `#SBATCH` line each, for both scripts (`--account=x`, `--mem=8G`).
    public var sbatchArgs: [String] = []
    /// The `quern` the tasks run: the same path must work on every node.
    public var quern: String
    /// `--root` directories passed on to `run-shard`.
    public var roots: [String] = []
    /// How often a task that failed for a retryable reason requeues itself.
    public var maxRequeues = 3

    public init(tasks: Int, quern: String) {
        self.tasks = tasks
        self.quern = quern
    }

    /// Array tasks for this task: one for those that cannot be split.
    public func tasks(for task: any JobTask.Type) -> Int { ClusterJob.shardable(task) ? tasks : 1 }
}

/// The Slurm job ids of a submitted cluster job, in `slurm/submission.json`.
public struct SlurmSubmission: Sendable, Equatable {
    public var arrayJobID: String
    public var mergeJobID: String?
    public var tasks: Int

    public var json: JSONValue {
        [
            "array_job_id": .string(arrayJobID), "merge_job_id": mergeJobID.map { .string($0) } ?? .null,
            "tasks": .int(Int64(tasks))
        ]
    }

    init(arrayJobID: String, mergeJobID: String?, tasks: Int) {
        (self.arrayJobID, self.mergeJobID, self.tasks) = (arrayJobID, mergeJobID, tasks)
    }

    init(json: JSONValue) throws {
        guard let o = json.objectValue, let a = o["array_job_id"]?.stringValue, let n = o["tasks"]?.intValue else {
            throw QuernError(.internalError, "a Slurm submission is not {array_job_id, merge_job_id, tasks}")
        }
        self.init(arrayJobID: a, mergeJobID: o["merge_job_id"]?.stringValue, tasks: Int(n))
    }
}

/// Quern on Slurm: a cluster job (see `ClusterJob`) becomes one `sbatch --array=0-(N-1)`
/// of `quern run-shard` tasks and one job running `quern merge` once every task has
/// succeeded (`--dependency=afterok`). Everything Slurm needs is in the job directory:
///
///     cluster/JOB/slurm/array.sbatch      the array script, as submitted
///     cluster/JOB/slurm/merge.sbatch      the merge script (its dependency is on the command line)
///     cluster/JOB/slurm/submission.json   the Slurm job ids, once sbatch accepted them
///     cluster/JOB/slurm/shard-I.log       task I's output, every attempt appended
///     cluster/JOB/slurm/merge.log
///
/// Slurm's interface is its commands, so this is where Quern runs `sbatch` and `squeue`:
/// the one door to Slurm.
public enum Slurm {
    public static let directory = "slurm"
    static let arrayScript = "array.sbatch"
    static let mergeScript = "merge.sbatch"
    static let submissionName = "submission.json"

    // MARK: scripts

    /// The two scripts for the cluster job `id` of `spool`, by their names under `slurm/`.
    public static func scripts(spool: Spool, id: String, task: any JobTask.Type, options: SlurmOptions) -> [String:
        [UInt8]]
    {
        let jobDir = spool.path(.cluster, id), logs = Path.join(jobDir, directory)
        let n = options.tasks(for: task)
        let quern = shellQuote(options.quern)
        var common: [String] = []
        if let p = options.partition { common.append("--partition=\(p)") }
        common += options.sbatchArgs
        let sbatch = { (lines: [String]) in lines.map { "#SBATCH " + $0 }.joined(separator: "\n") }

        let array = """
            #!/bin/bash
            # Quern cluster job \(id): \(n) array task\(n == 1 ? "" : "s"), each running one shard with
            # `quern run-shard`; written by Quern, submitted as `sbatch \(arrayScript)`.
            \(sbatch(["--job-name=quern-\(id)", "--array=0-\(n - 1)", "--requeue", "--open-mode=append",
                      "--output=\(logs)/shard-%a.log", "--chdir=\(logs)", "--cpus-per-task=\(options.cpusPerTask)"]
                     + (options.time.map { ["--time=\($0)"] } ?? []) + common))
            set -u
            # Quern's kernels use exactly the CPUs Slurm gave this task.
            export QUERN_THREADS=${SLURM_CPUS_PER_TASK:-\(options.cpusPerTask)}
            echo "quern: shard ${SLURM_ARRAY_TASK_ID} of \(n) on $(hostname), attempt $((${SLURM_RESTART_COUNT:-0} + 1)), $(date -Is)"

            # Slurm stops a task with SIGTERM (requeue, scancel, time limit). Pass it on:
            # Quern finishes the batch in hand, checkpoints and exits 75.
            \(quern) run-shard \(shellQuote(jobDir)) --shard "${SLURM_ARRAY_TASK_ID}/\(n)"\(options.roots.map { " --root " + shellQuote($0) }.joined()) &
            pid=$!
            trap 'kill -TERM "$pid" 2>/dev/null' TERM
            rc=0; wait "$pid" || rc=$?
            while kill -0 "$pid" 2>/dev/null; do rc=0; wait "$pid" || rc=$?; done

            case $rc in
              0) exit 0 ;;
              65)
                # Failed for good (bad input or model): a rerun would fail the same way.
                # Exit 0 all the same, so that the afterok merge runs: it moves the job to
                # failed/ with this shard's error and keeps the other parts.
                echo "quern: shard ${SLURM_ARRAY_TASK_ID} failed for good (exit 65); not requeued, the merge reports it" >&2
                exit 0 ;;
            esac
            # Retryable (75: interrupted after a checkpoint, another live run, I/O; or killed
            # by a signal): requeue this task, which resumes from its checkpoint, unless
            # Slurm is ending the job itself (cancelled, timed out) or it has been tried enough.
            restarts=${SLURM_RESTART_COUNT:-0}
            state=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
            if [ "$state" = JobState=RUNNING ] && [ "$restarts" -lt \(options.maxRequeues) ]; then
              echo "quern: shard ${SLURM_ARRAY_TASK_ID} exited $rc (retryable); requeueing, restart $((restarts + 1)) of \(options.maxRequeues)" >&2
              scontrol requeue "$SLURM_JOB_ID" && exit 0
            fi
            echo "quern: shard ${SLURM_ARRAY_TASK_ID} exited $rc; not requeued ($state, $restarts restarts)" >&2
            exit "$rc"

            """

        let merge = """
            #!/bin/bash
            # Merges the parts of Quern cluster job \(id) into \(spool.path(.done, id)) (or
            # failed/ when a shard failed for good). Submitted with --dependency=afterok on the
            # array job, so it runs once every task has succeeded.
            \(sbatch(["--job-name=quern-\(id)-merge", "--kill-on-invalid-dep=yes", "--open-mode=append",
                      "--output=\(logs)/merge.log", "--chdir=\(logs)", "--cpus-per-task=1"] + common))
            exec \(quern) merge \(shellQuote(id)) \(shellQuote(spool.root))

            """
        return [
            Path.join(directory, arrayScript): Array(array.utf8), Path.join(directory, mergeScript): Array(merge.utf8)
        ]
    }

    static func shellQuote(_ s: String) -> String {
        s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:,@".contains($0) } && !s.isEmpty
            ? s : "'" + s.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    // MARK: submission

    /// The job's recorded Slurm ids; nil before sbatch has accepted its array.
    public static func submission(jobDir: String) throws -> SlurmSubmission? {
        let path = Path.join(Path.join(jobDir, directory), submissionName)
        guard Sys.exists(path) else { return nil }
        return try SlurmSubmission(json: JSONParser.parse(Sys.readFile(path)))
    }

    /// Whether the job has its scripts but no complete submission: sbatch failed (the
    /// controller was down) or the submitter died in between.
    public static func needsSubmission(jobDir: String) -> Bool {
        Sys.exists(Path.join(Path.join(jobDir, directory), arrayScript))
            && ((try? submission(jobDir: jobDir))??.mergeJobID == nil)
    }

    /// Submits the job's array, then its merge with `afterok` on the array, recording
    /// each id as sbatch accepts it. Safe to call again after a failure: what was
    /// accepted is not submitted twice (a lock keeps two submitters apart).
    public static func submit(jobDir: String) throws -> SlurmSubmission {
        let dir = Path.join(jobDir, directory)
        return try whileSubmitting(dir) {
            var s: SlurmSubmission
            if let saved = try submission(jobDir: jobDir) {
                s = saved
            } else {
                let id = try sbatch([Path.join(dir, arrayScript)])
                s = SlurmSubmission(
                    arrayJobID: id, mergeJobID: nil, tasks: try tasks(inScript: Path.join(dir, arrayScript)))
                try record(s, in: dir)
            }
            if s.mergeJobID == nil {
                s.mergeJobID = try sbatch(["--dependency=afterok:\(s.arrayJobID)", Path.join(dir, mergeScript)])
                try record(s, in: dir)
            }
            return s
        }
    }

    /// Runs `body` holding the job's submission lock, which keeps two submitters (a
    /// daemon's rescan, a `resume`) from sending the same job twice.
    static func whileSubmitting<T>(_ dir: String, _ body: () throws -> T) throws -> T {
        let fd = try Sys.open(Path.join(dir, ".submit.lock"), O_RDWR | O_CREAT)
        defer { Sys.close(fd) }
        try Sys.lock(fd)
        return try body()
    }

    /// Writes the ids sbatch has accepted so far.
    static func record(_ s: SlurmSubmission, in dir: String) throws {
        try Sys.writeFileAtomically(Path.join(dir, submissionName), JSONWriter.pretty(s.json))
    }

    /// Puts a cluster job back on Slurm after what its scripts do not retry: sbatch
    /// refused, or tasks that Slurm ended (cancelled, out of time, out of requeues), which
    /// cancels the merge. Submits the array again for the shards not committed (an
    /// `--array` list overrides the script's range) and a merge after it.
    public static func resume(jobDir: String) throws -> SlurmSubmission {
        guard let previous = try submission(jobDir: jobDir), let merge = previous.mergeJobID else {
            return try submit(jobDir: jobDir)
        }
        guard let queued = queue([previous.arrayJobID, merge]) else {
            throw QuernError(
                .scheduler,
                "squeue did not answer, so whether Slurm still runs this job is unknown; resume when it does")
        }
        guard queued.isEmpty else {
            throw QuernError(
                .usage,
                "Slurm still has this job (\(queued.keys.sorted().map { "\($0) \(queued[$0]!.state)" }.joined(separator: ", "))); nothing to resume"
            )
        }
        let dir = Path.join(jobDir, directory)
        return try whileSubmitting(dir) {
            let missing = try ClusterJob.partStates(jobDir: jobDir, count: previous.tasks).enumerated()
                .filter { $0.element != .committed }.map { String($0.offset) }
            var s = previous
            if !missing.isEmpty {
                s.arrayJobID = try sbatch(["--array=\(missing.joined(separator: ","))", Path.join(dir, arrayScript)])
                s.mergeJobID = nil
                try record(s, in: dir)
            }
            s.mergeJobID = try sbatch(
                (missing.isEmpty ? [] : ["--dependency=afterok:\(s.arrayJobID)"]) + [Path.join(dir, mergeScript)])
            try record(s, in: dir)
            return s
        }
    }

    static func tasks(inScript path: String) throws -> Int {
        let text = String(decoding: try Sys.readFile(path), as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("#SBATCH --array=0-") }),
            let last = Int(line.dropFirst("#SBATCH --array=0-".count))
        else {
            throw QuernError(.internalError, "\(path) has no #SBATCH --array=0-N line")
        }
        return last + 1
    }

    /// Stages a manifest as a cluster job with its Slurm scripts and submits it.
    public static func submit(manifestPath: String, spool: Spool, options: SlurmOptions) throws -> (
        String, SlurmSubmission
    ) {
        let (id, bytes) = try Commands.resolved(
            manifestPath: manifestPath, base: Sys.getcwd(), spool: spool, roots: options.roots)
        let task = try Manifest.decode(bytes).task
        let dir = try spool.stage(bytes, id: id, files: scripts(spool: spool, id: id, task: task, options: options))
        do {
            return (dir, try submit(jobDir: dir))
        } catch let e as QuernError {
            throw QuernError(
                e.code,
                e.message
                    + ". The job stays staged in \(dir); `quern slurm resume \(id) \(spool.root)` submits it when Slurm answers"
            )
        }
    }

    // MARK: the queue

    /// Where Slurm has these jobs, by squeue's id (`12_3` for array task 3 of job 12):
    /// state and reason. Jobs that ended long enough ago are no longer listed. Nil when
    /// squeue is not there or cannot reach the controller.
    public static func queue(_ jobIDs: [String]) -> [String: (state: String, reason: String)]? {
        guard !jobIDs.isEmpty else { return [:] }
        let out: String
        do {
            out = try run("squeue", ["-h", "-r", "-o", "%i %T %r", "-j", jobIDs.joined(separator: ",")])
        } catch let e as QuernError where e.message.contains("Invalid job id specified") {
            // squeue's answer when the one job asked about has ended and been purged.
            return [:]
        } catch {
            return nil
        }
        var states: [String: (String, String)] = [:]
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 2).map(String.init)
            if f.count >= 2 { states[f[0]] = (f[1], f.count > 2 ? f[2] : "") }
        }
        return states
    }

    // MARK: the commands

    static func sbatch(_ arguments: [String]) throws -> String {
        let out = try run("sbatch", ["--parsable"] + arguments)
        // --parsable prints "id" or "id;cluster".
        guard let id = out.split(separator: "\n").last?.split(separator: ";").first, Int(id) != nil else {
            throw QuernError(.scheduler, "sbatch printed no job id: \(out)")
        }
        return String(id)
    }

    /// Runs one of Slurm's commands and returns its output; its stderr is the error.
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        guard
            let path = (Sys.environment("PATH") ?? "/usr/bin:/bin").split(separator: ":")
                .map({ Path.join(String($0), tool) }).first(where: { access($0, X_OK) == 0 })
        else {
            throw QuernError(
                .scheduler,
                "\(tool) is not on PATH: run this on a Slurm login node (Debian: apt-get install slurm-client)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Drain both pipes before waiting (stderr on another thread): a full pipe would
        // block the tool forever.
        nonisolated(unsafe) var e = Data()
        let drained = DispatchGroup()
        DispatchQueue.global().async(group: drained) { e = err.fileHandleForReading.readDataToEndOfFile() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        p.waitUntilExit()
        let stdout = String(decoding: o, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            let why = String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw QuernError(
                .scheduler, "\(tool) \(arguments.joined(separator: " ")) failed (exit \(p.terminationStatus)): \(why)")
        }
        return stdout
    }
}

/// `quern watch --executor slurm`: the daemon hands each claimed manifest to Slurm
/// instead of running it; the merge job publishes it in `done/` (or `failed/`).
public struct SlurmExecutor: Sendable {
    public let options: SlurmOptions

    public init(options: SlurmOptions) { self.options = options }

    /// Stages a claimed manifest as `cluster/id/` with its scripts, drops the claim and
    /// submits. Throws only what is wrong with the job (it then goes to `failed/`); a
    /// refused sbatch leaves the job staged, for `submitPending` to try again.
    func handOff(_ claim: Claim, id: String, spool: Spool) throws {
        let (_, bytes) = try Commands.resolved(
            manifestPath: claim.manifestPath, base: spool.root, spool: spool,
            roots: options.roots, id: id)
        let task = try Manifest.decode(bytes).task
        let dir = try spool.stage(
            bytes, id: id, files: Slurm.scripts(spool: spool, id: id, task: task, options: options))
        try Sys.removeTree(claim.dir)
        Log.shared.info("staged for Slurm", [("job", .string(id)), ("tasks", .int(Int64(options.tasks(for: task))))])
        submit(dir, id: id)
    }

    /// Submits the staged jobs whose submission has not gone through.
    func submitPending(spool: Spool) throws {
        for id in try spool.jobs(.cluster) where Slurm.needsSubmission(jobDir: spool.path(.cluster, id)) {
            submit(spool.path(.cluster, id), id: id)
        }
    }

    private func submit(_ dir: String, id: String) {
        do {
            let s = try Slurm.submit(jobDir: dir)
            Log.shared.info(
                "submitted to Slurm",
                [
                    ("job", .string(id)), ("array_job", .string(s.arrayJobID)),
                    ("merge_job", .string(s.mergeJobID ?? ""))
                ])
        } catch {
            Log.shared.error("Slurm submission failed; will try again: \(error)", [("job", .string(id))])
        }
    }
}
