import QuernCore
import QuernKernels
import QuernModels
import QuernNN

/// The `train` block, read by every task that trains (`finetune`, and `prune`'s recovery
/// training): one decoding and one mapping to the trainer's options, so a setting means
/// the same in both. Defaults follow common practice for small classifiers: AdamW at
/// 1e-3 with decay 0.01, cosine schedule, 10 % held out for validation.
public struct TrainingBlock: ManifestBlock, Equatable {
    public static let key = "train"
    public var epochs = 10
    public var optimizer = "adamw"
    public var learningRate = 1e-3
    /// nil: 0.01 for adamw, 0 for sgd and adam.
    public var weightDecay: Double?
    public var momentum = 0.9
    public var batchSize: Int?
    public var validationSplit = 0.1
    public var schedule = "cosine"
    public var warmup = 0.0
    public var clipNorm: Double?
    /// Stop after this many epochs without a better validation loss.
    public var patience: Int?
    public var seed = 0
    /// Standardise inputs with the training data's mean and deviation (new models).
    public var normalize = true

    public init() {}

    public init(from t: inout StrictObject) throws {
        epochs = try t.int("epochs", range: 1...100_000) ?? epochs
        optimizer = try t.choice("optimizer", TrainingOptions.OptimizerKind.allCases.map(\.rawValue)) ?? optimizer
        func positive(_ key: String) throws -> Double? {
            guard let v = try t.number(key) else { return nil }
            guard v > 0, v.isFinite else {
                throw QuernError(.invalidValue, "train.\(key) must be a positive number", field: "train.\(key)")
            }
            return v
        }
        func fraction(_ key: String) throws -> Double? {
            guard let v = try t.number(key) else { return nil }
            guard v >= 0, v < 1 else {
                throw QuernError(.invalidValue, "train.\(key) must be in [0, 1)", field: "train.\(key)")
            }
            return v
        }
        learningRate = try positive("learning_rate") ?? learningRate
        if let wd = try t.number("weight_decay") {
            guard wd >= 0 else {
                throw QuernError(.invalidValue, "train.weight_decay must be at least 0", field: "train.weight_decay")
            }
            weightDecay = wd
        }
        momentum = try fraction("momentum") ?? momentum
        batchSize = try t.int("batch_size", range: 1...65536)
        validationSplit = try fraction("validation_split") ?? validationSplit
        schedule = try t.choice("schedule", LearningRateSchedule.Decay.allCases.map(\.rawValue)) ?? schedule
        warmup = try fraction("warmup") ?? warmup
        clipNorm = try positive("clip_norm")
        patience = try t.int("patience", range: 1...100_000)
        seed = try t.int("seed", range: 0...Int(Int32.max)) ?? 0
        normalize = try t.bool("normalize") ?? true
    }

    /// The trainer's options for `epochs` epochs; `batchSize` is the job's, used when the
    /// block sets none.
    public func options(epochs: Int, batchSize: Int) -> TrainingOptions {
        var o = TrainingOptions()
        o.epochs = epochs
        o.batchSize = self.batchSize ?? batchSize
        o.optimizer = TrainingOptions.OptimizerKind(rawValue: optimizer) ?? .adamw
        o.learningRate = Float(learningRate)
        o.weightDecay = Float(weightDecay ?? (optimizer == "adamw" ? 0.01 : 0))
        o.momentum = Float(momentum)
        o.warmupFraction = warmup
        o.decay = LearningRateSchedule.Decay(rawValue: schedule) ?? .cosine
        o.clipNorm = clipNorm.map(Float.init)
        o.seed = UInt64(seed)
        return o
    }

    /// The report's description of the run's settings.
    func describe(_ options: TrainingOptions) -> [(String, JSONValue)] {
        [
            ("optimizer", .string(optimizer)), ("learning_rate", .double(learningRate)),
            ("batch_size", .int(Int64(options.batchSize))),
            ("schedule", .string(schedule)), ("seed", .int(Int64(seed)))
        ]
    }
}

/// The state of a training run at an epoch boundary, in one safetensors file written
/// atomically: the network's tensors (`model/…`), the optimizer's buffers
/// (`optimizer/i`), whatever else the task keeps (`extra`, e.g. the best weights or
/// pruning masks), and the task's bookkeeping as JSON in the metadata.
enum TrainingCheckpoint {
    static let fileName = "training.checkpoint"

    static func save(
        _ path: String, net: Sequential, optimizer: any Optimizer, extra: [String: Tensor], state: JSONValue
    ) throws {
        var tensors: [String: ([Int], [Float])] = [:]
        for (name, t) in net.state { tensors["model/" + name] = (t.shape, t.data) }
        for (name, t) in extra { tensors[name] = (t.shape, t.data) }
        let o = optimizer.state
        for (i, b) in o.buffers.enumerated() { tensors["optimizer/\(i)"] = ([b.count], b) }
        var meta = JSONObject()
        meta["state"] = state
        meta["optimizer_step"] = .int(Int64(o.step))
        meta["optimizer_buffers"] = .int(Int64(o.buffers.count))
        let bytes = Safetensors.encode(
            tensors, metadata: ["quern_training": String(decoding: JSONWriter.compact(.object(meta)), as: UTF8.self)])
        try Sys.writeFileAtomically(path, bytes, durability: .content)
    }

    /// Restores the network and optimizer in place; returns the task's state and extras.
    static func load(_ path: String, net: Sequential, optimizer: any Optimizer) throws -> (JSONValue, [String: Tensor])
    {
        let file = try SafetensorsFile(path: path)
        guard let raw = file.metadata["quern_training"], let meta = try JSONParser.parse(Array(raw.utf8)).objectValue,
            let state = meta["state"], let step = meta["optimizer_step"]?.intValue,
            let bufferCount = meta["optimizer_buffers"]?.intValue
        else {
            throw QuernError(.internalError, "\(path) has no training state")
        }
        var model: [String: Tensor] = [:], extra: [String: Tensor] = [:]
        for name in file.entries.keys where !name.hasPrefix("optimizer/") {
            if name.hasPrefix("model/") {
                model[String(name.dropFirst(6))] = try file.float32(name)
            } else {
                extra[name] = try file.float32(name)
            }
        }
        guard Set(net.state.keys) == Set(model.keys) else {
            throw QuernError(.internalError, "\(path) holds a different network")
        }
        net.load(state: model)
        var buffers: [[Float]] = []
        for i in 0..<Int(bufferCount) { buffers.append(try file.float32("optimizer/\(i)").data) }
        optimizer.state = OptimizerState(step: Int(step), buffers: buffers)
        return (state, extra)
    }
}

extension EpochRecord {
    /// An epoch's line in report.json's history and in checkpoints.
    var json: JSONValue {
        var o = JSONObject()
        o["epoch"] = .int(Int64(epoch))
        o["train_loss"] = .double(trainLoss)
        o["train_accuracy"] = .double(trainAccuracy)
        o["validation_loss"] = validationLoss.map { .double($0) } ?? .null
        o["validation_accuracy"] = validationAccuracy.map { .double($0) } ?? .null
        o["learning_rate"] = .double(Double(learningRate))
        o["seconds"] = .double(seconds)
        return .object(o)
    }

    init(json v: JSONValue) throws {
        guard let o = v.objectValue, let epoch = o["epoch"]?.intValue, let loss = o["train_loss"]?.doubleValue,
            let accuracy = o["train_accuracy"]?.doubleValue
        else {
            throw QuernError(.internalError, "training history entry is incomplete")
        }
        self.init(
            epoch: Int(epoch), trainLoss: loss, trainAccuracy: accuracy,
            validationLoss: o["validation_loss"]?.doubleValue,
            validationAccuracy: o["validation_accuracy"]?.doubleValue,
            learningRate: Float(o["learning_rate"]?.doubleValue ?? 0), seconds: o["seconds"]?.doubleValue ?? 0)
    }
}

extension EarlyStopping {
    /// Its fields in a training checkpoint.
    var json: [(String, JSONValue)] {
        [
            ("best_epoch", bestEpoch.map { .int(Int64($0)) } ?? .null),
            ("best_loss", bestLoss.isFinite ? .double(bestLoss) : .null),
            ("since_best", .int(Int64(sinceBest))), ("stopped_early", .bool(stopped))
        ]
    }

    init(patience: Int?, json o: JSONObject) {
        self.init(patience: patience)
        bestEpoch = o["best_epoch"]?.intValue.map(Int.init)
        bestLoss = o["best_loss"]?.doubleValue ?? .infinity
        sinceBest = Int(o["since_best"]?.intValue ?? 0)
        stopped = o["stopped_early"]?.boolValue ?? false
    }
}

/// Input standardisation from the training samples: per-input mean and standard
/// deviation (a deviation of 0, a constant input, becomes 1 so it passes through centred).
enum Standardizer {
    static func fit(_ data: LabeledSamples) -> ([Float], [Float]) {
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

    static func apply(_ data: inout LabeledSamples, mean: [Float], scale: [Float]) {
        let size = mean.count
        data.inputs.withUnsafeMutableBufferPointer { p in
            for i in 0..<(p.count / max(size, 1)) {
                for j in 0..<size { p[i * size + j] = (p[i * size + j] - mean[j]) / scale[j] }
            }
        }
    }
}

/// Epochs of training on a job's records, each ending in an atomic checkpoint (the
/// network, the optimizer, the task's own tensors, the history and early stopping), so a
/// run killed at any moment resumes at the epoch it was in and ends with the bytes an
/// uninterrupted run would. What `finetune` and `prune`'s recovery share; each says what
/// it does around an epoch through `Epochs`.
final class TrainingLoop {
    /// What a checkpoint carries besides the tensors.
    struct State {
        var epochsDone = 0
        var step = 0
        var history: [EpochRecord] = []
        var stopping: EarlyStopping
        var resumes = 0

        init(patience: Int?) { stopping = EarlyStopping(patience: patience) }

        var json: JSONValue {
            .object(
                JSONObject(
                    [("epochs_done", .int(Int64(epochsDone))), ("step", .int(Int64(step)))] + stopping.json
                        + [("resumes", .int(Int64(resumes))), ("history", .array(history.map(\.json)))]))
        }

        init(json v: JSONValue, patience: Int?) throws {
            guard let o = v.objectValue, let done = o["epochs_done"]?.intValue, let step = o["step"]?.intValue,
                let history = o["history"]?.arrayValue
            else {
                throw QuernError(.internalError, "training checkpoint state is incomplete")
            }
            epochsDone = Int(done)
            self.step = Int(step)
            self.history = try history.map(EpochRecord.init(json:))
            stopping = EarlyStopping(patience: patience, json: o)
            resumes = Int(o["resumes"]?.intValue ?? 0)
        }
    }

    /// What a task does around each epoch.
    struct Epochs {
        /// Before epoch `i` (0-based) trains: a pruning step, say.
        var before: (Int) -> Void = { _ in }
        /// The loss early stopping judges after epoch `i` (validation when there is some,
        /// else training), or nil when this epoch does not count.
        var judged: (Int, _ train: Double, _ validation: Double?) -> Double? = { $2 ?? $1 }
        /// After a new best epoch.
        var best: () -> Void = {}
        /// Tensors the checkpoint keeps besides the network (best weights, masks).
        var extra: () -> [String: Tensor] = { [:] }
        /// The "epoch done" log line's fields beyond the epoch number.
        var fields:
            (_ train: (loss: Double, accuracy: Double), _ validation: (loss: Double, accuracy: Double)?)
                -> [(String, JSONValue)] = { _, _ in [] }
    }

    let net: Sequential
    let trainer: Trainer
    let context: WholeInputContext
    let epochs: Int
    /// What the log calls it: "training", or "recovery" for prune's.
    let kind: String
    private(set) var state: State
    /// Seconds this process spent training (a resumed run counts only its own).
    private(set) var seconds = 0.0
    var path: String { context.file(TrainingCheckpoint.fileName) }

    init(
        net: Sequential, options: TrainingOptions, samples: Int, patience: Int?, context: WholeInputContext,
        kind: String = "training"
    ) {
        self.kind = kind
        self.net = net
        trainer = Trainer(model: net, options: options, samplesPerEpoch: samples)
        self.context = context
        epochs = options.epochs
        state = State(patience: patience)
    }

    /// Restores the network, the optimizer and the state from the job's checkpoint, if an
    /// earlier owner left one, and returns the task's tensors from it; nil (training
    /// starts over) when there is none or it cannot be read.
    func resume(patience: Int?) -> [String: Tensor]? {
        guard Sys.exists(path) else { return nil }
        do {
            let (json, extra) = try TrainingCheckpoint.load(path, net: net, optimizer: trainer.optimizer)
            state = try State(json: json, patience: patience)
            state.resumes += 1
            context.log.log(
                .info, "resuming \(kind == "training" ? "" : kind + " ")training from checkpoint",
                [("epochs_done", .int(Int64(state.epochsDone)))])
            return extra
        } catch {
            context.log.log(
                .warning, "training checkpoint unreadable; starting training over", [("error", .string("\(error)"))])
            state = State(patience: patience)
            return nil
        }
    }

    /// Trains the remaining epochs (until `epochs` or early stopping). False when a stop
    /// was requested: the job resumes at the epoch it was in.
    func run(_ train: LabeledSamples, validation: LabeledSamples?, _ each: Epochs) throws -> Bool {
        let time = context.time, start = time.monotonic()
        defer { seconds += time.monotonic() - start }
        while state.epochsDone < epochs && !state.stopping.stopped {
            let epoch = state.epochsDone
            let t0 = time.monotonic()
            each.before(epoch)
            trainer.step = state.step
            let rate = trainer.schedule.rate(at: trainer.step)
            guard let fit = trainer.trainEpoch(train, epoch: epoch, shouldStop: context.shouldStop) else {
                context.log.log(.info, "stopped by signal; \(kind) resumes at epoch \(epoch + 1)")
                context.log.sync()
                return false
            }
            let held = validation.flatMap { $0.count > 0 ? trainer.evaluate($0) : nil }
            state.step = trainer.step
            state.history.append(
                EpochRecord(
                    epoch: epoch + 1, trainLoss: fit.loss, trainAccuracy: fit.accuracy, validationLoss: held?.loss,
                    validationAccuracy: held?.accuracy, learningRate: rate, seconds: time.monotonic() - t0))
            state.epochsDone += 1
            if let loss = each.judged(epoch, fit.loss, held?.loss), state.stopping.record(epoch: epoch + 1, loss: loss)
            {
                each.best()
            }
            try TrainingCheckpoint.save(
                path, net: net, optimizer: trainer.optimizer, extra: each.extra(), state: state.json)
            context.log.log(
                .info, kind == "training" ? "epoch done" : "\(kind) epoch done",
                [("epoch", .int(Int64(epoch + 1)))] + each.fields(fit, held))
            context.progress(["epoch": .int(Int64(state.epochsDone)), "epochs": .int(Int64(epochs))])
        }
        return true
    }

    /// The report's history and stopping fields.
    var history: [JSONValue] { state.history.map(\.json) }

    /// Training is over: the checkpoint goes (the published files replace it).
    func finish() { try? Sys.unlink(path) }
}
