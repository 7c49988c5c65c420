import QuernKernels

#if canImport(Glibc)
    import Glibc
#endif

/// Losses, averaged over the batch (PyTorch's `reduction="mean"`), each fused with the
/// function in front of it where that is what keeps it stable.
extension Tape {
    /// Softmax cross-entropy from logits `[B, C]` and class indices: log-softmax shifted by
    /// each row's maximum, so large logits cannot overflow; gradient (softmax − onehot)/B.
    public func crossEntropy(_ logits: Var, labels: [Int]) -> Var {
        let lv = values[logits.id]
        let batch = lv.rows, classes = lv.rowLength
        precondition(labels.count == batch, "crossEntropy: \(labels.count) labels for \(batch) rows")
        var probabilities = [Float](repeating: 0, count: lv.count)
        var loss: Double = 0
        for r in 0..<batch {
            precondition(
                labels[r] >= 0 && labels[r] < classes, "crossEntropy: label \(labels[r]) outside 0..<\(classes)")
            let row = r * classes
            var top = -Float.infinity
            for c in 0..<classes { top = max(top, lv.data[row + c]) }
            var sum: Double = 0
            for c in 0..<classes {
                let e = exp(Double(lv.data[row + c] - top))
                probabilities[row + c] = Float(e)
                sum += e
            }
            for c in 0..<classes { probabilities[row + c] = Float(Double(probabilities[row + c]) / sum) }
            loss += log(sum) - Double(lv.data[row + labels[r]] - top)
        }
        let value = Float(loss / Double(max(batch, 1)))
        return record(Tensor(shape: [1], data: [value]), inputs: [logits]) { tape, g in
            var d = probabilities
            let scale = g[0] / Float(max(batch, 1))
            for r in 0..<batch { d[r * classes + labels[r]] -= 1 }
            for i in 0..<d.count { d[i] *= scale }
            tape.accumulate(logits, d)
        }
    }

    /// Binary cross-entropy from logits (any shape) and 0/1 targets, in the form
    /// max(z, 0) − z·t + log(1 + e^−|z|), stable for any z; gradient (σ(z) − t)/count.
    public func binaryCrossEntropy(_ logits: Var, targets: [Float]) -> Var {
        let lv = values[logits.id]
        precondition(targets.count == lv.count, "binaryCrossEntropy: \(targets.count) targets for \(lv.count) logits")
        var loss: Double = 0
        for (z, t) in zip(lv.data, targets) {
            let zd = Double(z)
            loss += max(zd, 0) - zd * Double(t) + log1p(exp(-abs(zd)))
        }
        let count = Float(max(lv.count, 1))
        return record(Tensor(shape: [1], data: [Float(loss / Double(count))]), inputs: [logits]) { tape, g in
            let scale = g[0] / count
            tape.accumulate(logits, zip(lv.data, targets).map { z, t in (1 / (1 + expf(-z)) - t) * scale })
        }
    }

    /// Mean squared error against targets of the same count.
    public func meanSquaredError(_ predictions: Var, targets: [Float]) -> Var {
        let pv = values[predictions.id]
        precondition(
            targets.count == pv.count, "meanSquaredError: \(targets.count) targets for \(pv.count) predictions")
        var loss: Double = 0
        for (p, t) in zip(pv.data, targets) { loss += Double(p - t) * Double(p - t) }
        let count = Float(max(pv.count, 1))
        return record(Tensor(shape: [1], data: [Float(loss / Double(count))]), inputs: [predictions]) { tape, g in
            let scale = 2 * g[0] / count
            tape.accumulate(predictions, zip(pv.data, targets).map { ($0 - $1) * scale })
        }
    }
}
