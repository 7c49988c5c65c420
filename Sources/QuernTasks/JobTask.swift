import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// One kind of job (`predict`, `embed`, `finetune`…): everything Quern knows about it,
/// in one file under `Tasks/`, found through `TaskRegistry`. The spool knows none of
/// this: it decodes the manifest through the registry, asks the task to `prepare`, and
/// runs what comes back — records window by window (`RecordTask`), or the whole input at
/// once (`WholeInputTask`).
public protocol JobTask: SendableMetatype {
    /// The manifest's `task` value.
    static var name: String { get }
    /// The manifest blocks the task reads (each block is refused for other tasks).
    static var blocks: [any ManifestBlock.Type] { get }
    /// Whether the task sees all its records at once (epochs, calibration) and re-reads
    /// them from the start on resume; such tasks run as one shard on a cluster.
    static var readsWholeInput: Bool { get }
    /// Whether its rows are vectors that `output.format: npy` can hold.
    static var writesVectors: Bool { get }
    /// zlib level of its outputs unless the manifest sets one.
    static var defaultCompressionLevel: Int { get }
    /// What the task needs of the manifest, checked when it is decoded, before any file
    /// is read: fields it requires, formats it reads, settings that conflict.
    static func check(_ manifest: Manifest) throws
    /// Loads the model, checks it can do this task (the error says what is missing) and
    /// sets the task up. `quern validate` stops here; the runner goes on to run it.
    static func prepare(_ job: TaskInputs) throws -> PreparedTask
    /// The `metrics` of a cluster job's parts as one (sums recomputed from counts).
    static func combineMetrics(_ parts: [JSONObject]) -> JSONObject?
}

extension JobTask {
    public static var blocks: [any ManifestBlock.Type] { [] }
    public static var readsWholeInput: Bool { false }
    public static var writesVectors: Bool { false }
    public static var defaultCompressionLevel: Int { 6 }
    public static func combineMetrics(_ parts: [JSONObject]) -> JSONObject? { parts.first }
}

/// Every task Quern runs: adding a task is one file and one line here. The order is the
/// order errors list them in.
public enum TaskRegistry {
    public static let tasks: [any JobTask.Type] = [
        PredictTask.self,
        EmbedTask.self,
        ScoreTask.self,
        EvaluateTask.self,
        GenerateTask.self,
        FinetuneTask.self,
        QuantizeTask.self,
        PruneTask.self
    ]

    public static var names: [String] { tasks.map { $0.name } }

    public static func task(named name: String) -> (any JobTask.Type)? { tasks.first { $0.name == name } }

    /// Every block any task reads, once each.
    static var blockTypes: [any ManifestBlock.Type] {
        var seen: Set<String> = []
        return tasks.flatMap { $0.blocks }.filter { seen.insert($0.key).inserted }
    }
}

/// What a task is prepared from: the manifest and its paths, resolved and checked
/// against the spool's roots.
public struct TaskInputs {
    public let manifest: Manifest
    public let modelPath: String
    public let inputPath: String
    /// For paths the task's own blocks name (`score.queries`).
    public let policy: PathPolicy
    /// The zoo entry the model came from, when the manifest named one.
    public let zoo: ModelZoo.Entry?

    public init(
        manifest: Manifest, modelPath: String, inputPath: String, policy: PathPolicy, zoo: ModelZoo.Entry? = nil
    ) {
        self.manifest = manifest
        self.modelPath = modelPath
        self.inputPath = inputPath
        self.policy = policy
        self.zoo = zoo
    }

    /// The model's name where results name it (OpenAI batch lines): the zoo name, else
    /// the directory's or file's.
    public var modelName: String { zoo?.name ?? Path.basename(modelPath) }

    /// The report's model section gains the zoo entry: its name and the digest of the
    /// files the job read, as the pinning reference.
    public func annotate(_ report: inout Report) {
        guard let zoo, var o = report["model"]?.objectValue else { return }
        o["zoo"] = ["name": .string(zoo.name), "digest": .string(zoo.digest), "reference": .string(zoo.pinned)]
        report["model"] = .object(o)
    }

    /// The job's model through the registry, at the manifest's precision and length.
    public func loadModel(precision: Manifest.Precision? = nil, allowArchitectureOnly: Bool = false) throws -> any Model
    {
        try ModelRegistry.load(
            modelPath,
            ModelOptions(
                precision: LinearOperator.Precision(rawValue: (precision ?? manifest.precision).rawValue)!,
                maxLength: manifest.maxLength,
                allowArchitectureOnly: allowArchitectureOnly))
    }

    /// The error when the model lacks what the task needs: which capability, which
    /// families have it, and what this model is.
    public func lacks<C>(_ capability: C.Type, _ what: String, model: any Model) -> QuernError {
        let families = ModelRegistry.families(providing: capability)
        return QuernError(
            .modelInvalid,
            "task \(manifest.task.name) needs \(what) (\(families.joined(separator: ", ")) famil\(families.count == 1 ? "y" : "ies")); \(modelPath) is \(model.family)",
            field: "model")
    }
}

/// A task set up to run: a record loop or a whole-input run, and what both say about
/// themselves in reports and in `quern validate`.
public enum PreparedTask {
    case records(any RecordTask)
    case wholeInput(any WholeInputTask)

    public var run: any PreparedRun {
        switch self {
        case .records(let r): r
        case .wholeInput(let w): w
        }
    }
}

/// What every prepared task tells: the model it loaded and how it reads records.
public protocol PreparedRun {
    /// The model's report section: path, family, weights' digest.
    var model: any Model { get }
    /// The record decoder settings.
    var spec: RecordSpec { get }
    /// Features each record must have, when the model takes a fixed number
    /// (`quern validate` checks sampled records against it).
    var inputSize: Int? { get }
    /// The shape of the error file's lines, when the input format has its own (nil:
    /// Quern's `{id, member, line, code, message}`).
    var errorLine: RecordErrors.LineFormat? { get }
}

extension PreparedRun {
    public var errorLine: RecordErrors.LineFormat? { nil }
}

/// A task that streams records: the runner reads a window of `window` records, hands it
/// to `run`, writes each outcome as a result line or an error line, and checkpoints
/// `state` with the output files so a crash resumes exactly.
public protocol RecordTask: AnyObject, PreparedRun {
    /// Records handed to `run` at a time: text tasks take many, to share whole passes
    /// between the cores.
    var window: Int { get }
    /// One outcome per record, in order: a result row or a record-level error.
    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>]
    /// Running totals, carried across a crash by the checkpoint.
    var state: JSONValue { get }
    func restore(_ state: JSONValue) throws
    /// Job-level metrics for report.json (nil for tasks without any).
    func metrics() -> JSONValue?
    /// Running totals of the units the task produces besides records (generate: tokens),
    /// checkpointed with `state`: progress and the report show each one's rate.
    var counters: [(name: String, value: Int)] { get }
}

extension RecordTask {
    public var counters: [(name: String, value: Int)] { [] }
}

/// A task that reads every record before it can do anything (training, calibration):
/// bad records go to the job's error file, its own checkpoints (if any) go in the job
/// directory, and it ends by writing the files it publishes there.
public protocol WholeInputTask: PreparedRun {
    func run(_ context: WholeInputContext) throws -> WholeInputOutcome
}

/// What a whole-input task runs with.
public struct WholeInputContext {
    /// The job directory: the task's checkpoints and published files go here.
    public let directory: String
    public let inputPath: String
    public let log: JobLog
    public let time: any TimeSource
    public let errors: RecordErrors
    /// Shown by `quern status` (the lease's progress).
    public let progress: (JSONValue) -> Void
    /// True once the job should checkpoint and stop (SIGTERM): asked between batches.
    public let shouldStop: () -> Bool

    public init(
        directory: String, inputPath: String, log: JobLog, time: any TimeSource, errors: RecordErrors,
        progress: @escaping (JSONValue) -> Void, shouldStop: @escaping () -> Bool
    ) {
        self.directory = directory
        self.inputPath = inputPath
        self.log = log
        self.time = time
        self.errors = errors
        self.progress = progress
        self.shouldStop = shouldStop
    }

    public func file(_ name: String) -> String { Path.join(directory, name) }
    /// The job's id.
    public var id: String { log.id }
}

public enum WholeInputOutcome {
    /// Done: the report's task sections and the files it wrote into the job directory.
    case finished(TaskResult)
    /// Stopped by a signal after its last checkpoint; run again, it resumes there.
    case interrupted
}

/// What a whole-input task leaves for the runner to publish.
public struct TaskResult {
    public var report: Report
    /// Files and directories it wrote into the job directory (`model`, `training.svg`).
    public var published: [String]
    /// Fields of the "job done" log line.
    public var summary: [(String, JSONValue)]

    public init(report: Report, published: [String], summary: [(String, JSONValue)]) {
        self.report = report
        self.published = published
        self.summary = summary
    }
}
