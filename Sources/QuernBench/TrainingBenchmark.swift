import Foundation
import QuernCore
import QuernKernels
import QuernNN

/// `quern bench train`: seconds per training epoch of the digits-sized MLP and the
/// LeNet-style CNN, against PyTorch on CPU with the same shapes, batch, optimizer and
/// thread count (scripts/bench/train_anchor.py, run in the same invocation).
public struct TrainingBenchmark {
    public enum Model: String, CaseIterable, Sendable { case mlp, cnn }

    let anchor: String?
    let python: String
    let samples: Int
    let epochs: Int

    public init(anchorScript: String?, python: String, samples: Int = 1437, epochs: Int = 5) {
        anchor = anchorScript
        self.python = python
        self.samples = samples
        self.epochs = epochs
    }

    /// The benchmark's networks; train_anchor.py builds the same ones in PyTorch.
    public static func network(_ model: Model, seed: UInt64) -> (Sequential, [Int]) {
        var r = SeededRandom(seed: seed)
        switch model {
        case .mlp:
            return (Sequential([Linear(64, 64, activation: .relu, random: &r), Linear(64, 10, random: &r)]), [64])
        case .cnn:
            return (
                Sequential([
                    Conv2d(1, 8, kernel: 3, padding: 1, activation: .relu, random: &r), Pooling(.max, size: 2),
                    Conv2d(8, 16, kernel: 3, padding: 1, activation: .relu, random: &r), Pooling(.max, size: 2),
                    Flatten(), Linear(64, 64, activation: .relu, random: &r), Linear(64, 10, random: &r)
                ]),
                [1, 8, 8]
            )
        }
    }

    /// (best, median) seconds per epoch after one warm-up epoch.
    func quernEpochSeconds(_ model: Model, batch: Int, threads: Int) -> (Double, Double) {
        let (net, shape) = Self.network(model, seed: 1)
        var r = SeededRandom(seed: 2)
        let size = shape.reduce(1, *)
        let data = LabeledSamples(
            inputs: (0..<(samples * size)).map { _ in r.unit() }, sampleShape: shape,
            labels: (0..<samples).map { _ in Int(r.next() % 10) })
        var options = TrainingOptions()
        options.optimizer = .adam
        options.weightDecay = 0
        options.learningRate = 1e-3
        options.batchSize = batch
        options.epochs = epochs + 1
        let trainer = Trainer(
            model: net, options: options, samplesPerEpoch: samples, pool: ThreadPool(threads: threads))
        let clock = SystemTime()
        var times: [Double] = []
        for epoch in 0...epochs {
            let t0 = clock.monotonic()
            _ = trainer.trainEpoch(data, epoch: epoch)
            if epoch > 0 { times.append(clock.monotonic() - t0) }
        }
        times.sort()
        return (times[0], times[times.count / 2])
    }

    func anchorEpochSeconds(_ model: Model, batch: Int, threads: Int) -> (Double, Double, String)? {
        guard
            let o = Anchor.jsonLines(
                python: python, script: anchor,
                arguments: [
                    "--model", model.rawValue, "--batch", String(batch), "--threads", String(threads),
                    "--epochs", String(epochs), "--samples", String(samples)
                ])?.last,
            let best = o["epoch_seconds_best"]?.doubleValue, let median = o["epoch_seconds_median"]?.doubleValue
        else { return nil }
        return (best, median, o["torch"]?.stringValue ?? "?")
    }

    public func run(models: [Model], batches: [Int], threadCounts: [Int]) {
        print(
            "quern bench train  (\(samples) samples an epoch, Adam lr 1e-3, cross-entropy; best of \(epochs) epochs after a warm-up)"
        )
        print("target: Quern >= 1.0x PyTorch (CPU) on the same shapes, batch and threads\n")
        print("model  batch  threads   quern s/epoch   torch s/epoch   ratio (torch/quern)")
        var version: String?
        for model in models {
            for batch in batches {
                for threads in threadCounts {
                    let ours = quernEpochSeconds(model, batch: batch, threads: threads)
                    let theirs = anchorEpochSeconds(model, batch: batch, threads: threads)
                    if let t = theirs { version = t.2 }
                    let theirsText = theirs.map { String(format: "%13.4f", $0.0) } ?? "            -"
                    let ratio = theirs.map { String(format: "%8.2f", $0.0 / ours.0) } ?? "       -"
                    print(
                        model.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
                            + String(format: "  %5d  %7d   %13.4f  ", batch, threads, ours.0) + theirsText + "   "
                            + ratio)
                }
            }
        }
        if let version {
            print("\nPyTorch \(version)")
        } else {
            print("\nPyTorch anchor not available (run scripts/setup-torch.sh)")
        }
    }
}
