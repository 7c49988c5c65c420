import Foundation
import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// `finetune`: trains a classifier on the job's labelled records and publishes it as a
/// model directory. The `model` directory gives the architecture (config.json) and, if
/// it has model.safetensors, the starting weights; without them training starts from
/// seeded PyTorch-default weights. Every record is read first (bad ones go to
/// errors.jsonl.gz), a seeded split holds out the validation set, and each epoch ends
/// with an atomic checkpoint, so a killed daemon's successor resumes at the epoch the
/// job was in and finishes with the same weights an uninterrupted run would have.
struct FinetuneJob {
    static let checkpointName = "training.checkpoint"
    static let keep: Set<String> = ["manifest.json", "model", "report.json", "training.svg", JobRunner.errorsName, "job.log"]

    let job: ActiveJob
    let manifest: Manifest
    let log: JobLog
    let time: any TimeSource

    /// Progress and bookkeeping that a checkpoint carries.
    struct State {
        var epochsDone = 0
        var step = 0
        var history: [EpochRecord] = []
        var bestEpoch: Int?
        var bestLoss = Double.infinity
        var sinceBest = 0
        var stoppedEarly = false
        var resumes = 0

        var json: JSONValue {
            ["epochs_done": .int(Int64(epochsDone)), "step": .int(Int64(step)), "best_epoch": bestEpoch.map { .int(Int64($0)) } ?? .null,
             "best_loss": bestLoss.isFinite ? .double(bestLoss) : .null, "since_best": .int(Int64(sinceBest)),
             "stopped_early": .bool(stoppedEarly), "resumes": .int(Int64(resumes)), "history": .array(history.map(FinetuneJob.json))]
        }

        init() {}

        init(json v: JSONValue) throws {
            guard let o = v.objectValue, let done = o["epochs_done"]?.intValue, let step = o["step"]?.intValue,
                  let history = o["history"]?.arrayValue else {
                throw QuernError(.internalError, "training checkpoint state is incomplete")
            }
            epochsDone = Int(done)
            self.step = Int(step)
            self.history = try history.map(FinetuneJob.epochRecord)
            bestEpoch = o["best_epoch"]?.intValue.map(Int.init)
            bestLoss = o["best_loss"]?.doubleValue ?? .infinity
            sinceBest = Int(o["since_best"]?.intValue ?? 0)
            stoppedEarly = o["stopped_early"]?.boolValue ?? false
            resumes = Int(o["resumes"]?.intValue ?? 0)
        }
    }

    func run(inputPath: String, modelPath: String, spool: Spool, heartbeat: Heartbeat,
             errors: ChunkedGzipWriter) throws -> JobOutcome {
        let started = time.monotonic(), startedAt = time.now()
        let text = ModelDirectory.textFamilies.contains(try ModelDirectory.modelType(modelPath))
        // Text models train a head on the frozen encoder's embeddings (see TextHead).
        let textInput = text ? try TextHead.prepare(manifest: manifest, modelPath: modelPath, inputPath: inputPath, job: job,
                                                    errors: errors, log: log) : nil
        let config = try textInput?.0 ?? ModelDirectory.readConfig(modelPath)
        guard !config.labels.isEmpty else {
            throw QuernError(.modelInvalid, "finetune trains classifiers; this config is a regressor (problem_type regression)", field: "model")
        }
        var base: [String: Tensor]?
        var normalizer: ([Float], [Float])?
        if !text && ModelDirectory.hasWeights(modelPath) {
            guard config.quantization == nil else {
                throw QuernError(.modelInvalid, "finetune starts from fp32 weights; this model is int8 (quantize after training)", field: "model")
            }
            let weights = try SafetensorsFile(path: Path.join(modelPath, "model.safetensors"))
            let loaded = try StackModel.loadTensors(weights, inputShape: config.inputShape, specs: config.specs, family: config.family)
            (base, normalizer) = (loaded.tensors, loaded.normalizer)
        }
        let settings = manifest.training

        // 1. Every record into memory; bad ones into the error file.
        let records = try textInput?.1 ?? ModelJobInput.read(manifest: manifest, config: config, inputPath: inputPath, errors: errors, labels: true)
        let samples = LabeledSamples(inputs: records.inputs, sampleShape: config.inputShape, labels: records.labels!)
        let counts = records.counts
        var (train, validation) = samples.split(validation: settings.validationSplit, seed: UInt64(settings.seed))
        guard train.count > 0 else {
            throw QuernError(.emptyInput, "no records left to train on after holding out train.validation_split", field: "train.validation_split")
        }
        if normalizer == nil && settings.normalize { normalizer = Self.standardizer(train) }
        if let (mean, scale) = normalizer {
            Self.standardize(&train, mean: mean, scale: scale)
            Self.standardize(&validation, mean: mean, scale: scale)
        }

        // 2. Network, trainer, and the checkpoint if an earlier owner left one.
        let net = try StackModel.network(inputShape: config.inputShape, specs: config.specs, tensors: base, seed: UInt64(settings.seed))
        var options = TrainingOptions()
        options.epochs = settings.epochs
        options.batchSize = settings.batchSize ?? manifest.batchSize
        options.optimizer = TrainingOptions.OptimizerKind(rawValue: settings.optimizer) ?? .adamw
        options.learningRate = Float(settings.learningRate)
        options.weightDecay = Float(settings.weightDecay ?? (settings.optimizer == "adamw" ? 0.01 : 0))
        options.momentum = Float(settings.momentum)
        options.warmupFraction = settings.warmup
        options.decay = LearningRateSchedule.Decay(rawValue: settings.schedule) ?? .cosine
        options.clipNorm = settings.clipNorm.map(Float.init)
        options.patience = settings.patience
        options.seed = UInt64(settings.seed)
        let trainer = Trainer(model: net, options: options, samplesPerEpoch: train.count)
        var best = StackModel.tensors(of: net)
        var state = State()
        let checkpointPath = job.file(Self.checkpointName)
        if Sys.exists(checkpointPath) {
            do {
                (state, best) = try restore(checkpointPath, net: net, trainer: trainer)
                state.resumes += 1
                log.log(.info, "resuming training from checkpoint", [("epochs_done", .int(Int64(state.epochsDone)))])
            } catch {
                log.log(.warning, "training checkpoint unreadable; starting training over", [("error", .string("\(error)"))])
                state = State()
            }
        } else {
            log.log(.info, "training started", [("train", .int(Int64(train.count))), ("validation", .int(Int64(validation.count))),
                                                ("from", .string(base == nil ? "scratch" : "base weights"))])
        }

        // 3. Epochs, each ending in a checkpoint.
        let trainStart = time.monotonic()
        while state.epochsDone < settings.epochs && !state.stoppedEarly {
            let epoch = state.epochsDone
            let t0 = time.monotonic()
            trainer.step = state.step
            let rate = trainer.schedule.rate(at: trainer.step)
            guard let fit = trainer.trainEpoch(train, epoch: epoch, shouldStop: { StopSignal.requested }) else {
                log.log(.info, "stopped by signal; training resumes at epoch \(epoch + 1)")
                log.sync()
                return .interrupted
            }
            let held = validation.count > 0 ? trainer.evaluate(validation) : nil
            state.step = trainer.step
            state.history.append(EpochRecord(epoch: epoch + 1, trainLoss: fit.loss, trainAccuracy: fit.accuracy,
                                             validationLoss: held?.loss, validationAccuracy: held?.accuracy,
                                             learningRate: rate, seconds: time.monotonic() - t0))
            state.epochsDone += 1
            let judged = held?.loss ?? fit.loss
            if judged < state.bestLoss {
                state.bestLoss = judged
                state.bestEpoch = epoch + 1
                state.sinceBest = 0
                best = StackModel.tensors(of: net)
            } else {
                state.sinceBest += 1
                if let patience = settings.patience, state.sinceBest >= patience { state.stoppedEarly = true }
            }
            try save(checkpointPath, state: state, net: net, trainer: trainer, best: best, normalizer: normalizer)
            var fields: [(String, JSONValue)] = [("epoch", .int(Int64(epoch + 1))), ("train_loss", .double(fit.loss)),
                                                  ("train_accuracy", .double(fit.accuracy))]
            if let held { fields += [("validation_loss", .double(held.loss)), ("validation_accuracy", .double(held.accuracy))] }
            log.log(.info, "epoch done", fields)
            heartbeat.update(["epoch": .int(Int64(state.epochsDone)), "epochs": .int(Int64(settings.epochs))])
        }
        let trainSeconds = time.monotonic() - trainStart

        // 4. Publish the best weights (lowest validation loss) as model/.
        heartbeat.stop()
        let finalNet = try StackModel.network(inputShape: config.inputShape, specs: config.specs, tensors: best, seed: 0)
        let finalTrainer = Trainer(model: finalNet, options: options, samplesPerEpoch: train.count)
        let trainMetrics = finalTrainer.evaluate(train)
        let validationMetrics = validation.count > 0 ? finalTrainer.evaluate(validation) : nil
        try errors.finish()
        try Sys.rename(errors.path, job.file(JobRunner.errorsName))
        if text {
            try TextHead.publish(job: job, encoder: modelPath, head: config, tensors: best, normalizer: normalizer)
        } else {
            try publishModel(config: config, tensors: best, normalizer: normalizer)
        }
        let title = "\(job.id): \(config.family), \(train.count) training / \(validation.count) validation samples"
        try Sys.writeFileAtomically(job.file("training.svg"), Array(TrainingPlot.svg(state.history, title: title, best: state.bestEpoch).utf8),
                                    durability: .content)

        var report = JSONObject()
        report["id"] = .string(job.id)
        report["task"] = "finetune"
        report["status"] = "done"
        report["model"] = text
            ? ["path": .string(modelPath), "family": "bert", "start": "frozen encoder, new head", "published": "model/",
               "head": ["classes": .int(Int64(config.labels.count)), "inputs": .int(Int64(config.inputShape[0]))],
               "embeddings_from_cache": .bool(textInput!.cached)]
            : ["path": .string(modelPath), "family": .string(config.family),
               "start": .string(base == nil ? "scratch" : "base weights"), "published": "model/"]
        report["input"] = ["path": .string(inputPath), "bytes": .int(Int64(Sys.fileSize(path: inputPath))),
                           "format": .string(manifest.input.format.rawValue)]
        report["records"] = ["read": .int(Int64(counts.succeeded + counts.failed)), "succeeded": .int(Int64(counts.succeeded)),
                             "failed": .int(Int64(counts.failed)), "train": .int(Int64(train.count)),
                             "validation": .int(Int64(validation.count))]
        var metrics = JSONObject()
        metrics["train_loss"] = .double(trainMetrics.loss)
        metrics["train_accuracy"] = .double(trainMetrics.accuracy)
        if let v = validationMetrics {
            metrics["validation_loss"] = .double(v.loss)
            metrics["validation_accuracy"] = .double(v.accuracy)
        }
        report["metrics"] = .object(metrics)
        report["training"] = ["epochs_run": .int(Int64(state.epochsDone)), "epochs": .int(Int64(settings.epochs)),
                              "best_epoch": state.bestEpoch.map { .int(Int64($0)) } ?? .null,
                              "stopped_early": .bool(state.stoppedEarly), "optimizer": .string(settings.optimizer),
                              "learning_rate": .double(settings.learningRate), "batch_size": .int(Int64(options.batchSize)),
                              "schedule": .string(settings.schedule), "seed": .int(Int64(settings.seed)),
                              "history": .array(state.history.map(Self.json)), "plot": "training.svg"]
        report["timings"] = ["started_at": .string(Timestamp.iso8601(startedAt)), "finished_at": .string(Timestamp.iso8601(time.now())),
                             "wall_seconds": .double(time.monotonic() - started), "train_seconds_this_run": .double(trainSeconds),
                             "seconds_per_epoch": .double(state.history.map(\.seconds).reduce(0, +) / Double(max(state.history.count, 1)))]
        report["resumed"] = .int(Int64(state.resumes))
        report["host"] = .string(Sys.hostname)
        try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(.object(report)))
        log.log(.info, "job done", [("epochs", .int(Int64(state.epochsDone))),
                                    ("validation_accuracy", validationMetrics.map { .double($0.accuracy) } ?? .null)])
        try? Sys.unlink(checkpointPath)
        let target = try spool.complete(job, keep: Self.keep)
        return .done(target)
    }

    /// Per-input mean and standard deviation of the training samples (a deviation of 0,
    /// a constant input, becomes 1 so it passes through centred).
    static func standardizer(_ data: LabeledSamples) -> ([Float], [Float]) {
        let size = data.inputs.count / max(data.count, 1)
        var mean = [Double](repeating: 0, count: size), sq = mean
        for i in 0..<data.count {
            for j in 0..<size { mean[j] += Double(data.inputs[i * size + j]) }
        }
        for j in 0..<size { mean[j] /= Double(max(data.count, 1)) }
        for i in 0..<data.count {
            for j in 0..<size { let d = Double(data.inputs[i * size + j]) - mean[j]; sq[j] += d * d }
        }
        let scale = sq.map { v -> Float in
            let sd = (v / Double(max(data.count, 1))).squareRoot()
            return sd > 1e-6 ? Float(sd) : 1
        }
        return (mean.map(Float.init), scale)
    }

    static func standardize(_ data: inout LabeledSamples, mean: [Float], scale: [Float]) {
        let size = mean.count
        data.inputs.withUnsafeMutableBufferPointer { p in
            for i in 0..<(p.count / max(size, 1)) {
                for j in 0..<size { p[i * size + j] = (p[i * size + j] - mean[j]) / scale[j] }
            }
        }
    }

    // MARK: checkpoint

    func save(_ path: String, state: State, net: Sequential, trainer: Trainer, best: [String: Tensor],
              normalizer: ([Float], [Float])?) throws {
        var extra: [String: Tensor] = [:]
        for (name, t) in best { extra["best/" + name] = t }
        try TrainingCheckpoint.save(path, net: net, optimizer: trainer.optimizer, extra: extra, state: state.json)
    }

    func restore(_ path: String, net: Sequential, trainer: Trainer) throws -> (State, [String: Tensor]) {
        let (json, extra) = try TrainingCheckpoint.load(path, net: net, optimizer: trainer.optimizer)
        var best: [String: Tensor] = [:]
        for (name, t) in extra where name.hasPrefix("best/") { best[String(name.dropFirst(5))] = t }
        return (try State(json: json), best)
    }

    func publishModel(config: StackConfig, tensors: [String: Tensor], normalizer: ([Float], [Float])?) throws {
        var published = config
        published.quantization = nil
        try ModelJobInput.publish(job: job, config: published, tensors: tensors.mapValues { ($0.shape, .f32($0.data)) },
                                  normalizer: normalizer)
    }

    // MARK: history as JSON

    static func json(_ e: EpochRecord) -> JSONValue {
        var o = JSONObject()
        o["epoch"] = .int(Int64(e.epoch))
        o["train_loss"] = .double(e.trainLoss)
        o["train_accuracy"] = .double(e.trainAccuracy)
        o["validation_loss"] = e.validationLoss.map { .double($0) } ?? .null
        o["validation_accuracy"] = e.validationAccuracy.map { .double($0) } ?? .null
        o["learning_rate"] = .double(Double(e.learningRate))
        o["seconds"] = .double(e.seconds)
        return .object(o)
    }

    static func epochRecord(_ v: JSONValue) throws -> EpochRecord {
        guard let o = v.objectValue, let epoch = o["epoch"]?.intValue, let loss = o["train_loss"]?.doubleValue,
              let accuracy = o["train_accuracy"]?.doubleValue else {
            throw QuernError(.internalError, "training history entry is incomplete")
        }
        return EpochRecord(epoch: Int(epoch), trainLoss: loss, trainAccuracy: accuracy, validationLoss: o["validation_loss"]?.doubleValue,
                           validationAccuracy: o["validation_accuracy"]?.doubleValue,
                           learningRate: Float(o["learning_rate"]?.doubleValue ?? 0), seconds: o["seconds"]?.doubleValue ?? 0)
    }
}
