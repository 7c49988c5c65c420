import QuernCore

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
            classes[name] = [
                "precision": .double(m.precision), "recall": .double(m.recall), "f1": .double(m.f1),
                "support": .int(Int64(m.support))
            ]
            macro.0 += m.precision; macro.1 += m.recall; macro.2 += m.f1
            let w = Double(m.support)
            weighted.0 += w * m.precision; weighted.1 += w * m.recall; weighted.2 += w * m.f1
        }
        let k = Double(max(labels.count, 1)), n = Double(max(total, 1))
        return [
            "count": .int(Int64(total)), "accuracy": .double(accuracy),
            "macro": ["precision": .double(macro.0 / k), "recall": .double(macro.1 / k), "f1": .double(macro.2 / k)],
            "weighted": [
                "precision": .double(weighted.0 / n), "recall": .double(weighted.1 / n), "f1": .double(weighted.2 / n)
            ],
            "per_class": .object(classes), "labels": .array(labels.map { .string($0) }),
            "confusion_matrix": .array(confusion.map { .array($0.map { .int(Int64($0)) }) })
        ]
    }
}
