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
    /// Records handed to `run` at a time: text tasks take many, to share whole passes
    /// between the cores.
    var window: Int { get }
}

/// `predict` and `evaluate`: a model's outputs per record become labels (with scores and
/// probabilities) or values, and under `evaluate` a confusion matrix or error sums.
/// The model side is a closure, so tabular models (features in) and text models (text
/// in) share the labels, checks, rows and metrics.
public final class PredictTask: JobTask {
    /// Raw outputs per record (logits for classifiers, values for regressors), or the
    /// record's own error.
    public typealias Outputs = ([Record]) -> [Result<[Float], QuernError>]

    let labels: [String]
    let evaluate: Bool
    let probabilities: Bool
    let outputs: Outputs
    public let window: Int
    let labelIndex: [String: Int]
    /// confusion[true][predicted], for classifiers under `evaluate`.
    var confusion: [[Int]]
    /// Regression error sums under `evaluate`.
    var squaredError = 0.0, absoluteError = 0.0, regressionCount = 0

    public init(labels: [String], evaluate: Bool, probabilities: Bool, window: Int, outputs: @escaping Outputs) {
        self.labels = labels
        self.evaluate = evaluate
        self.probabilities = probabilities
        self.window = window
        self.outputs = outputs
        labelIndex = Dictionary(labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        confusion = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
    }

    /// A tabular model (mlp, cnn): each record's features, checked for count.
    public convenience init(model: any TabularModel, evaluate: Bool, probabilities: Bool, batchSize: Int) {
        self.init(labels: model.labels, evaluate: evaluate, probabilities: probabilities, window: batchSize) { batch in
            var outcomes = [Result<[Float], QuernError>?](repeating: nil, count: batch.count)
            var rows: [Int] = []
            var x: [Float] = []
            x.reserveCapacity(batch.count * model.inputSize)
            for (i, r) in batch.enumerated() {
                if r.features.count != model.inputSize {
                    outcomes[i] = .failure(QuernError(.featureCount, "record has \(r.features.count) features; the model takes \(model.inputSize)", line: r.line, member: r.member))
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

    public func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        var outcomes = [Result<ResultRow, QuernError>?](repeating: nil, count: batch.count)
        var kept: [Int] = []
        for (i, r) in batch.enumerated() {
            if evaluate && isClassifier, let label = r.label, labelIndex[label] == nil {
                outcomes[i] = .failure(QuernError(.unknownLabel, "label \"\(label)\" is not one of the model's classes (\(labels.prefix(10).joined(separator: ", ")))", line: r.line, member: r.member))
            } else if evaluate && !isClassifier, let label = r.label, Float(label) == nil {
                outcomes[i] = .failure(QuernError(.invalidRecord, "label \"\(label)\" is not a number (the model is a regressor)", line: r.line, member: r.member))
            } else {
                kept.append(i)
            }
        }
        if !kept.isEmpty {
            for (i, result) in zip(kept, outputs(kept.map { batch[$0] })) {
                switch result {
                case .success(let y):
                    let output = isClassifier ? Array(Reference.softmax(Tensor(shape: [1, y.count], data: y)).data) : y
                    outcomes[i] = .success(row(for: batch[i], output: output))
                case .failure(let e):
                    outcomes[i] = .failure(e)
                }
            }
        }
        return outcomes.map { $0! }
    }

    func row(for record: Record, output: [Float]) -> ResultRow {
        var fields: [(String, ResultRow.Value)] = []
        if isClassifier {
            var best = 0
            for j in 1..<max(output.count, 1) where output[j] > output[best] { best = j }
            let predicted = labels[best]
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
        if isClassifier { return ClassificationMetrics(labels: labels, confusion: confusion).json }
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

/// The model of a record-by-record job (`predict`, `evaluate`, `embed`, `score`) loaded
/// by its family, with the task that drives it and the records it reads.
struct RecordJob {
    let task: JobTask
    let family: String
    let weightsSHA256: String
    let weightsBytes: Int
    let spec: RecordSpec

    static func load(manifest: Manifest, modelPath: String, policy: PathPolicy) throws -> RecordJob {
        let precision: LinearOperator.Precision = manifest.precision == .int8 ? .int8 : .fp32
        let type = try ModelDirectory.modelType(modelPath)
        guard ModelDirectory.textFamilies.contains(type) else {
            if manifest.task == .embed || manifest.task == .score {
                throw QuernError(.modelInvalid, "task \(manifest.task.rawValue) needs a text encoder (\(ModelDirectory.textFamilies.joined(separator: ", ")) family); \(modelPath) is \(type)", field: "model")
            }
            if manifest.input.format == .txt {
                throw QuernError(.unsupportedFormat, "a \(type) model needs feature records (csv, jsonl or npy), not txt", field: "input.format")
            }
            let model = try ModelDirectory.load(modelPath, precision: precision)
            var spec = manifest.recordSpec
            spec.modelFeatureNames = model.model.featureNames
            return RecordJob(task: PredictTask(model: model.model, evaluate: manifest.task == .evaluate,
                                               probabilities: manifest.output.probabilities, batchSize: manifest.batchSize),
                             family: model.model.family, weightsSHA256: model.weightsSHA256, weightsBytes: model.weightsBytes, spec: spec)
        }
        guard Manifest.textFormats.contains(manifest.input.format) else {
            throw QuernError(.unsupportedFormat, "a \(type) model reads texts: input.format must be jsonl, csv or txt, not \(manifest.input.format.rawValue)", field: "input.format")
        }
        let model = try BertModel.load(modelPath, precision: precision, maxLength: manifest.maxLength)
        let encoder = TextEncoder(model: model, batchSize: manifest.batchSize)
        let spec = manifest.recordSpec(text: true)
        let task: JobTask
        switch manifest.task {
        case .predict, .evaluate:
            guard model.head != nil else {
                throw QuernError(.modelInvalid, "\(modelPath) has no classification head; embed or score with it, or train a head with a finetune job", field: "model")
            }
            task = PredictTask(labels: model.labels, evaluate: manifest.task == .evaluate, probabilities: manifest.output.probabilities,
                               window: TextEncoder.window(batchSize: manifest.batchSize),
                               outputs: encoder.outputs(pairs: manifest.input.pairField != nil))
        case .embed:
            task = EmbedTask(encoder: encoder)
        case .score:
            if let queries = manifest.scoring.queries {
                let path = try policy.resolve(queries, field: "score.queries")
                guard let format = Manifest.inferFormat(path), Manifest.textFormats.contains(format) else {
                    throw QuernError(.unsupportedFormat, "score.queries must be a .jsonl, .csv or .txt file of texts", field: "score.queries")
                }
                var querySpec = RecordSpec(format: format, idField: manifest.scoring.idField ?? manifest.input.idField,
                                           textField: manifest.scoring.textField ?? manifest.input.textField ?? "text")
                querySpec.wantsText = true
                let q = try ScoreTask.queries(path: path, spec: querySpec, encoder: encoder, limits: manifest.limits.stream)
                let vectors = LinearOperator.fp32(PackedWeights(Tensor(shape: [q.ids.count, model.dimension], data: q.vectors)))
                task = ScoreTask(encoder: encoder, mode: .queries(ids: q.ids, vectors: vectors, topK: manifest.scoring.topK))
            } else if model.head != nil {
                guard model.outputs == 1 else {
                    throw QuernError(.modelInvalid, "\(modelPath) has a \(model.outputs)-class head; score of pairs takes a bi-encoder (no head) or a cross-encoder (one output). Use predict for its classes", field: "model")
                }
                task = ScoreTask(encoder: encoder, mode: .crossEncoder)
            } else {
                task = ScoreTask(encoder: encoder, mode: .pairs)
            }
        default:
            throw QuernError(.internalError, "task \(manifest.task.rawValue) is not a record task")
        }
        return RecordJob(task: task, family: model.family, weightsSHA256: model.weightsSHA256, weightsBytes: model.weightsBytes, spec: spec)
    }
}
