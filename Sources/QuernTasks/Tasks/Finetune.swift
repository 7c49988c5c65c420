import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// `finetune`: trains a classifier on the job's labelled records and publishes it as a
/// model directory, with a plot of its training (`training.svg`).
///
/// A layer-stack model (`mlp`, `cnn`) trains whole: config.json gives the architecture
/// and, if the directory has model.safetensors, the starting weights; without them
/// training starts from seeded PyTorch-default weights. A text encoder stays frozen and
/// a classification head (a linear layer: multinomial logistic regression on the
/// sentence embeddings) is trained on its embeddings, which are computed once per job and
/// cached in the job directory; the published model is the encoder plus the head.
///
/// Every record is read first (bad ones go to errors.jsonl.gz), a seeded split holds
/// out the validation set, and each epoch ends with an atomic checkpoint, so a killed
/// daemon's successor resumes at the epoch the job was in and finishes with the same
/// weights an uninterrupted run would have. The weights of the epoch with the lowest
/// validation loss are published; `train.patience` stops early.
public enum FinetuneTask: JobTask {
    public static let name = "finetune"
    public static let blocks: [any ManifestBlock.Type] = [TrainingBlock.self]
    public static let readsWholeInput = true

    public static func check(_ m: Manifest) throws {
        _ = try m.modelField(
            "a model directory (config.json alone trains from scratch; with model.safetensors it fine-tunes those weights)"
        )
        if !m.input.hasLabels {
            throw QuernError(
                .missingField, "task finetune needs input.label_field (the column or field holding the true label)",
                field: "input.label_field")
        }
        if m.input.format == .txt {
            throw QuernError(
                .unsupportedFormat,
                "task finetune needs labelled feature records (csv, jsonl, npy, idx or png), not txt",
                field: "input.format")
        }
        if m.precision != .fp32 {
            throw QuernError(
                .invalidValue,
                "finetune trains in fp32, not \(m.precision.rawValue); quantize the result with a quantize job",
                field: "precision")
        }
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        let m = job.manifest
        let model = try job.loadModel(allowArchitectureOnly: true)
        if let encoder = model.capability(TextEncoder.self) {
            return .wholeInput(
                Finetuner(
                    job: job, model: model, source: .head(encoder), spec: m.recordSpec(texts: true, labels: true),
                    inputSize: nil))
        }
        guard let stack = model.capability(LayerStackSource.self) else {
            throw job.lacks(LayerStackSource.self, "a model to train", model: model)
        }
        guard !stack.config.labels.isEmpty else {
            throw QuernError(
                .modelInvalid, "finetune trains classifiers; this config is a regressor (problem_type regression)",
                field: "model")
        }
        if model.weights != nil && stack.fp32 == nil {
            throw QuernError(
                .modelInvalid, "finetune starts from fp32 weights; this model is int8 (quantize after training)",
                field: "model")
        }
        var spec = m.recordSpec(texts: false, labels: true)
        spec.modelFeatureNames = stack.config.featureNames
        return .wholeInput(
            Finetuner(job: job, model: model, source: .stack(stack), spec: spec, inputSize: stack.config.inputSize))
    }
}

/// One finetune run.
struct Finetuner: WholeInputTask {
    enum Source {
        /// Train the network itself.
        case stack(any LayerStackSource)
        /// Train a head on the frozen encoder's embeddings.
        case head(any TextEncoder)
    }

    let job: TaskInputs
    let model: any Model
    let source: Source
    let spec: RecordSpec
    let inputSize: Int?
    static let cacheName = "embeddings.cache"

    func run(_ context: WholeInputContext) throws -> WholeInputOutcome {
        let manifest = job.manifest
        let settings = manifest.block(TrainingBlock.self)

        // 1. Every record into memory (for a text encoder, as its embeddings); bad ones
        // into the error file. Then the architecture and the starting point.
        let config: StackConfig, records: RecordSet
        var base: [String: Tensor]?, normalizer: ([Float], [Float])?, cached = false
        switch source {
        case .stack(let stack):
            config = stack.config
            (base, normalizer) = (stack.fp32?.tensors, stack.fp32?.normalizer)
            records = try RecordSet.read(manifest, config: config, context: context, labels: true)
        case .head(let encoder):
            (config, records, cached) = try headInputs(encoder, context)
        }
        let samples = LabeledSamples(inputs: records.inputs, sampleShape: config.inputShape, labels: records.labels!)
        var (train, validation) = samples.split(validation: settings.validationSplit, seed: UInt64(settings.seed))
        guard train.count > 0 else {
            throw QuernError(
                .emptyInput, "no records left to train on after holding out train.validation_split",
                field: "train.validation_split")
        }
        if normalizer == nil && settings.normalize { normalizer = Standardizer.fit(train) }
        if let (mean, scale) = normalizer {
            Standardizer.apply(&train, mean: mean, scale: scale)
            Standardizer.apply(&validation, mean: mean, scale: scale)
        }

        // 2. Network and training, resumed where an earlier owner's checkpoint left it.
        let net = try config.network(tensors: base, seed: UInt64(settings.seed))
        let options = settings.options(epochs: settings.epochs, batchSize: manifest.batchSize)
        let loop = TrainingLoop(
            net: net, options: options, samples: train.count, patience: settings.patience, context: context)
        var best = net.state
        if let extra = loop.resume(patience: settings.patience) {
            best = [:]
            for (name, t) in extra where name.hasPrefix("best/") { best[String(name.dropFirst(5))] = t }
        } else {
            context.log.log(
                .info, "training started",
                [
                    ("train", .int(Int64(train.count))), ("validation", .int(Int64(validation.count))),
                    ("from", .string(base == nil ? "scratch" : "base weights"))
                ])
        }

        // 3. Epochs, each ending in a checkpoint that keeps the best weights so far.
        var each = TrainingLoop.Epochs()
        each.best = { best = net.state }
        each.extra = { Dictionary(uniqueKeysWithValues: best.map { ("best/" + $0.key, $0.value) }) }
        each.fields = { fit, held in
            [("train_loss", .double(fit.loss)), ("train_accuracy", .double(fit.accuracy))]
                + (held.map { [("validation_loss", .double($0.loss)), ("validation_accuracy", .double($0.accuracy))] }
                    ?? [])
        }
        guard try loop.run(train, validation: validation, each) else { return .interrupted }
        let state = loop.state

        // 4. Publish the best weights (lowest validation loss) as model/.
        let finalNet = try config.network(tensors: best, seed: 0)
        let finalTrainer = Trainer(model: finalNet, options: options, samplesPerEpoch: train.count)
        loop.finish()
        let trainMetrics = finalTrainer.evaluate(train)
        let validationMetrics = validation.count > 0 ? finalTrainer.evaluate(validation) : nil
        let tensors = best.mapValues { ($0.shape, TensorData.f32($0.data)) }
        switch source {
        case .stack:
            var published = config
            published.quantization = nil
            try publishModel(context, config: published, tensors: tensors, normalizer: normalizer)
        case .head(let encoder):
            try encoder.publish(head: config, tensors: tensors, normalizer: normalizer, to: context.file("model"))
        }
        let title = "\(context.id): \(config.family), \(train.count) training / \(validation.count) validation samples"
        try Sys.writeFileAtomically(
            context.file("training.svg"),
            Array(TrainingPlot.svg(state.history, title: title, best: state.stopping.bestEpoch).utf8),
            durability: .content)

        var report = Report(id: context.id, task: FinetuneTask.name)
        report["model"] = modelSection(config: config, fromScratch: base == nil, cached: cached)
        report["input"] = [
            "path": .string(context.inputPath), "bytes": .int(Int64(Sys.fileSize(path: context.inputPath))),
            "format": .string(manifest.input.format.rawValue)
        ]
        report["records"] = Report.records(
            succeeded: records.succeeded, failed: context.errors.count,
            [("train", train.count), ("validation", validation.count)])
        var metrics = JSONObject()
        metrics["train_loss"] = .double(trainMetrics.loss)
        metrics["train_accuracy"] = .double(trainMetrics.accuracy)
        if let v = validationMetrics {
            metrics["validation_loss"] = .double(v.loss)
            metrics["validation_accuracy"] = .double(v.accuracy)
        }
        report["metrics"] = .object(metrics)
        report["training"] = .object(
            JSONObject(
                [
                    ("epochs_run", .int(Int64(state.epochsDone))), ("epochs", .int(Int64(settings.epochs))),
                    ("best_epoch", state.stopping.bestEpoch.map { .int(Int64($0)) } ?? .null),
                    ("stopped_early", .bool(state.stopping.stopped))
                ]
                    + settings.describe(options) + [("history", .array(loop.history)), ("plot", "training.svg")]))
        report.timings["train_seconds_this_run"] = .double(loop.seconds)
        report.timings["seconds_per_epoch"] = .double(
            state.history.map(\.seconds).reduce(0, +) / Double(max(state.history.count, 1)))
        report["resumed"] = .int(Int64(state.resumes))
        return .finished(
            TaskResult(
                report: report, published: ["model", "training.svg"],
                summary: [
                    ("epochs", .int(Int64(state.epochsDone))),
                    ("validation_accuracy", validationMetrics.map { .double($0.accuracy) } ?? .null)
                ]))
    }

    /// The report's `model` section: what training started from and what was published.
    func modelSection(config: StackConfig, fromScratch: Bool, cached: Bool) -> JSONValue {
        switch source {
        case .stack:
            return Report.model(
                model, [("start", .string(fromScratch ? "scratch" : "base weights")), ("published", "model/")])
        case .head:
            return Report.model(
                model,
                [
                    ("start", "frozen encoder, new head"), ("published", "model/"),
                    ("head", ["classes": .int(Int64(config.labels.count)), "inputs": .int(Int64(config.inputSize))]),
                    ("embeddings_from_cache", .bool(cached))
                ])
        }
    }

    /// A text encoder's training inputs: one embedding per good record, labels indexed
    /// by the sorted class names found in the records, and the head's architecture.
    /// Embeddings come from the job's cache when this model made it for these records.
    func headInputs(_ encoder: any TextEncoder, _ context: WholeInputContext) throws -> (
        StackConfig, RecordSet, cached: Bool
    ) {
        let manifest = job.manifest
        let labelled = try TextRecords.readAll(manifest, spec: spec, context: context) { r in
            guard let text = r.text, let label = r.label else {
                throw QuernError(.missingValue, r.text == nil ? "record has no text" : "record has no label")
            }
            return (text, label)
        }
        let texts = labelled.map(\.0), names = labelled.map(\.1)
        let classes = Array(Set(names)).sorted()
        guard classes.count >= 2 else {
            throw QuernError(
                .invalidValue,
                "finetune needs at least two classes in input.label_field; found \(classes.first.map { "only \"\($0)\"" } ?? "none")",
                field: "input.label_field")
        }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        var out = RecordSet()
        out.succeeded = texts.count
        out.labels = names.map { index[$0]! }

        let h = encoder.dimension
        let cachePath = context.file(Self.cacheName)
        let digest = encoder.weights?.sha256 ?? ""
        var cached = false
        if let file = try? SafetensorsFile(path: cachePath), file.metadata["model_sha256"] == digest,
            let e = try? file.float32("embeddings", shape: [texts.count, h])
        {
            out.inputs = e.data
            cached = true
            context.log.log(.info, "embeddings from the job's cache", [("records", .int(Int64(texts.count)))])
        } else {
            out.inputs = try TextRecords(manifest, model: encoder).embed(
                texts, stop: context.shouldStop)
            try Sys.writeFileAtomically(
                cachePath,
                Safetensors.encode(
                    ["embeddings": ([texts.count, h], out.inputs)],
                    metadata: ["model_sha256": digest]),
                durability: .content)
            context.log.log(
                .info, "embeddings computed and cached",
                [("records", .int(Int64(texts.count))), ("dimension", .int(Int64(h)))])
        }
        let config = MLP.config(inputSize: h, layers: [LinearSpec(outFeatures: classes.count)], labels: classes)
        return (config, out, cached)
    }
}
