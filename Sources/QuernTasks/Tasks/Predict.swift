import Foundation
import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// `predict`: a model's outputs per record: for classifiers the top label, its score and
/// (unless `output.probabilities` is false) every class's probability; for regressors
/// the value. Tabular models take features; text classifiers take a text, or a sentence
/// pair for cross-encoders (`input.pair_field`).
public enum PredictTask: JobTask {
    public static let name = "predict"

    public static func check(_ manifest: Manifest) throws {
        _ = try manifest.modelField("a model directory")
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        .records(try Predictor.prepare(job, evaluate: false))
    }
}

/// The record loop `predict` and `evaluate` share: a model's raw outputs per record
/// become labels (with scores and probabilities) or values, and under `evaluate` a
/// confusion matrix or error sums. The model side is a closure, so tabular models
/// (features in) and text models (texts in) share the labels, checks, rows and metrics.
final class Predictor: RecordTask {
    /// Raw outputs per record (logits for classifiers, values for regressors), or the
    /// record's own error.
    typealias Outputs = ([Record]) -> [Result<[Float], QuernError>]

    let model: any Model
    let spec: RecordSpec
    let inputSize: Int?
    let labels: [String]
    let evaluate: Bool
    let probabilities: Bool
    let outputs: Outputs
    let window: Int
    let labelIndex: [String: Int]
    /// confusion[true][predicted], for classifiers under `evaluate`.
    var confusion: [[Int]]
    /// Regression error sums under `evaluate`.
    var squaredError = 0.0, absoluteError = 0.0, regressionCount = 0

    init(
        model: any Model, spec: RecordSpec, inputSize: Int?, labels: [String], evaluate: Bool, probabilities: Bool,
        window: Int, outputs: @escaping Outputs
    ) {
        self.model = model
        self.spec = spec
        self.inputSize = inputSize
        self.labels = labels
        self.evaluate = evaluate
        self.probabilities = probabilities
        self.window = window
        self.outputs = outputs
        labelIndex = Dictionary(labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        confusion = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
    }

    /// A tabular model on features, or a text classifier on texts.
    static func prepare(_ job: TaskInputs, evaluate: Bool) throws -> Predictor {
        let m = job.manifest
        let model = try job.loadModel()
        if let tabular = model.capability(TabularModel.self) {
            if m.input.format == .txt {
                throw QuernError(
                    .unsupportedFormat, "a \(model.family) model needs feature records (csv, jsonl or npy), not txt",
                    field: "input.format")
            }
            var spec = m.recordSpec(texts: false, labels: evaluate)
            spec.modelFeatureNames = tabular.featureNames
            return Predictor(
                tabular: tabular, spec: spec, evaluate: evaluate, probabilities: m.output.probabilities,
                batchSize: m.batchSize)
        }
        guard let encoder = model.capability(TextEncoder.self) else {
            throw job.lacks(TabularModel.self, "a model that takes features or a text classifier", model: model)
        }
        guard Manifest.textFormats.contains(m.input.format) else {
            throw QuernError(
                .unsupportedFormat,
                "a \(model.family) model reads texts: input.format must be jsonl, csv or txt, not \(m.input.format.rawValue)",
                field: "input.format")
        }
        guard let classifier = model.capability(SequenceClassifier.self) else {
            throw QuernError(
                .modelInvalid,
                "\(job.modelPath) has no classification head; embed or score with it, or train a head with a finetune job",
                field: "model")
        }
        let texts = try TextRecords(m, model: encoder)
        let pairs = m.input.pairField != nil
        let c = classifier.outputs
        return Predictor(
            model: model, spec: m.recordSpec(texts: true, labels: evaluate), inputSize: nil, labels: classifier.labels,
            evaluate: evaluate, probabilities: m.output.probabilities, window: texts.window
        ) { batch in
            let (out, rows, _) = texts.run(batch, pairs: pairs)
            return rows.map { $0.map { Array(out.scores[($0 * c)..<(($0 + 1) * c)]) } }
        }
    }

    /// A tabular model (mlp, cnn): each record's features, checked for count.
    convenience init(
        tabular model: any TabularModel, spec: RecordSpec, evaluate: Bool, probabilities: Bool, batchSize: Int
    ) {
        self.init(
            model: model, spec: spec, inputSize: model.inputSize, labels: model.labels, evaluate: evaluate,
            probabilities: probabilities, window: batchSize
        ) { batch in
            var outcomes = [Result<[Float], QuernError>?](repeating: nil, count: batch.count)
            var rows: [Int] = []
            var x: [Float] = []
            x.reserveCapacity(batch.count * model.inputSize)
            for (i, r) in batch.enumerated() {
                if r.features.count != model.inputSize {
                    outcomes[i] = .failure(
                        QuernError(
                            .featureCount,
                            "record has \(r.features.count) features; the model takes \(model.inputSize)", line: r.line,
                            member: r.member))
                } else {
                    rows.append(i)
                    x += r.features
                }
            }
            if !rows.isEmpty {
                let y = model.forward(Tensor(shape: [rows.count, model.inputSize], data: x))
                for (k, i) in rows.enumerated() { outcomes[i] = .success(Array(y.row(k))) }
            }
            return outcomes.map { $0! }
        }
    }

    var isClassifier: Bool { !labels.isEmpty }

    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        var outcomes = [Result<ResultRow, QuernError>?](repeating: nil, count: batch.count)
        var kept: [Int] = []
        for (i, r) in batch.enumerated() {
            if evaluate && isClassifier, let label = r.label, labelIndex[label] == nil {
                outcomes[i] = .failure(
                    QuernError(
                        .unknownLabel,
                        "label \"\(label)\" is not one of the model's classes (\(labels.prefix(10).joined(separator: ", ")))",
                        line: r.line, member: r.member))
            } else if evaluate && !isClassifier, let label = r.label, Float(label) == nil {
                outcomes[i] = .failure(
                    QuernError(
                        .invalidRecord, "label \"\(label)\" is not a number (the model is a regressor)", line: r.line,
                        member: r.member))
            } else {
                kept.append(i)
            }
        }
        if !kept.isEmpty {
            for (i, result) in zip(kept, outputs(kept.map { batch[$0] })) {
                switch result {
                case .success(let y):
                    outcomes[i] = .success(row(for: batch[i], output: isClassifier ? Self.probabilities(y) : y))
                case .failure(let e):
                    outcomes[i] = .failure(e)
                }
            }
        }
        return outcomes.map { $0! }
    }

    /// Softmax of one record's logits, shifted by their maximum and summed in Double: a
    /// handful of classes per record, so exactness costs nothing here.
    static func probabilities(_ logits: [Float]) -> [Float] {
        guard let top = logits.max() else { return logits }
        var p = logits
        var sum = 0.0
        for i in p.indices {
            let e = exp(Double(p[i] - top))
            p[i] = Float(e)
            sum += e
        }
        for i in p.indices { p[i] = Float(Double(p[i]) / sum) }
        return p
    }

    func row(for record: Record, output: [Float]) -> ResultRow {
        var fields: [(String, ResultRow.Value)] = []
        if isClassifier {
            var best = 0
            for j in 1..<max(output.count, 1) where output[j] > output[best] { best = j }
            let predicted = labels[best]
            if evaluate, let truth = record.label {
                confusion[labelIndex[truth]!][best] += 1
                fields = [
                    ("label", .string(truth)), ("predicted", .string(predicted)), ("score", .float(output[best])),
                    ("correct", .bool(truth == predicted))
                ]
            } else {
                fields = [("label", .string(predicted)), ("score", .float(output[best]))]
            }
            if probabilities { fields.append(("probabilities", .floats(output))) }
        } else {
            let prediction: ResultRow.Value = output.count == 1 ? .float(output[0]) : .floats(output)
            fields = [("prediction", prediction)]
            if evaluate, let truth = record.label, let t = Float(truth), output.count == 1 {
                let d = Double(output[0] - t)
                squaredError += d * d
                absoluteError += abs(d)
                regressionCount += 1
                fields.insert(("label", .float(t)), at: 0)
            }
        }
        return ResultRow(id: record.id, fields: fields)
    }

    var state: JSONValue {
        [
            "confusion": .array(confusion.map { .array($0.map { .int(Int64($0)) }) }),
            "squared_error": .double(squaredError), "absolute_error": .double(absoluteError),
            "regression_count": .int(Int64(regressionCount))
        ]
    }

    func restore(_ state: JSONValue) throws {
        guard let o = state.objectValue, let c = o["confusion"]?.arrayValue else {
            throw QuernError(.internalError, "bad task state in checkpoint")
        }
        confusion = c.map { ($0.arrayValue ?? []).map { Int($0.intValue ?? 0) } }
        squaredError = o["squared_error"]?.doubleValue ?? 0
        absoluteError = o["absolute_error"]?.doubleValue ?? 0
        regressionCount = Int(o["regression_count"]?.intValue ?? 0)
    }

    func metrics() -> JSONValue? {
        guard evaluate else { return nil }
        if isClassifier { return ClassificationMetrics(labels: labels, confusion: confusion).json }
        let n = Double(max(regressionCount, 1))
        return [
            "count": .int(Int64(regressionCount)), "mse": .double(squaredError / n), "mae": .double(absoluteError / n)
        ]
    }
}
