import Foundation
import QuernCore

/// `quern bench classify`: a `finetune` job's head on the frozen encoder against
/// scikit-learn's LogisticRegression on the same embeddings (scripts/bench/
/// text_head_anchor.py), predicting the Debian section of debdesc.jsonl: the ten most
/// common sections, every fifth record held out for the test. Quern: finetune on the
/// training records, then evaluate on the test records. scikit-learn: fit on embed-job
/// vectors of the training records, score on those of the test records.
public struct ClassifyBenchmark {
    let quern: String
    let model: String
    let corpus: String
    let anchor: String?
    let python: String
    let classes: Int
    let epochs: Int
    let learningRate: Double
    let workdir: String

    public init(
        quernBinary: String, model: String, corpus: String, anchorScript: String?, python: String,
        classes: Int, epochs: Int, learningRate: Double, workdir: String
    ) {
        quern = (try? Sys.realpath(quernBinary)) ?? quernBinary
        self.model = (try? Sys.realpath(model)) ?? model
        self.corpus = corpus
        anchor = anchorScript.flatMap { try? Sys.realpath($0) } ?? anchorScript
        self.python = python
        self.classes = classes
        self.epochs = epochs
        self.learningRate = learningRate
        self.workdir = workdir
    }

    /// train.jsonl and test.jsonl: records of the `classes` most common sections, with ids.
    func writeSplit() throws -> (train: String, test: String, trainCount: Int, testCount: Int) {
        var rows: [(String, String)] = []
        for line in try Sys.readFile(corpus, limit: 1 << 32).split(separator: 0x0A) {
            guard let o = try JSONParser.parse(Array(line)).objectValue, let t = o["text"]?.stringValue,
                let s = o["section"]?.stringValue
            else { continue }
            rows.append((t, s))
        }
        var counts: [String: Int] = [:]
        for (_, s) in rows { counts[s, default: 0] += 1 }
        let top = Set(
            counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.prefix(classes).map(
                \.key))
        var train: [UInt8] = [], test: [UInt8] = []
        var n = 0, trainCount = 0, testCount = 0
        for (i, (t, s)) in rows.enumerated() where top.contains(s) {
            let line = JSONWriter.compact(["id": .string("r\(i)"), "text": .string(t), "section": .string(s)]) + [0x0A]
            if n % 5 == 0 { test += line; testCount += 1 } else { train += line; trainCount += 1 }
            n += 1
        }
        let trainPath = Path.join(workdir, "train.jsonl"), testPath = Path.join(workdir, "test.jsonl")
        try Sys.writeFileAtomically(trainPath, train)
        try Sys.writeFileAtomically(testPath, test)
        return (trainPath, testPath, trainCount, testCount)
    }

    public func run() throws {
        try Sys.mkdirs(workdir)
        let split = try writeSplit()
        print("quern bench classify  (\(model); top \(classes) sections of \(corpus))")
        print("target: the finetune head's test accuracy >= scikit-learn LogisticRegression's on the same embeddings\n")
        print("train \(split.trainCount) records, test \(split.testCount) (every fifth record of the top sections)")
        let input: (String) -> JSONValue = { ["path": .string($0), "id_field": "id", "label_field": "section"] }
        let clock = SystemTime()
        var t0 = clock.monotonic()
        let (finetune, trained) = try EmbedBenchmark.job(
            quern: quern, spool: Path.join(workdir, "finetune"),
            manifest: [
                "version": 1, "id": "bench", "task": "finetune", "model": .string(model), "input": input(split.train),
                "train": ["epochs": .int(Int64(epochs)), "learning_rate": .double(learningRate), "batch_size": 256]
            ])
        let finetuneSeconds = clock.monotonic() - t0
        let modelDir = Path.join(workdir, "trained-model")
        try? Sys.removeTree(modelDir)
        try Sys.rename(Path.join(trained, "model"), modelDir)
        t0 = clock.monotonic()
        let (evaluation, _) = try EmbedBenchmark.job(
            quern: quern, spool: Path.join(workdir, "evaluate"),
            manifest: [
                "version": 1, "id": "bench", "task": "evaluate", "model": .string(modelDir), "input": input(split.test)
            ])
        let evaluateSeconds = clock.monotonic() - t0
        let ours = evaluation["metrics"]?.objectValue?["accuracy"]?.doubleValue ?? .nan
        let validation = finetune["metrics"]?.objectValue?["validation_accuracy"]?.doubleValue ?? .nan
        print(
            String(
                format:
                    "quern finetune head (linear, %d epochs, adamw lr %g): test accuracy %.4f (validation %.4f); finetune %.0f s, evaluate %.0f s",
                epochs, learningRate, ours, validation, finetuneSeconds, evaluateSeconds))

        // The anchor: LogisticRegression on embed-job vectors of the same records.
        var vectors: [String] = []
        for (name, path) in [("train", split.train), ("test", split.test)] {
            let (_, done) = try EmbedBenchmark.job(
                quern: quern, spool: Path.join(workdir, "embed-" + name),
                manifest: [
                    "version": 1, "id": "bench", "task": "embed", "model": .string(model),
                    "input": ["path": .string(path), "id_field": "id"]
                ])
            vectors.append(Path.join(done, "results.jsonl.gz"))
        }
        guard
            let reference = Anchor.jsonLines(
                python: python, script: anchor,
                arguments: [split.train, vectors[0], split.test, vectors[1]])?.last,
            let theirs = reference["test_accuracy"]?.doubleValue
        else {
            print("scikit-learn: anchor not available (needs \(python) with scikit-learn)")
            return
        }
        print(
            String(
                format: "scikit-learn LogisticRegression (lbfgs, C=1.0): test accuracy %.4f; fit %.1f s",
                theirs, reference["fit_seconds"]?.doubleValue ?? .nan))
        print(String(format: "difference: %+.2f points (quern − scikit-learn)", (ours - theirs) * 100))
    }
}
