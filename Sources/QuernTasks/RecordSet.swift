import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// Every record of a job in memory, as features (and class indices when labelled): what
/// the tasks that transform layer-stack models (finetune, quantize, prune) work on, and
/// how they measure a model on it.
struct RecordSet {
    var inputs: [Float] = []
    /// Class indices, when the records carry labels.
    var labels: [Int]?
    var succeeded = 0

    var count: Int { succeeded }

    /// Rows a forward call takes when measuring: batch-job sized, large enough that the
    /// sparse kernels' 64-row blocks keep both threads busy.
    static let measureBatch = 1024

    /// Reads every record. A record with the wrong feature count, or (when `labels`) a
    /// missing or unknown label, goes to the error file instead.
    static func read(_ manifest: Manifest, config: StackConfig, context: WholeInputContext, labels wantLabels: Bool)
        throws -> RecordSet
    {
        let errors = context.errors
        let classIndex = Dictionary(config.labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let size = config.inputSize
        var spec = manifest.recordSpec(texts: false, labels: wantLabels)
        spec.modelFeatureNames = config.featureNames
        let stream = try RecordStream(path: context.inputPath, spec: spec, limits: manifest.limits.stream)
        var out = RecordSet()
        var labels: [Int] = []
        while let item = try stream.next() {
            if context.shouldStop() { break }
            switch item {
            case .record(let r):
                guard r.features.count == size else {
                    try errors.record(
                        r, QuernError(.featureCount, "record has \(r.features.count) features; the model takes \(size)")
                    )
                    continue
                }
                if wantLabels {
                    guard let label = r.label, let k = classIndex[label] else {
                        let what =
                            r.label.map {
                                "label \"\($0)\" is not one of the model's classes (\(config.labels.prefix(10).joined(separator: ", ")))"
                            }
                            ?? "record has no label"
                        try errors.record(r, QuernError(r.label == nil ? .missingValue : .unknownLabel, what))
                        continue
                    }
                    labels.append(k)
                }
                out.inputs += r.features
                out.succeeded += 1
            case .failure(let f):
                try errors.record(f)
            }
        }
        guard out.succeeded > 0 else {
            throw QuernError(.emptyInput, "the input holds no usable records", field: "input.path")
        }
        if wantLabels { out.labels = labels }
        return out
    }

    /// Top-1 predictions of `model` on these records and the accuracy when labelled.
    func evaluate(_ model: StackModel) -> (predictions: [Int], accuracy: Double?) {
        var predictions: [Int] = []
        predictions.reserveCapacity(count)
        for batch in batches(size: model.inputSize) { predictions += model.forward(batch).argmaxRows() }
        let accuracy = labels.map { l in Double(zip(predictions, l).filter { $0 == $1 }.count) / Double(max(count, 1)) }
        return (predictions, accuracy)
    }

    /// Records per second of each model over these records, in batches of `measureBatch`.
    /// The models take turns pass by pass (at least three passes each, as many as fit in
    /// `seconds`) and each keeps its best pass, so a machine that slows down or speeds up
    /// mid-measurement (a neighbour on the VM, frequency changes) affects all alike and a
    /// ratio of two results compares like with like.
    func throughput(of models: [StackModel], seconds: Double = 1) -> [Double] {
        // Built once: every pass of every model runs on the same tensors (the models compared
        // take the same records), and copying records into batches is not a model's speed.
        guard let size = models.first?.inputSize else { return [] }
        precondition(models.allSatisfy { $0.inputSize == size }, "throughput compares models of one input size")
        let prepared = batches(size: size)
        let clock = SystemTime(), start = clock.monotonic()
        var best = [Double](repeating: .infinity, count: models.count)
        var passes = 0
        while passes < 3 || (clock.monotonic() - start < seconds && passes < 1000) {
            passes += 1
            for (i, model) in models.enumerated() {
                let t0 = clock.monotonic()
                for batch in prepared { _ = model.forward(batch) }
                best[i] = min(best[i], clock.monotonic() - t0)
            }
        }
        return best.map { Double(count) / max($0, 1e-9) }
    }

    /// The records in order, in batches of `measureBatch` rows of `size` features.
    private func batches(size: Int) -> [Tensor] {
        stride(from: 0, to: count, by: Self.measureBatch).map { start in
            let end = min(start + Self.measureBatch, count)
            return Tensor(shape: [end - start, size], data: Array(inputs[(start * size)..<(end * size)]))
        }
    }
}

/// `model/` in a job directory, whole or not at all: written into `model.partial/`, then
/// renamed.
func publishModel(
    _ context: WholeInputContext, config: StackConfig, tensors: [String: ([Int], TensorData)],
    normalizer: ([Float], [Float])?
) throws {
    let partial = context.file("model.partial"), final = context.file("model")
    try? Sys.removeTree(partial)
    try Sys.mkdirs(partial)
    try config.write(into: partial, tensors: tensors, normalizer: normalizer)
    try? Sys.removeTree(final)
    try Sys.rename(partial, final)
}

/// A task that transforms an fp32 layer-stack model (quantize, prune): the model, its
/// fp32 tensors, and how the task reads its records.
protocol StackTransform: WholeInputTask {
    var stack: StackSource { get }
}

extension StackTransform {
    var model: any Model { stack.model }
    var spec: RecordSpec { stack.spec }
    var inputSize: Int? { stack.model.inputSize }
}

/// The job's model as a layer stack with fp32 weights, compiled for fp32 inference
/// (what the transformed model is measured against), and the records it takes; or the
/// error saying why this model cannot be transformed.
struct StackSource {
    let job: TaskInputs
    let model: StackModel
    let fp32: LoadedWeights
    let spec: RecordSpec

    init(_ job: TaskInputs) throws {
        let loaded = try job.loadModel(precision: .fp32)
        let task = job.manifest.task.name
        guard let source = loaded.capability(LayerStackSource.self) else {
            let stacks = ModelRegistry.families(providing: LayerStackSource.self).joined(separator: " and ")
            throw QuernError(
                .unsupportedTask,
                "task \(task) works on \(stacks) models; a \(loaded.family) model runs int8 with \"precision\": \"int8\" on any task",
                field: "task")
        }
        guard let fp32 = source.fp32 else {
            throw QuernError(
                .modelInvalid, "\(task) works on fp32 models; this one is int8 (prune and fine-tune before quantizing)",
                field: "model")
        }
        self.job = job
        self.fp32 = fp32
        model = try StackModel(
            config: source.config, tensors: fp32.tensors, normalizer: fp32.normalizer, path: loaded.path,
            weights: loaded.weights)
        var spec = job.manifest.recordSpec(texts: false, labels: job.manifest.input.labelField != nil)
        spec.modelFeatureNames = model.featureNames
        self.spec = spec
    }
}
