import ArgumentParser
import Foundation
import QuernCore
import QuernData
import QuernSpool
import QuernTasks

/// Exit codes (DESIGN.md §2): 0 success, 1 a job (or the manifest) failed,
/// 2 usage or configuration error, 75 another run holds the spool lock.
enum Exit {
    static let failed = ExitCode(1)
    static let usage = ExitCode(2)
    static let locked = ExitCode(75)
    /// `run-shard`: try again later (interrupted, another live run, I/O); sysexits' EX_TEMPFAIL.
    static let retry = ExitCode(75)
    /// `run-shard`: failed for good (bad input or model); sysexits' EX_DATAERR. Do not requeue.
    static let permanent = ExitCode(65)
}

struct SpoolOptions: ParsableArguments {
    @Argument(help: "The spool directory (default: $QUERN_SPOOL, else ./spool).")
    var spool: String?

    @Option(
        name: .customLong("root"),
        help: "A directory manifests may read from besides the spool (repeatable; also $QUERN_ROOTS).")
    var roots: [String] = []

    func open() throws -> Spool {
        let path = spool ?? Sys.environment("QUERN_SPOOL") ?? "spool"
        do {
            return try Spool(root: path)
        } catch {
            Log.shared.error("cannot open spool \(path): \(error)")
            throw Exit.usage
        }
    }

    var allowedRoots: [String] { PathPolicy.configuredRoots(roots) }
}

/// Prints a QuernError as JSON on stdout (for scripts) and as a log line on stderr.
func report(_ error: Error, json: Bool = true) {
    let e = (error as? QuernError) ?? (error as? SystemError)?.asQuernError ?? QuernError(.internalError, "\(error)")
    var o = JSONObject()
    o["code"] = .string(e.code.rawValue)
    o["message"] = .string(e.message)
    if let f = e.field { o["field"] = .string(f) }
    if let l = e.line { o["line"] = .int(Int64(l)) }
    if json { print(String(decoding: JSONWriter.pretty(.object(o)), as: UTF8.self), terminator: "") }
    Log.shared.error(
        e.message, [("code", .string(e.code.rawValue))] + (e.field.map { [("field", JSONValue.string($0))] } ?? []))
}

/// Runs a command's work; a failure is reported (JSON on stdout, a log line) and exits 1.
func failingWithReport(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch {
        report(error)
        throw Exit.failed
    }
}

@main
struct Quern: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Batch machine-learning jobs from a spool directory.",
        subcommands: [
            Watch.self, Run.self, Submit.self, Validate.self, Status.self, Inspect.self, Tokenize.self, Dequantize.self,
            Bench.self,
            Stage.self, RunShard.self, Merge.self, SlurmCommand.self, RunJob.self, Pause.self, Resume.self,
            Drain.self, GC.self, Cancel.self, Retry.self, Ranges.self, Models.self
        ])
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run as a daemon: claim and run jobs as they arrive; SIGTERM checkpoints and exits 0. With --executor slurm, hand each job to Slurm as an array of shards and a merge instead."
    )
    @OptionGroup var options: SpoolOptions
    @Option(help: "Seconds between full rescans of incoming/ (inotify can drop events).")
    var rescan: Double = 2
    @Option(help: "MiB the spool's disk must have free before a job starts (a full disk pauses jobs).")
    var minFreeMb: Int = 64
    @Option(help: "Where jobs run: local (this process) or slurm (an sbatch array per job; the merge lands in done/).")
    var executor: Executor = .local
    @Option(help: "A Prometheus textfile to keep current (overrides quern.json's \"metrics\").")
    var metrics: String?
    @OptionGroup(title: "Slurm (with --executor slurm)") var slurm: SlurmArguments

    enum Executor: String, ExpressibleByArgument { case local, slurm }

    func run() throws {
        let daemon = try supervisedDaemon(options, minFreeMB: minFreeMb, metrics: metrics)
        daemon.rescanInterval = rescan
        if executor == .slurm {
            daemon.executor = SlurmExecutor(options: try slurm.options(roots: options.allowedRoots))
        }
        try daemon.watch()
    }
}

/// The sbatch choices `quern slurm submit` and `quern watch --executor slurm` share.
struct SlurmArguments: ParsableArguments {
    @Option(help: "Array tasks (shards) per job; finetune, quantize and prune jobs run as one.")
    var tasks: Int = 1
    @Option(help: "sbatch --partition.")
    var partition: String?
    @Option(help: "sbatch --time for each task (e.g. 30, 2:00:00).")
    var time: String?
    @Option(help: "CPUs per task; Quern's kernels use exactly these.")
    var cpusPerTask: Int = 1
    @Option(
        name: .customLong("sbatch-arg"),
        help: "Another sbatch option for the array and the merge, e.g. --sbatch-arg=--account=ml (repeatable).")
    var sbatchArgs: [String] = []
    @Option(help: "Requeues of a task that failed for a retryable reason.")
    var maxRequeues: Int = 3
    @Option(help: "The quern binary the nodes run (default: this one; it must be at the same path on every node).")
    var quern: String?

    func options(roots: [String]) throws -> SlurmOptions {
        guard tasks >= 1, cpusPerTask >= 1, maxRequeues >= 0 else {
            throw ValidationError("--tasks and --cpus-per-task must be at least 1, --max-requeues at least 0")
        }
        var o = SlurmOptions(
            tasks: tasks,
            quern: try quern.map { Path.absolute($0, relativeTo: Sys.getcwd()) } ?? Sys.realpath("/proc/self/exe"))
        o.partition = partition
        o.time = time
        o.cpusPerTask = cpusPerTask
        o.sbatchArgs = sbatchArgs
        o.maxRequeues = maxRequeues
        o.roots = roots.map { Path.absolute($0, relativeTo: Sys.getcwd()) }
        return o
    }
}

struct SlurmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm", abstract: "Run jobs on a Slurm cluster.",
        subcommands: [SlurmSubmit.self, SlurmResume.self])
}

struct SlurmSubmit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract:
            "Stage a manifest as SPOOL/cluster/JOB/ and submit it: an sbatch array of `quern run-shard` tasks and a `quern merge` job after them (afterok). Prints the job directory and both Slurm job ids."
    )
    @Argument(help: "The manifest (JSON). Relative paths in it resolve against the current directory.")
    var manifest: String
    @OptionGroup var options: SpoolOptions
    @OptionGroup var slurm: SlurmArguments

    func run() throws {
        let spool = try options.open()
        try failingWithReport {
            let (dir, s) = try Slurm.submit(
                manifestPath: manifest, spool: spool, options: try slurm.options(roots: options.allowedRoots))
            printSubmission(dir, s)
        }
    }
}

struct SlurmResume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract:
            "Submit a staged cluster job again: after sbatch was refused, or after Slurm ended tasks (cancelled, out of time, out of requeues) and so cancelled the merge. Only the shards not committed run again; a merge follows them. Prints the new ids."
    )
    @Argument(help: "The job id (SPOOL/cluster/JOB).")
    var id: String
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        try failingWithReport {
            let dir = spool.path(.cluster, id)
            guard Sys.isDirectory(Path.join(dir, Slurm.directory)) else {
                throw QuernError(
                    .fileNotFound,
                    "no Slurm cluster job \"\(id)\" in \(spool.directory(.cluster)) (submit one with `quern slurm submit`)"
                )
            }
            printSubmission(dir, try Slurm.resume(jobDir: dir))
        }
    }
}

/// The job directory and the submission's ids, as JSON.
func printSubmission(_ dir: String, _ s: SlurmSubmission) {
    let o = JSONObject([("job_dir", .string(dir))] + (s.json.objectValue?.pairs ?? []))
    print(String(decoding: JSONWriter.pretty(.object(o)), as: UTF8.self), terminator: "")
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "For cron: process everything pending, then exit (1 if a job failed, 75 if another run holds the spool).")
    @Flag(help: "Process what is pending and exit (the only mode; required for clarity in crontabs).")
    var once = false
    @Option(help: "MiB the spool's disk must have free before a job starts (a full disk pauses jobs; then exit 75).")
    var minFreeMb: Int = 64
    @Option(help: "A Prometheus textfile to write (overrides quern.json's \"metrics\").")
    var metrics: String?
    @OptionGroup var options: SpoolOptions

    func run() throws {
        guard once else { throw ValidationError("use `quern run --once`; `quern watch` is the daemon") }
        let daemon = try supervisedDaemon(options, minFreeMB: minFreeMb, metrics: metrics)
        guard let ok = try daemon.runOnce() else {
            Log.shared.warning("another quern run holds the spool lock; exiting")
            throw Exit.locked
        }
        if !ok { throw Exit.failed }
        if daemon.waitingForRoom { throw Exit.retry }
    }
}

/// A daemon that runs each job in a child process of this binary (`quern run-job`).
/// Its settings come from the spool's quern.json; `metrics` overrides the file's.
func supervisedDaemon(_ options: SpoolOptions, minFreeMB: Int, metrics: String? = nil) throws -> Daemon {
    let spool = try options.open()
    let daemon = Daemon(spool: spool, roots: options.allowedRoots)
    daemon.minFreeMB = minFreeMB
    daemon.supervisor = JobSupervisor(
        spool: spool, roots: options.allowedRoots, executable: try Sys.realpath("/proc/self/exe"))
    do {
        var config = try SpoolConfig.load(spool)
        if let metrics { config.metrics = Path.absolute(metrics, relativeTo: Sys.getcwd()) }
        daemon.config = config
    } catch {
        Log.shared.error("\(error)")
        throw Exit.usage
    }
    return daemon
}

/// The job process a daemon starts for each job (not for people: `watch` and `run --once`
/// run it). Exits 0 when the job is done, 65 when it failed (moved to failed/), 75 when it
/// stopped at a checkpoint (a signal, or a full disk).
struct RunJob: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-job", abstract: "Run one claimed job (started by watch and run --once).", shouldDisplay: false
    )
    @Argument(help: "The spool.")
    var spool: String
    @Argument(help: "The job id (in active/).")
    var id: String
    @Option(help: "The descriptor of the job's lock, inherited from the supervisor.")
    var lockFd: Int32
    @Option(help: "This process's address space, in MiB.")
    var maxMemoryMb: Int?
    @Option(name: .customLong("root"), help: "Directories the job's paths may lead to.")
    var roots: [String] = []

    func run() throws {
        if let mb = maxMemoryMb { try Sys.limitAddressSpace(bytes: mb << 20) }
        StopSignal.install()
        // The job lives and dies with its supervisor, as it did when it ran in the daemon:
        // killed with it, the job stays in active/ and the next daemon resumes it.
        JobSupervisor.dieWithParent()
        let spool = try Spool(root: spool)
        spool.supervisor = getppid()
        let job = spool.supervisedJob(id, lockFD: lockFd)
        try spool.noteOwner(job)
        let runner = JobRunner(
            spool: spool,
            policy: PathPolicy(base: spool.root, roots: roots, zoo: ModelZoo.configured(spool: spool.root)))
        switch runner.run(job) {
        case .done: return
        case .failed: throw Exit.permanent
        case .interrupted, .paused: throw Exit.retry
        }
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a manifest, then publish it atomically into the spool's incoming/.")
    @Argument(help: "The manifest (JSON). Relative paths in it resolve against the current directory.")
    var manifest: String
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        try failingWithReport {
            let path = try Commands.submit(manifestPath: manifest, spool: spool, roots: options.allowedRoots)
            print(path)
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a manifest and the files it names without running it.")
    @Argument(help: "The manifest (JSON).")
    var manifest: String
    @Option(name: .customLong("root"), help: "A directory the manifest may read from (repeatable; also $QUERN_ROOTS).")
    var roots: [String] = []

    func run() throws {
        try failingWithReport {
            let cwd = Sys.getcwd()
            let (_, summary) = try Commands.validate(
                manifestPath: manifest, base: cwd,
                roots: PathPolicy.configuredRoots(roots) + [cwd],
                zoo: ModelZoo.configured(spool: Sys.environment("QUERN_SPOOL") ?? "spool"))
            print(String(decoding: JSONWriter.pretty(summary), as: UTF8.self), terminator: "")
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Jobs per state, running jobs' progress, recent failures.")
    @OptionGroup var options: SpoolOptions
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let status = try Commands.status(spool: try options.open())
        if json {
            print(String(decoding: JSONWriter.pretty(status), as: UTF8.self), terminator: "")
        } else {
            print(Commands.statusTable(status))
        }
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Token ids of JSONL texts with a model's tokenizer (tokenizer.json or vocab.txt), one JSON line each.",
        discussion:
            "WordPiece or byte-level BPE, as tokenizer.json's model type says. --decode reads \"ids\" arrays instead and prints the BPE decoding of each."
    )
    @Argument(help: "A model directory with tokenizer.json or vocab.txt.")
    var model: String
    @Option(help: "JSONL input (default: standard input).")
    var input: String?
    @Option(help: "The text field.")
    var field: String = "text"
    @Option(help: "A second text field: encode each line as a sentence pair.")
    var pairField: String?
    @Option(help: "Truncate to this many tokens, special tokens included.")
    var maxLength: Int?
    @Flag(inversion: .prefixedNo, help: "Add the tokenizer's special tokens (the template's BOS, [CLS]/[SEP]).")
    var specialTokens = true
    @Flag(help: "Decode each line's \"ids\" to {\"text\", \"streamed\"} (BPE).")
    var decode = false
    @Flag(help: "When decoding, drop special tokens.")
    var skipSpecialTokens = false

    func run() throws {
        try failingWithReport {
            var out: [UInt8] = []
            try ModelTools.tokenize(
                model: model, input: input, field: field, pairField: pairField, maxLength: maxLength,
                addSpecialTokens: specialTokens, decode: decode, skipSpecialTokens: skipSpecialTokens
            ) {
                out += $0
                if out.count >= 1 << 20 { try Sys.writeAll(1, out); out.removeAll(keepingCapacity: true) }
            }
            try Sys.writeAll(1, out)
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model directory: family, layers, shapes, dtype, size.")
    @Argument(help: "A model directory (config.json + model.safetensors).")
    var model: String

    func run() throws {
        try failingWithReport {
            print(String(decoding: JSONWriter.pretty(try ModelTools.inspect(model)), as: UTF8.self), terminator: "")
        }
    }
}

struct Dequantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Raw little-endian float32 values of a GGUF's tensors, dequantized, on standard output.",
        shouldDisplay: false)
    @Argument(help: "A GGUF file.")
    var gguf: String
    @Argument(help: "Tensors to write, in this order (default: every tensor, in file order).")
    var tensors: [String] = []

    func run() throws {
        try failingWithReport { try ModelTools.dequantize(gguf: gguf, names: tensors) { try Sys.writeAll(1, $0) } }
    }
}

struct Stage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Validate a manifest and stage it as the cluster job SPOOL/cluster/JOB/, for a scheduler's array tasks (`quern run-shard`) and `quern merge`; prints the job directory."
    )
    @Argument(help: "The manifest (JSON). Relative paths in it resolve against the current directory.")
    var manifest: String
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        try failingWithReport {
            print(try Commands.stage(manifestPath: manifest, spool: spool, roots: options.allowedRoots))
        }
    }
}

struct RunShard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-shard",
        abstract:
            "Run one shard of a staged cluster job and commit its part. Exit 0: committed (or committed already by another run); 75: try again (interrupted, another live run, I/O); 65: failed for good (bad input or model), do not requeue."
    )
    @Argument(help: "The cluster job: its directory (SPOOL/cluster/JOB) or its manifest.json.")
    var job: String
    @Option(
        help:
            "INDEX/COUNT, 0-based (default: from SLURM_ARRAY_TASK_ID, _MIN and _COUNT, or JOB_COMPLETION_INDEX with --shard-count)."
    )
    var shard: String?
    @Option(help: "Shards in all, for JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's completions).")
    var shardCount: Int?
    @Option(
        name: .customLong("root"),
        help: "A directory the manifest may read from besides the spool (repeatable; also $QUERN_ROOTS).")
    var roots: [String] = []

    func run() throws {
        var dir = Path.absolute(job, relativeTo: Sys.getcwd())
        if Sys.isRegularFile(dir) { dir = Path.dirname(dir) }
        let spoolRoot = Path.dirname(Path.dirname(dir))
        do {
            guard
                let s = try shard.map(Shard.init(parsing:))
                    ?? Shard.fromEnvironment(ProcessInfo.processInfo.environment, count: shardCount)
            else {
                throw QuernError(
                    .usage,
                    "no shard given: pass --shard INDEX/COUNT, or run as a Slurm array task or a Kubernetes Indexed Job pod"
                )
            }
            let policy = PathPolicy(
                base: spoolRoot, roots: PathPolicy.configuredRoots(roots), zoo: ModelZoo.configured(spool: spoolRoot))
            switch try ClusterJob.runShard(jobDir: dir, shard: s, policy: policy) {
            case .committed(let path): print(path)
            case .alreadyCommitted(let path):
                Log.shared.info(
                    "shard \(s) was already committed by another run; nothing changed", [("part", .string(path))])
                print(path)
            case .failed(let e):
                report(e)
                throw e.code.retryable ? Exit.retry : Exit.permanent
            case .interrupted:
                Log.shared.warning("shard \(s) stopped by a signal after a checkpoint; a new run resumes it")
                throw Exit.retry
            case .busy:
                Log.shared.warning("shard \(s) is being run by another live process")
                throw Exit.retry
            }
        } catch let e as QuernError {
            report(e)
            throw e.code.retryable ? Exit.retry : Exit.permanent
        } catch let e as SystemError {
            report(e)
            throw Exit.retry
        }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Assemble a cluster job's committed parts into SPOOL/done/JOB/: one results file in input order, one error file, one report. Exit 1 naming the shards not committed yet, or the failed ones (the job then goes to failed/)."
    )
    @Argument(help: "The job id (SPOOL/cluster/JOB).")
    var id: String
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        try failingWithReport {
            print(try ClusterJob.merge(spool: spool, id: id))
        }
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Claim nothing new from the spool (running jobs go on) until `quern resume`.")
    @OptionGroup var options: SpoolOptions
    @Option(help: "Why, for `quern status`.")
    var reason: String?

    func run() throws {
        let spool = try options.open()
        try spool.pause(reason: reason)
        print("paused \(spool.root)")
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lift `quern pause`: daemons claim again.")
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        print(try spool.resume() ? "resumed \(spool.root)" : "\(spool.root) was not paused")
    }
}

struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Ask this host's daemons of the spool (SIGUSR1) to finish their running job, claim nothing new and exit 0.")
    @OptionGroup var options: SpoolOptions
    @Option(help: "Seconds to wait for them to exit (0: do not wait).")
    var wait: Double = 0

    func run() throws {
        let spool = try options.open()
        let (pids, elsewhere) = try spool.signalDaemons()
        print("asked \(pids.count) daemon(s) to drain: \(pids.map(String.init).joined(separator: " "))")
        if !elsewhere.isEmpty {
            print("daemons on other hosts (drain them there): \(elsewhere.joined(separator: " "))")
        }
        let deadline = SystemTime().monotonic() + wait
        while wait > 0, pids.contains(where: spool.daemonRunning), SystemTime().monotonic() < deadline {
            StopSignal.sleep(0.2)
        }
        let left = pids.filter(spool.daemonRunning)
        if !left.isEmpty {
            if wait > 0 {
                print("still running (their jobs have not finished): \(left.map(String.init).joined(separator: " "))")
            }
            if wait > 0 { throw ExitCode(75) }
        }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract:
            "Remove (or archive) finished jobs in done/ and failed/: those older than --keep-days and not among the newest --keep-last of their state. Never an active job."
    )
    @OptionGroup var options: SpoolOptions
    @Option(help: "Keep jobs that finished less than this many days ago.")
    var keepDays: Double?
    @Option(help: "Keep the newest this many jobs of each state (done, failed).")
    var keepLast: Int?
    @Option(help: "Move the jobs to ARCHIVE/done/ and ARCHIVE/failed/ (same file system) instead of deleting them.")
    var archive: String?

    func run() throws {
        guard keepDays != nil || keepLast != nil else {
            throw ValidationError("give --keep-days, --keep-last or both: without either gc would keep everything")
        }
        guard (keepDays ?? 0) >= 0, (keepLast ?? 0) >= 0 else {
            throw ValidationError("--keep-days and --keep-last must not be negative")
        }
        let spool = try options.open()
        let policy = Retention(
            keepDays: keepDays, keepLast: keepLast, archive: archive.map { Path.absolute($0, relativeTo: Sys.getcwd()) }
        )
        let outcome = try policy.apply(to: spool, now: SystemTime().now())
        print(String(decoding: JSONWriter.pretty(outcome.json), as: UTF8.self), terminator: "")
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Cancel a pending or active job: it stops at its next batch, and what it finished is published to done/JOB/ with status cancelled (the records not run in unrun.jsonl.gz)."
    )
    @Argument(help: "The job id.")
    var id: String
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        try failingWithReport { print(try Commands.cancel(id: id, spool: spool, roots: options.allowedRoots)) }
    }
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Submit a finished job again, reading only its bad records (errors.jsonl.gz) and, when it was cancelled or expired, the records it did not run; a job that failed as a whole is submitted unchanged."
    )
    @Argument(help: "The finished job's id.")
    var id: String
    @OptionGroup var options: SpoolOptions

    func run() throws {
        let spool = try options.open()
        try failingWithReport {
            let (newID, path) = try Commands.retry(id: id, spool: spool)
            print("submitted \(newID): \(path)")
        }
    }
}

struct Ranges: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Each dimension's minimum and maximum over an NPY of float32 vectors (an embed job's results.npy.gz), as the NPY that output.ranges (calibrated int8/uint8 vectors) reads."
    )
    @Argument(help: "The float32 vectors (.npy, or .npy.gz).")
    var input: String
    @Argument(help: "The ranges file to write (.npy, shape (2, dimension)).")
    var output: String

    func run() throws {
        try failingWithReport {
            let n = try Commands.ranges(input: input, output: output)
            print("ranges of \(n) vectors: \(output)")
        }
    }
}
