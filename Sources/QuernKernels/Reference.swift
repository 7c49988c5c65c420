import Foundation

/// Plain, obviously-correct kernels, accumulated in Double where it matters: the test
/// oracles every fast kernel and its scalar twin are held to. They favour clarity over
/// speed; models run on the kernel tables (`KernelTable`), not on these.
public enum Reference {
    /// `y[m, n] = Σ_k x[m, k] · w[n, k] + bias[n]`, then `activation`.
    /// x: `[M, K]`, w: `[N, K]` (PyTorch's Linear layout), bias: `[N]` → `[M, N]`.
    /// Accumulates in Double so the reference is tighter than any fp32 kernel it checks.
    public static func linear(_ x: Tensor, _ w: Tensor, bias: Tensor?, activation: Activation = .none) -> Tensor {
        let m = x.rows, k = x.rowLength, n = w.rows
        precondition(w.rowLength == k, "linear: x is [\(m), \(k)] but w is \(w.shape)")
        precondition(bias == nil || bias!.count == n, "linear: bias has \(bias!.count) values for \(n) outputs")
        var out = [Float](repeating: 0, count: m * n)
        x.data.withUnsafeBufferPointer { xp in
            w.data.withUnsafeBufferPointer { wp in
                for i in 0..<m {
                    for j in 0..<n {
                        var acc = Double(bias?.data[j] ?? 0)
                        for p in 0..<k { acc += Double(xp[i * k + p]) * Double(wp[j * k + p]) }
                        out[i * n + j] = activation.apply(Float(acc))
                    }
                }
            }
        }
        return Tensor(shape: [m, n], data: out)
    }

    /// Row-wise softmax over the last dimension, shifted by the row maximum so large
    /// logits cannot overflow. `keep` masks positions out (probability 0); a row with
    /// every position masked becomes zeros.
    public static func softmax(_ x: Tensor, keep: [Bool]? = nil) -> Tensor {
        var out = x.data
        let n = x.rowLength
        for r in 0..<x.rows {
            let row = r * n..<(r + 1) * n
            let kept = row.filter { keep?[$0 - r * n] ?? true }
            guard let mx = kept.map({ out[$0] }).max() else {
                for i in row { out[i] = 0 }
                continue
            }
            var sum: Double = 0
            for i in row {
                let e = (keep?[i - r * n] ?? true) ? exp(Double(out[i] - mx)) : 0
                out[i] = Float(e)
                sum += e
            }
            for i in row { out[i] = Float(Double(out[i]) / sum) }
        }
        return Tensor(shape: x.shape, data: out)
    }

    /// Layer norm over the last dimension (population variance), accumulated in Double.
    public static func layerNorm(_ x: Tensor, gamma: [Float]?, beta: [Float]?, eps: Float) -> Tensor {
        var out = x.data
        let n = x.rowLength
        for r in 0..<x.rows {
            let row = x.data[(r * n)..<((r + 1) * n)].map(Double.init)
            let mean = row.reduce(0, +) / Double(n)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            let inv = 1 / (variance + Double(eps)).squareRoot()
            for j in 0..<n {
                out[r * n + j] = Float((row[j] - mean) * inv * Double(gamma?[j] ?? 1) + Double(beta?[j] ?? 0))
            }
        }
        return Tensor(shape: x.shape, data: out)
    }
}

extension Reference {
    /// Direct convolution, NCHW, accumulated in Double: x `[B, C, H, W]`, weight
    /// `[outC, C, kH, kW]`, zero padding.
    public static func conv2d(
        _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int,
        activation: Activation = .none
    ) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oc, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        var out = Tensor(zeros: [n, oc, oh, ow])
        for b in 0..<n {
            for o in 0..<oc {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var acc = Double(bias?.data[o] ?? 0)
                        for ci in 0..<c {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * stride + ky - padding, ix = ox * stride + kx - padding
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    acc +=
                                        Double(x.data[((b * c + ci) * h + iy) * w + ix])
                                        * Double(weight.data[((o * c + ci) * kh + ky) * kw + kx])
                                }
                            }
                        }
                        out.data[((b * oc + o) * oh + oy) * ow + ox] = activation.apply(Float(acc))
                    }
                }
            }
        }
        return out
    }
}

extension Reference {
    /// Multi-head self-attention in Double over a padded batch: qkv `[batch, seq,
    /// 3·heads·headDim]` (Q, then K, then V, heads contiguous in each); keep `[batch,
    /// seq]` (1 = real token; nil = all real); returns `[batch, seq, heads·headDim]`.
    public static func attention(qkv: [Float], batch: Int, seq: Int, heads: Int, headDim: Int, keep: [UInt8]?)
        -> [Float]
    {
        let hidden = heads * headDim, row = 3 * hidden
        var out = [Float](repeating: 0, count: batch * seq * hidden)
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<seq {
                    let kept = (0..<seq).filter { keep?[b * seq + $0] ?? 1 != 0 }
                    guard !kept.isEmpty else { continue }
                    var scores: [Double] = []
                    for j in kept {
                        var dot = 0.0
                        for d in 0..<headDim {
                            dot +=
                                Double(qkv[(b * seq + i) * row + h * headDim + d])
                                * Double(qkv[(b * seq + j) * row + hidden + h * headDim + d])
                        }
                        scores.append(dot / Double(headDim).squareRoot())
                    }
                    let mx = scores.max()!
                    let e = scores.map { Foundation.exp($0 - mx) }
                    let sum = e.reduce(0, +)
                    for d in 0..<headDim {
                        var acc = 0.0
                        for (t, j) in kept.enumerated() {
                            acc += e[t] / sum * Double(qkv[(b * seq + j) * row + 2 * hidden + h * headDim + d])
                        }
                        out[(b * seq + i) * hidden + h * headDim + d] = Float(acc)
                    }
                }
            }
        }
        return out
    }
}
