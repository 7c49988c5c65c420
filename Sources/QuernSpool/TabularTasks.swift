import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// What a task does with the records of a job. Tasks keep their running totals in a
/// JSON state so a checkpoint can carry them across a crash.
public protocol JobTask: AnyObject {
    /// One outcome per record, in order: a result row or a record-level error.
    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>]
    var state: JSONValue { get }
    func restore(_ state: JSONValue) throws
    /// Job-level metrics for report.json (nil for tasks without any).
    func metrics() -> JSONValue?
}

/// `predict` and `evaluate` on a tabular model (mlp): features in, labels or values out.
public final class TabularTask: JobTask {
    let model: any TabularModel
    let evaluate: Bool
    let probabilities: Bool
    let labelIndex: [String: Int]
    /// confusion[true][predicted], for classifiers under `evaluate`.
    var confusion: [[Int]]
    /// Regression error sums under `evaluate`.
    var squaredError = 0.0, absoluteError = 0.0, regressionCount = 0

    public init(model: any TabularModel, evaluate: Bool, probabilities: Bool) {
        self.model = model
        self.evaluate = evaluate
        self.probabilities = probabilities
        labelIndex = Dictionary(model.labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        confusion = Array(repeating: Array(repeating: 0, count: model.labels.count), count: model.labels.count)
    }

    var isClassifier: Bool { !model.labels.isEmpty }

    public func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        var outcomes = [Result<ResultRow, QuernError>?](repeating: nil, count: batch.count)
        var rows: [Int] = []
        var x: [Float] = []
        x.reserveCapacity(batch.count * model.inputSize)
        for (i, r) in batch.enumerated() {
            if r.features.count != model.inputSize {
                outcomes[i] = .failure(QuernError(.featureCount, "record has \(r.features.count) features; the model takes \(model.inputSize)", line: r.line, member: r.member))
                continue
            }
            if evaluate && isClassifier, let label = r.label, labelIndex[label] == nil {
                outcomes[i] = .failure(QuernError(.unknownLabel, "label \"\(label)\" is not one of the model's classes (\(model.labels.prefix(10).joined(separator: ", ")))", line: r.line, member: r.member))
                continue
            }
            if evaluate && !isClassifier, let label = r.label, Float(label) == nil {
                outcomes[i] = .failure(QuernError(.invalidRecord, "label \"\(label)\" is not a number (the model is a regressor)", line: r.line, member: r.member))
                continue
            }
            rows.append(i)
            x += r.features
        }
        if !rows.isEmpty {
            let y = model.forward(Tensor(shape: [rows.count, model.inputSize], data: x))
            let probs = isClassifier ? Reference.softmax(y) : y
            for (k, i) in rows.enumerated() {
                outcomes[i] = .success(row(for: batch[i], output: Array(probs.row(k))))
            }
        }
        return outcomes.map { $0! }
    }

    func row(for record: Record, output: [Float]) -> ResultRow {
        var fields: [(String, ResultRow.Value)] = []
        if isClassifier {
            var best = 0
            for j in 1..<max(output.count, 1) where output[j] > output[best] { best = j }
            let predicted = model.labels[best]
            if evaluate, let truth = record.label {
                confusion[labelIndex[truth]!][best] += 1
                fields = [("label", .string(truth)), ("predicted", .string(predicted)), ("score", .float(output[best])),
                          ("correct", .bool(truth == predicted))]
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

    public var state: JSONValue {
        ["confusion": .array(confusion.map { .array($0.map { .int(Int64($0)) }) }),
         "squared_error": .double(squaredError), "absolute_error": .double(absoluteError),
         "regression_count": .int(Int64(regressionCount))]
    }

    public func restore(_ state: JSONValue) throws {
        guard let o = state.objectValue, let c = o["confusion"]?.arrayValue else { throw QuernError(.internalError, "bad task state in checkpoint") }
        confusion = c.map { ($0.arrayValue ?? []).map { Int($0.intValue ?? 0) } }
        squaredError = o["squared_error"]?.doubleValue ?? 0
        absoluteError = o["absolute_error"]?.doubleValue ?? 0
        regressionCount = Int(o["regression_count"]?.intValue ?? 0)
    }

    public func metrics() -> JSONValue? {
        guard evaluate else { return nil }
        if isClassifier { return ClassificationMetrics(labels: model.labels, confusion: confusion).json }
        let n = Double(max(regressionCount, 1))
        return ["count": .int(Int64(regressionCount)), "mse": .double(squaredError / n), "mae": .double(absoluteError / n)]
    }
}

/// Accuracy, per-class precision/recall/F1 and their macro and support-weighted means,
/// from a confusion matrix (rows: true class, columns: predicted), as scikit-learn's
/// `classification_report` defines them (0 where a denominator is 0).
public struct ClassificationMetrics: Sendable {
    public let labels: [String]
    public let confusion: [[Int]]

    public init(labels: [String], confusion: [[Int]]) {
        self.labels = labels
        self.confusion = confusion
    }

    public var total: Int { confusion.joined().reduce(0, +) }
    public var accuracy: Double {
        total == 0 ? 0 : Double(labels.indices.map { confusion[$0][$0] }.reduce(0, +)) / Double(total)
    }

    public func perClass(_ c: Int) -> (precision: Double, recall: Double, f1: Double, support: Int) {
        let tp = Double(confusion[c][c])
        let predicted = Double(confusion.map { $0[c] }.reduce(0, +))
        let support = confusion[c].reduce(0, +)
        let p = predicted == 0 ? 0 : tp / predicted
        let r = support == 0 ? 0 : tp / Double(support)
        let f = p + r == 0 ? 0 : 2 * p * r / (p + r)
        return (p, r, f, support)
    }

    public var json: JSONValue {
        var classes = JSONObject()
        var macro = (0.0, 0.0, 0.0), weighted = (0.0, 0.0, 0.0)
        for (c, name) in labels.enumerated() {
            let m = perClass(c)
            classes[name] = ["precision": .double(m.precision), "recall": .double(m.recall), "f1": .double(m.f1),
                             "support": .int(Int64(m.support))]
            macro.0 += m.precision; macro.1 += m.recall; macro.2 += m.f1
            let w = Double(m.support)
            weighted.0 += w * m.precision; weighted.1 += w * m.recall; weighted.2 += w * m.f1
        }
        let k = Double(max(labels.count, 1)), n = Double(max(total, 1))
        return ["count": .int(Int64(total)), "accuracy": .double(accuracy),
                "macro": ["precision": .double(macro.0 / k), "recall": .double(macro.1 / k), "f1": .double(macro.2 / k)],
                "weighted": ["precision": .double(weighted.0 / n), "recall": .double(weighted.1 / n), "f1": .double(weighted.2 / n)],
                "per_class": .object(classes), "labels": .array(labels.map { .string($0) }),
                "confusion_matrix": .array(confusion.map { .array($0.map { .int(Int64($0)) }) })]
    }
}
