import QuernCore
import QuernData

/// `evaluate`: `predict` against the records' true labels. Rows add the label and
/// whether the prediction was right; the report's metrics are accuracy, per-class
/// precision, recall and F1 with their macro and weighted means and the confusion matrix
/// (as scikit-learn's `classification_report`), or MSE and MAE for regressors.
public enum EvaluateTask: JobTask {
    public static let name = "evaluate"

    public static func check(_ manifest: Manifest) throws {
        _ = try manifest.modelField("a model directory")
        if !manifest.input.hasLabels && manifest.input.format != .npy {
            throw QuernError(
                .missingField, "task evaluate needs input.label_field (the column or field holding the true label)",
                field: "input.label_field")
        }
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        .records(try Predictor.prepare(job, evaluate: true))
    }

    /// Confusion matrices are summed and their scores recomputed; error means are
    /// weighted by their counts.
    public static func combineMetrics(_ parts: [JSONObject]) -> JSONObject? {
        guard var out = parts.first else { return nil }
        if let labels = out["labels"]?.arrayValue?.compactMap(\.stringValue), out["confusion_matrix"] != nil {
            var confusion = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count)
            for p in parts {
                for (i, row) in (p["confusion_matrix"]?.arrayValue ?? []).enumerated() where i < labels.count {
                    for (j, v) in (row.arrayValue ?? []).enumerated() where j < labels.count {
                        confusion[i][j] += Int(v.intValue ?? 0)
                    }
                }
            }
            return ClassificationMetrics(labels: labels, confusion: confusion).json.objectValue
        }
        out = weightedMeans(parts, count: "count", means: ["mse", "mae"])
        return out
    }
}

/// Means of the parts weighted by their counts, the count summed; other keys as the
/// first part has them (they are the same in every part).
func weightedMeans(_ parts: [JSONObject], count key: String, means: [String]) -> JSONObject {
    guard var out = parts.first else { return JSONObject() }
    guard out[key] != nil else { return out }
    let counts = parts.map { Double($0[key]?.intValue ?? 0) }
    let total = counts.reduce(0, +)
    out[key] = .int(Int64(total))
    for m in means where out[m] != nil {
        let sum = zip(parts, counts).map { ($0[m]?.doubleValue ?? 0) * $1 }.reduce(0, +)
        out[m] = .double(total > 0 ? sum / total : 0)
    }
    return out
}
