import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// `prune`: magnitude pruning of every weight matrix to a target sparsity (per layer or
/// global; unstructured, 1×4 blocks or 2:4), either at once or gradually on Zhu & Gupta's
/// cubic schedule during recovery fine-tuning on the job's labelled records. Publishes
/// the sparse model (zeros stored; the loader picks sparse kernels where they win) and
/// reports per-layer sparsity, accuracy before and after on held-out records, and the
/// measured inference speed of both.
struct PruneJob {
    static let keep: Set<String> = ["manifest.json", "model", "report.json", "training.svg", JobRunner.errorsName, "job.log"]

    let job: ActiveJob
    let manifest: Manifest
    let log: JobLog
    let time: any TimeSource

    func run(inputPath: String, modelPath: String, spool: Spool, heartbeat: Heartbeat, errors: ChunkedGzipWriter) throws -> JobOutcome {
        let started = time.monotonic(), startedAt = time.now()
        let (source, loaded) = try ModelJobInput.loadFP32(modelPath, task: "prune")
        let settings = manifest.pruning, training = manifest.training
        let labelled = manifest.input.labelField != nil
        let records = try ModelJobInput.read(manifest: manifest, config: source.config, inputPath: inputPath, errors: errors,
                                             labels: labelled)
        let recovery = labelled ? settings.recoveryEpochs : 0

        // Held-out records measure before and after; the rest train the recovery.
        let all = LabeledSamples(inputs: records.inputs, sampleShape: source.config.inputShape,
                                 labels: records.labels ?? [Int](repeating: 0, count: records.count))
        var (train, held) = recovery > 0 ? all.split(validation: max(training.validationSplit, 0.1), seed: UInt64(training.seed))
                                         : (all, all)
        let evaluation = ModelJobInput(inputs: held.inputs, labels: labelled ? held.labels : nil,
                                       counts: Counts(succeeded: held.count, failed: 0))
        let before = evaluation.evaluate(source.model)

        let net = try StackModel.network(inputShape: source.config.inputShape, specs: source.config.specs,
                                         tensors: loaded.tensors, seed: UInt64(training.seed))
        let matrices = net.layers.compactMap { ($0 as? Linear)?.weight ?? ($0 as? Conv2d)?.weight }
        var pruner = Pruner(matrices, pattern: Pruner.Pattern(rawValue: settings.pattern) ?? .unstructured,
                            scope: Pruner.Scope(rawValue: settings.scope) ?? .layer)
        var history: [EpochRecord] = []
        if recovery == 0 {
            pruner.prune(to: settings.sparsity)
        } else {
            if let (mean, scale) = loaded.normalizer {
                FinetuneJob.standardize(&train, mean: mean, scale: scale)
                FinetuneJob.standardize(&held, mean: mean, scale: scale)
            }
            var options = TrainingOptions()
            options.epochs = recovery
            options.batchSize = training.batchSize ?? manifest.batchSize
            options.optimizer = TrainingOptions.OptimizerKind(rawValue: training.optimizer) ?? .adamw
            options.learningRate = Float(training.learningRate)
            options.weightDecay = Float(training.weightDecay ?? 0)
            options.decay = LearningRateSchedule.Decay(rawValue: training.schedule) ?? .cosine
            options.seed = UInt64(training.seed)
            let trainer = Trainer(model: net, options: options, samplesPerEpoch: train.count)
            // Gradual: reach the target by three quarters of the epochs, then recover at it.
            let ramp = max(1.0, Double(recovery) * 0.75)
            if settings.schedule == "oneshot" { pruner.prune(to: settings.sparsity) }
            // Each recovery epoch ends in a checkpoint (weights, optimizer, masks, history):
            // a killed job resumes at the epoch it was in.
            let checkpointPath = job.file("training.checkpoint")
            var firstEpoch = 0
            if Sys.exists(checkpointPath) {
                do {
                    let (state, extra) = try TrainingCheckpoint.load(checkpointPath, net: net, optimizer: trainer.optimizer)
                    let masks = try (0..<matrices.count).map { i -> [Float] in
                        guard let m = extra["mask/\(i)"] else { throw QuernError(.internalError, "checkpoint lacks mask \(i)") }
                        return m.data
                    }
                    pruner.restore(masks: masks)
                    guard let o = state.objectValue, let done = o["epochs_done"]?.intValue, let step = o["step"]?.intValue,
                          let h = o["history"]?.arrayValue else { throw QuernError(.internalError, "checkpoint state is incomplete") }
                    history = try h.map(FinetuneJob.epochRecord)
                    firstEpoch = Int(done)
                    trainer.step = Int(step)
                    log.log(.info, "resuming recovery training from checkpoint", [("epochs_done", .int(done))])
                } catch {
                    throw QuernError(.internalError, "the prune checkpoint is unreadable (\(error)); delete \(checkpointPath) to start the job over")
                }
            }
            for epoch in firstEpoch..<recovery {
                if settings.schedule == "cubic" {
                    pruner.prune(to: Pruner.cubic(progress: Double(epoch + 1) / ramp, final: settings.sparsity))
                }
                let frozen = pruner
                trainer.afterStep = { frozen.enforce() }
                let t0 = time.monotonic()
                guard let fit = trainer.trainEpoch(train, epoch: epoch, shouldStop: { StopSignal.requested }) else {
                    log.log(.info, "stopped by signal; recovery resumes at epoch \(epoch + 1)")
                    log.sync()
                    return .interrupted
                }
                let v = trainer.evaluate(held)
                history.append(EpochRecord(epoch: epoch + 1, trainLoss: fit.loss, trainAccuracy: fit.accuracy, validationLoss: v.loss,
                                           validationAccuracy: v.accuracy, learningRate: trainer.schedule.rate(at: trainer.step),
                                           seconds: time.monotonic() - t0))
                let masks = Dictionary(uniqueKeysWithValues: pruner.masks.enumerated().map { ("mask/\($0)", Tensor(shape: [$1.count], data: $1)) })
                try TrainingCheckpoint.save(checkpointPath, net: net, optimizer: trainer.optimizer, extra: masks,
                                            state: ["epochs_done": .int(Int64(epoch + 1)), "step": .int(Int64(trainer.step)),
                                                    "history": .array(history.map(FinetuneJob.json))])
                log.log(.info, "recovery epoch done", [("epoch", .int(Int64(epoch + 1))),
                                                       ("sparsity", .double(overall(pruner))),
                                                       ("validation_accuracy", .double(v.accuracy))])
                heartbeat.update(["epoch": .int(Int64(epoch + 1)), "epochs": .int(Int64(recovery))])
            }
        }

        try? Sys.unlink(job.file("training.checkpoint"))
        // The pruned model, as the loader will run it.
        let tensors = StackModel.tensors(of: net)
        let pruned = try StackModel(config: source.config, tensors: tensors, normalizer: loaded.normalizer)
        let after = evaluation.evaluate(pruned)
        // Speed on every record (the held-out ones alone are too few to time), both models in turn.
        let speed = records.throughput(of: [source.model, pruned])
        try errors.finish()
        try Sys.rename(errors.path, job.file(JobRunner.errorsName))
        try ModelJobInput.publish(job: job, config: source.config, tensors: tensors.mapValues { ($0.shape, .f32($0.data)) },
                                  normalizer: loaded.normalizer)
        if !history.isEmpty {
            let svg = TrainingPlot.svg(history, title: "\(job.id): recovery training to \(Int(settings.sparsity * 100)) % sparsity")
            try Sys.writeFileAtomically(job.file("training.svg"), Array(svg.utf8), durability: .content)
        }

        var layers: [JSONValue] = []
        var i = 0
        for (index, spec) in source.config.specs.enumerated() where spec.hasWeightMatrix {
            let described = pruned.describe().objectValue?["layers"]?.arrayValue?[index].objectValue
            layers.append(["layer": .int(Int64(index)), "weights": .int(Int64(matrices[i].value.count)),
                           "sparsity": .double(pruner.sparsity[i]), "kernel": described?["kernel"] ?? .null])
            i += 1
        }
        var report = JSONObject()
        report["id"] = .string(job.id)
        report["task"] = "prune"
        report["status"] = "done"
        report["model"] = ["path": .string(modelPath), "family": .string(source.config.family), "sha256": .string(source.weightsSHA256),
                           "published": "model/"]
        report["records"] = ["read": .int(Int64(records.counts.succeeded + records.counts.failed)),
                             "succeeded": .int(Int64(records.counts.succeeded)), "failed": .int(Int64(records.counts.failed)),
                             "train": .int(Int64(recovery > 0 ? train.count : 0)), "evaluated": .int(Int64(held.count))]
        report["pruning"] = ["target_sparsity": .double(settings.sparsity), "pattern": .string(settings.pattern),
                             "scope": .string(settings.scope), "schedule": .string(settings.schedule),
                             "recovery_epochs": .int(Int64(recovery)), "sparsity": .double(overall(pruner)), "layers": .array(layers)]
        var metrics = JSONObject()
        metrics["accuracy_before"] = before.accuracy.map { .double($0) } ?? .null
        metrics["accuracy_after"] = after.accuracy.map { .double($0) } ?? .null
        if let a = before.accuracy, let b = after.accuracy { metrics["accuracy_change_points"] = .double((b - a) * 100) }
        metrics["dense_records_per_second"] = .double(speed[0])
        metrics["pruned_records_per_second"] = .double(speed[1])
        metrics["speedup"] = .double(speed[1] / max(speed[0], 1e-9))
        report["metrics"] = .object(metrics)
        if !history.isEmpty { report["training"] = ["history": .array(history.map(FinetuneJob.json)), "plot": "training.svg"] }
        report["timings"] = ["started_at": .string(Timestamp.iso8601(startedAt)), "finished_at": .string(Timestamp.iso8601(time.now())),
                             "wall_seconds": .double(time.monotonic() - started)]
        report["host"] = .string(Sys.hostname)
        try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(.object(report)))
        log.log(.info, "job done", [("sparsity", .double(overall(pruner))),
                                    ("accuracy_before", before.accuracy.map { .double($0) } ?? .null),
                                    ("accuracy_after", after.accuracy.map { .double($0) } ?? .null)])
        return .done(try spool.complete(job, keep: Self.keep))
    }

    func overall(_ p: Pruner) -> Double {
        let total = p.parameters.reduce(0) { $0 + $1.value.count }
        let zeros = zip(p.parameters, p.sparsity).reduce(0.0) { $0 + Double($1.0.value.count) * $1.1 }
        return zeros / Double(max(total, 1))
    }
}
