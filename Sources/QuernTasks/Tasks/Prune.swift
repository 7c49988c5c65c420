import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// `prune`: magnitude pruning of every weight matrix of a layer-stack model to a target
/// sparsity (per layer or global; unstructured, 1×4 blocks or 2:4), either at once or
/// gradually on Zhu & Gupta's cubic schedule during recovery training on the job's
/// labelled records (the `train` block, as `finetune` reads it). Publishes the sparse
/// model (zeros stored; the loader picks sparse kernels where they win) and reports
/// per-matrix sparsity, accuracy before and after on held-out records, and the measured
/// inference speed of both.
public enum PruneTask: JobTask {
    public static let name = "prune"
    public static let blocks: [any ManifestBlock.Type] = [Pruning.self, TrainingBlock.self]
    public static let readsWholeInput = true

    /// The `prune` block.
    public struct Pruning: ManifestBlock, Equatable {
        public static let key = "prune"
        public var sparsity = 0.8
        public var pattern = "unstructured"
        public var scope = "layer"
        /// `oneshot` prunes once; `cubic` prunes gradually during recovery training.
        public var schedule = "cubic"
        public var recoveryEpochs = 10

        public init() {}

        public init(from p: inout StrictObject) throws {
            if let v = try p.number("sparsity") {
                guard v >= 0, v < 1 else {
                    throw QuernError(
                        .invalidValue, "prune.sparsity must be in [0, 1), e.g. 0.8", field: "prune.sparsity")
                }
                sparsity = v
            }
            pattern = try p.choice("pattern", Pruner.Pattern.allCases.map(\.rawValue)) ?? pattern
            scope = try p.choice("scope", Pruner.Scope.allCases.map(\.rawValue)) ?? scope
            schedule = try p.choice("schedule", ["oneshot", "cubic"]) ?? schedule
            recoveryEpochs = try p.int("recovery_epochs", range: 0...100_000) ?? recoveryEpochs
        }
    }

    public static func check(_ m: Manifest) throws {
        _ = try m.modelField("an fp32 model directory")
        if m.input.format == .txt {
            throw QuernError(
                .unsupportedFormat, "task prune needs feature records (csv, jsonl, npy or idx)", field: "input.format")
        }
        if m.block(Pruning.self).recoveryEpochs > 0 && !m.input.hasLabels {
            throw QuernError(
                .missingField,
                "prune.recovery_epochs > 0 trains on the records, which needs input.label_field (or set recovery_epochs to 0)",
                field: "input.label_field")
        }
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        .wholeInput(PruneRun(stack: try StackSource(job)))
    }
}

struct PruneRun: StackTransform {
    let stack: StackSource

    func run(_ context: WholeInputContext) throws -> WholeInputOutcome {
        let (manifest, source, fp32) = (stack.job.manifest, stack.model, stack.fp32)
        let config = source.config
        let settings = manifest.block(PruneTask.Pruning.self), training = manifest.block(TrainingBlock.self)
        let labelled = manifest.input.labelField != nil
        let records = try RecordSet.read(manifest, config: config, context: context, labels: labelled)
        let recovery = labelled ? settings.recoveryEpochs : 0

        // Held-out records measure before and after; the rest train the recovery.
        let all = LabeledSamples(
            inputs: records.inputs, sampleShape: config.inputShape,
            labels: records.labels ?? [Int](repeating: 0, count: records.count))
        var (train, held) =
            recovery > 0
            ? all.split(validation: max(training.validationSplit, 0.1), seed: UInt64(training.seed))
            : (all, all)
        var evaluation = RecordSet(inputs: held.inputs, labels: labelled ? held.labels : nil)
        evaluation.succeeded = held.count
        let before = evaluation.evaluate(source)

        let net = try config.network(tensors: fp32.tensors, seed: UInt64(training.seed))
        let matrices = try config.matrices()
        var pruner = Self.pruner(
            net, matrices, pattern: Pruner.Pattern(rawValue: settings.pattern) ?? .unstructured,
            scope: Pruner.Scope(rawValue: settings.scope) ?? .layer)
        var history: [EpochRecord] = []
        var stopping = EarlyStopping(patience: training.patience)
        if recovery == 0 {
            pruner.prune(to: settings.sparsity)
        } else {
            if let (mean, scale) = fp32.normalizer {
                Standardizer.apply(&train, mean: mean, scale: scale)
                Standardizer.apply(&held, mean: mean, scale: scale)
            }
            guard let loop = try recover(net, &pruner, train: train, held: held, epochs: recovery, context: context)
            else {
                return .interrupted
            }
            (history, stopping) = (loop.state.history, loop.state.stopping)
        }

        // The pruned model, as the loader will run it.
        let tensors = net.state
        let pruned = try StackModel(config: config, tensors: tensors, normalizer: fp32.normalizer)
        let after = evaluation.evaluate(pruned)
        // Speed on every record (the held-out ones alone are too few to time), both models in turn.
        let speed = records.throughput(of: [source, pruned])
        try publishModel(
            context, config: config, tensors: tensors.mapValues { ($0.shape, .f32($0.data)) },
            normalizer: fp32.normalizer)
        var published = ["model"]
        if !history.isEmpty {
            let svg = TrainingPlot.svg(
                history, title: "\(context.id): recovery training to \(Int(settings.sparsity * 100)) % sparsity")
            try Sys.writeFileAtomically(context.file("training.svg"), Array(svg.utf8), durability: .content)
            published.append("training.svg")
        }

        var report = Report(id: context.id, task: PruneTask.name)
        report["model"] = Report.model(source, [("published", "model/")])
        report["records"] = Report.records(
            succeeded: records.succeeded, failed: context.errors.count,
            [("train", recovery > 0 ? train.count : 0), ("evaluated", held.count)])
        report["pruning"] = .object(
            describe(
                pruner, matrices, pruned: pruned, recovery: recovery,
                stoppedAfter: stopping.stopped ? history.count : nil))
        var metrics = JSONObject()
        metrics["accuracy_before"] = before.accuracy.map { .double($0) } ?? .null
        metrics["accuracy_after"] = after.accuracy.map { .double($0) } ?? .null
        if let a = before.accuracy, let b = after.accuracy {
            metrics["accuracy_change_points"] = .double((b - a) * 100)
        }
        metrics["dense_records_per_second"] = .double(speed[0])
        metrics["pruned_records_per_second"] = .double(speed[1])
        metrics["speedup"] = .double(speed[1] / max(speed[0], 1e-9))
        report["metrics"] = .object(metrics)
        if !history.isEmpty { report["training"] = ["history": .array(history.map(\.json)), "plot": "training.svg"] }
        return .finished(
            TaskResult(
                report: report, published: published,
                summary: [
                    ("sparsity", .double(overall(pruner))),
                    ("accuracy_before", before.accuracy.map { .double($0) } ?? .null),
                    ("accuracy_after", after.accuracy.map { .double($0) } ?? .null)
                ]))
    }

    /// A pruner over the network's weight matrices, found through the layers (however
    /// many each has), in the stack's order.
    static func pruner(_ net: Sequential, _ matrices: [StackMatrix], pattern: Pruner.Pattern, scope: Pruner.Scope)
        -> Pruner
    {
        let parameters = Dictionary(uniqueKeysWithValues: net.parameters.map { ($0.name, $0) })
        return Pruner(matrices.map { parameters[$0.name]! }, pattern: pattern, scope: scope)
    }

    /// Recovery training: the masks grow on the cubic schedule (or are set at once), and
    /// every step keeps pruned weights at zero; nil when stopped by a signal.
    func recover(
        _ net: Sequential, _ pruner: inout Pruner, train: LabeledSamples, held: LabeledSamples, epochs: Int,
        context: WholeInputContext
    ) throws -> TrainingLoop? {
        let manifest = stack.job.manifest
        let settings = manifest.block(PruneTask.Pruning.self), training = manifest.block(TrainingBlock.self)
        let loop = TrainingLoop(
            net: net, options: training.options(epochs: epochs, batchSize: manifest.batchSize), samples: train.count,
            patience: training.patience, context: context, kind: "recovery")
        // Gradual: reach the target by three quarters of the epochs, then recover at it.
        let ramp = max(1.0, Double(epochs) * 0.75)
        let cubic = settings.schedule == "cubic"
        var masks = pruner
        if !cubic { masks.prune(to: settings.sparsity) }
        if let extra = loop.resume(patience: training.patience) {
            masks.restore(
                masks: try (0..<masks.parameters.count).map { i in
                    guard let m = extra["mask/\(i)"] else {
                        throw QuernError(
                            .internalError,
                            "the prune checkpoint lacks mask \(i); delete \(loop.path) to start the job over")
                    }
                    return m.data
                })
        }
        var each = TrainingLoop.Epochs()
        each.before = { epoch in
            if cubic { masks.prune(to: Pruner.cubic(progress: Double(epoch + 1) / ramp, final: settings.sparsity)) }
            let frozen = masks
            loop.trainer.afterStep = { frozen.enforce() }
        }
        // Patience counts only epochs at the target sparsity: while the cubic ramp
        // removes weights the loss rises by design.
        each.judged = { epoch, _, validation in !cubic || Double(epoch + 1) >= ramp ? validation : nil }
        each.extra = {
            Dictionary(
                uniqueKeysWithValues: masks.masks.enumerated().map {
                    ("mask/\($0)", Tensor(shape: [$1.count], data: $1))
                })
        }
        each.fields = { _, held in
            [("sparsity", .double(overall(masks))), ("validation_accuracy", held.map { .double($0.accuracy) } ?? .null)]
        }
        let finished = try loop.run(train, validation: held, each)
        pruner = masks
        guard finished else { return nil }
        loop.finish()
        return loop
    }

    /// The report's `pruning` section: the settings, the sparsity reached, and per weight
    /// matrix its size, sparsity and the kernel the loader picked for it.
    func describe(_ pruner: Pruner, _ matrices: [StackMatrix], pruned: StackModel, recovery: Int, stoppedAfter: Int?)
        -> JSONObject
    {
        let settings = stack.job.manifest.block(PruneTask.Pruning.self)
        let kernels = pruned.describe().objectValue?["layers"]?.arrayValue ?? []
        let perLayer = Dictionary(grouping: matrices, by: \.layer)
        let layers: [JSONValue] = matrices.enumerated().map { i, m in
            var o = JSONObject([
                ("layer", .int(Int64(m.layer))), ("weights", .int(Int64(pruner.parameters[i].value.count))),
                ("sparsity", .double(pruner.sparsity[i])), ("kernel", kernels[m.layer].objectValue?["kernel"] ?? .null)
            ])
            if perLayer[m.layer]!.count > 1 { o["tensor"] = .string(m.name) }
            return .object(o)
        }
        var pruning = JSONObject([
            ("target_sparsity", .double(settings.sparsity)), ("pattern", .string(settings.pattern)),
            ("scope", .string(settings.scope)), ("schedule", .string(settings.schedule)),
            ("recovery_epochs", .int(Int64(recovery)))
        ])
        if let stoppedAfter { pruning["stopped_early_after"] = .int(Int64(stoppedAfter)) }
        pruning["sparsity"] = .double(overall(pruner))
        pruning["layers"] = .array(layers)
        return pruning
    }

    func overall(_ p: Pruner) -> Double {
        let total = p.parameters.reduce(0) { $0 + $1.value.count }
        let zeros = zip(p.parameters, p.sparsity).reduce(0.0) { $0 + Double($1.0.value.count) * $1.1 }
        return zeros / Double(max(total, 1))
    }
}
