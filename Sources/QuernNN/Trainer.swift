import QuernKernels

/// Samples for a classifier: inputs laid out one sample after another, plus class indices.
public struct LabeledSamples: Sendable {
    public var inputs: [Float]
    /// The shape of one sample: `[features]` or `[channels, height, width]`.
    public let sampleShape: [Int]
    public var labels: [Int]

    public init(inputs: [Float], sampleShape: [Int], labels: [Int]) {
        precondition(
            inputs.count == labels.count * sampleShape.reduce(1, *),
            "LabeledSamples: inputs do not match labels × sample shape")
        self.inputs = inputs
        self.sampleShape = sampleShape
        self.labels = labels
    }

    public var count: Int { labels.count }
    var sampleSize: Int { sampleShape.reduce(1, *) }

    /// The samples at `indices`, as a batch tensor `[n] + sampleShape`.
    public func batch(_ indices: ArraySlice<Int>) -> (Tensor, [Int]) {
        let size = sampleSize
        var x = [Float](repeating: 0, count: indices.count * size)
        x.withUnsafeMutableBufferPointer { dst in
            inputs.withUnsafeBufferPointer { src in
                for (row, i) in indices.enumerated() {
                    (dst.baseAddress! + row * size).update(from: src.baseAddress! + i * size, count: size)
                }
            }
        }
        return (Tensor(shape: [indices.count] + sampleShape, data: x), indices.map { labels[$0] })
    }

    /// A seeded split: the first part for training, the second (`fraction` of the
    /// samples, at least one when fraction > 0) held out for validation.
    public func split(validation fraction: Double, seed: UInt64) -> (train: LabeledSamples, validation: LabeledSamples)
    {
        var order = Array(0..<count)
        var random = SeededRandom(seed: seed)
        order.shuffle(using: &random)
        let held = fraction > 0 ? max(1, Int((Double(count) * fraction).rounded())) : 0
        func take(_ idx: ArraySlice<Int>) -> LabeledSamples {
            let (x, y) = batch(idx)
            return LabeledSamples(inputs: x.data, sampleShape: sampleShape, labels: y)
        }
        return (take(order[held...]), take(order[..<held]))
    }
}

public struct TrainingOptions: Sendable, Equatable {
    public enum OptimizerKind: String, Sendable, CaseIterable { case sgd, adam, adamw }

    public var epochs = 10
    public var batchSize = 32
    public var optimizer = OptimizerKind.adamw
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0.01
    public var momentum: Float = 0.9
    /// Fraction of all steps spent warming up.
    public var warmupFraction: Double = 0
    public var decay = LearningRateSchedule.Decay.constant
    /// Global gradient-norm limit (nil: no clipping).
    public var clipNorm: Float?
    public var seed: UInt64 = 0

    public init() {}
}

/// One epoch's numbers.
public struct EpochRecord: Sendable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var learningRate: Float
    public var seconds: Double

    public init(
        epoch: Int, trainLoss: Double, trainAccuracy: Double, validationLoss: Double?, validationAccuracy: Double?,
        learningRate: Float, seconds: Double
    ) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.validationLoss = validationLoss
        self.validationAccuracy = validationAccuracy
        self.learningRate = learningRate
        self.seconds = seconds
    }
}

/// Early stopping: keeps the best epoch by a loss (validation loss when records are held
/// out, else training loss) and stops `patience` epochs after the last improvement.
/// Its fields are what a training checkpoint keeps of it.
public struct EarlyStopping: Sendable, Equatable {
    /// Epochs without a better loss before stopping; nil never stops.
    public let patience: Int?
    public var bestLoss = Double.infinity
    public var bestEpoch: Int?
    public var sinceBest = 0
    public var stopped = false

    public init(patience: Int?) { self.patience = patience }

    /// Records the loss of `epoch` (1-based); true when it is the best so far.
    @discardableResult
    public mutating func record(epoch: Int, loss: Double) -> Bool {
        if loss < bestLoss {
            bestLoss = loss
            bestEpoch = epoch
            sinceBest = 0
            return true
        }
        sinceBest += 1
        if let patience, sinceBest >= patience { stopped = true }
        return false
    }
}

/// Mini-batch training of a classifier with cross-entropy. Each epoch's shuffle and each
/// step's dropout masks derive from the seed and the epoch/step number alone, so a run
/// resumed at an epoch boundary (weights + optimizer state restored) continues exactly
/// as the uninterrupted run would have.
public final class Trainer {
    public let model: Sequential
    public let options: TrainingOptions
    public let optimizer: any Optimizer
    public let pool: ThreadPool
    public private(set) var schedule: LearningRateSchedule
    /// Optimizer steps taken so far (drives the schedule).
    public var step = 0
    /// Runs after every optimizer step (pruning masks re-apply themselves here).
    public var afterStep: (() -> Void)?

    public init(model: Sequential, options: TrainingOptions, samplesPerEpoch: Int, pool: ThreadPool = .shared) {
        self.model = model
        self.options = options
        self.pool = pool
        let parameters = model.parameters
        switch options.optimizer {
        case .sgd: optimizer = SGD(parameters, momentum: options.momentum, weightDecay: options.weightDecay)
        case .adam: optimizer = Adam(parameters, weightDecay: options.weightDecay)
        case .adamw: optimizer = Adam.adamW(parameters, weightDecay: options.weightDecay)
        }
        let stepsPerEpoch = (samplesPerEpoch + options.batchSize - 1) / max(options.batchSize, 1)
        let total = stepsPerEpoch * options.epochs
        schedule = LearningRateSchedule(
            base: options.learningRate, warmupSteps: Int(Double(total) * options.warmupFraction),
            totalSteps: total, decay: options.decay)
    }

    /// One pass over `data` in a seeded order; returns mean loss and accuracy, or nil if
    /// `shouldStop` said so between batches (the epoch is then redone on resume).
    public func trainEpoch(_ data: LabeledSamples, epoch: Int, shouldStop: () -> Bool = { false }) -> (
        loss: Double, accuracy: Double
    )? {
        var order = Array(0..<data.count)
        var random = SeededRandom(seed: options.seed &+ 0x5EED &* UInt64(epoch + 1))
        order.shuffle(using: &random)
        var lossSum = 0.0, correct = 0
        var start = 0
        while start < order.count {
            if shouldStop() { return nil }
            let end = min(start + options.batchSize, order.count)
            let (x, labels) = data.batch(order[start..<end])
            let tape = Tape(training: true, seed: options.seed ^ UInt64(step) &* 0x9E37_79B9, pool: pool)
            let logits = model.forward(tape.constant(x), on: tape)
            let loss = tape.crossEntropy(logits, labels: labels)
            tape.backward(loss)
            if let clip = options.clipNorm { clipGradientNorm(optimizer.parameters, maxNorm: clip) }
            optimizer.step(lr: schedule.rate(at: step))
            afterStep?()
            step += 1
            lossSum += Double(tape.value(loss).data[0]) * Double(labels.count)
            correct += countCorrect(tape.value(logits), labels)
            start = end
        }
        return (lossSum / Double(max(data.count, 1)), Double(correct) / Double(max(data.count, 1)))
    }

    /// Loss and accuracy without training (dropout off, batch norm on running statistics).
    public func evaluate(_ data: LabeledSamples, batchSize: Int = 256) -> (loss: Double, accuracy: Double) {
        var lossSum = 0.0, correct = 0, start = 0
        let all = Array(0..<data.count)
        while start < data.count {
            let end = min(start + batchSize, data.count)
            let (x, labels) = data.batch(all[start..<end])
            let tape = Tape(training: false, pool: pool)
            let logits = model.forward(tape.constant(x), on: tape)
            lossSum += Double(tape.value(tape.crossEntropy(logits, labels: labels)).data[0]) * Double(labels.count)
            correct += countCorrect(tape.value(logits), labels)
            start = end
        }
        return (lossSum / Double(max(data.count, 1)), Double(correct) / Double(max(data.count, 1)))
    }

    func countCorrect(_ logits: Tensor, _ labels: [Int]) -> Int {
        zip(logits.argmaxRows(), labels).filter { $0 == $1 }.count
    }
}
