import QuernKernels

#if canImport(Glibc)
    import Glibc
#endif

/// The differentiable ops. Each computes its value with the kernel set and records how
/// to turn the output's gradient into its inputs' gradients. Shapes follow PyTorch:
/// Linear `[batch, in] → [batch, out]`, weights `[out, in]`; images NCHW.
extension Tape {
    // MARK: dense

    /// `act(x · wᵀ + b)`: x `[M, K]` (leading dimensions flattened), w `[N, K]`, b `[N]`.
    /// ReLU, tanh and sigmoid are fused into the GEMM (their derivatives come from the
    /// output); GELU, whose derivative needs the input, is a separate op.
    public func linear(_ x: Var, _ w: Var, _ b: Var?, activation: Activation = .none) -> Var {
        if activation == .gelu { return gelu(linear(x, w, b)) }
        let xv = values[x.id], wv = values[w.id]
        precondition(
            wv.shape.count == 2 && xv.rowLength == wv.shape[1],
            "linear: input \(xv.shape) does not match weights \(wv.shape)")
        let m = xv.rows, k = wv.shape[1], n = wv.shape[0]
        let y = Products.abT(
            xv.data, m, k, wv.data, n, bias: b.map { values[$0.id].data }, activation: activation, pool: pool)
        let pool = self.pool
        return record(Tensor(shape: [m, n], data: y), inputs: [x, w] + (b.map { [$0] } ?? [])) { tape, g in
            let dz = activationBackward(activation, output: y, grad: g)
            if tape.needsGradient(w) { tape.accumulate(w, Products.aTb(dz, m, n, xv.data, k, pool: pool)) }
            if let b, tape.needsGradient(b) { tape.accumulate(b, Products.columnSums(dz, rows: m, cols: n)) }
            if tape.needsGradient(x) { tape.accumulate(x, Products.ab(dz, m, n, wv.data, k, pool: pool)) }
        }
    }

    public func relu(_ x: Var) -> Var { elementwise(x, .relu) }
    public func tanh(_ x: Var) -> Var { elementwise(x, .tanh) }
    public func sigmoid(_ x: Var) -> Var { elementwise(x, .sigmoid) }

    /// Exact GELU, x·Φ(x); derivative Φ(x) + x·φ(x).
    public func gelu(_ x: Var) -> Var {
        let xv = values[x.id]
        let y = xv.data.map { v in 0.5 * v * erfcf(-v * 0.70710678118654752) }
        return record(Tensor(shape: xv.shape, data: y), inputs: [x]) { tape, g in
            var dx = [Float](repeating: 0, count: g.count)
            for i in 0..<g.count {
                let v = xv.data[i]
                let cdf = 0.5 * erfcf(-v * 0.70710678118654752)
                let pdf = expf(-0.5 * v * v) * 0.39894228040143268
                dx[i] = g[i] * (cdf + v * pdf)
            }
            tape.accumulate(x, dx)
        }
    }

    /// Activations whose derivative is a function of the output.
    func elementwise(_ x: Var, _ activation: Activation) -> Var {
        let xv = values[x.id]
        let y: [Float] =
            switch activation {
            case .relu: xv.data.map { max($0, 0) }
            case .tanh: xv.data.map { tanhf($0) }
            case .sigmoid: xv.data.map { 1 / (1 + expf(-$0)) }
            default: xv.data
            }
        return record(Tensor(shape: xv.shape, data: y), inputs: [x]) { tape, g in
            tape.accumulate(x, activationBackward(activation, output: y, grad: g))
        }
    }

    public func add(_ a: Var, _ b: Var) -> Var {
        let av = values[a.id], bv = values[b.id]
        precondition(av.shape == bv.shape, "add: shapes \(av.shape) and \(bv.shape) differ")
        let y = zip(av.data, bv.data).map { $0 + $1 }
        return record(Tensor(shape: av.shape, data: y), inputs: [a, b]) { tape, g in
            tape.accumulate(a, g)
            tape.accumulate(b, g)
        }
    }

    /// Same values, new shape (`Flatten` is `reshape(x, [batch, -1])`); -1 is inferred.
    public func reshape(_ x: Var, _ shape: [Int]) -> Var {
        let xv = values[x.id]
        var shape = shape
        if let i = shape.firstIndex(of: -1) {
            shape[i] = xv.count / max(shape.filter { $0 != -1 }.reduce(1, *), 1)
        }
        precondition(shape.reduce(1, *) == xv.count, "reshape: \(xv.shape) cannot become \(shape)")
        return record(Tensor(shape: shape, data: xv.data), inputs: [x]) { tape, g in tape.accumulate(x, g) }
    }

    /// Inverted dropout: in training, zero each value with probability p and scale the
    /// rest by 1/(1−p), so inference needs no change.
    public func dropout(_ x: Var, p: Float) -> Var {
        guard training, p > 0 else { return x }
        let xv = values[x.id]
        let scale = 1 / (1 - p)
        var mask = [Float](repeating: 0, count: xv.count)
        for i in 0..<mask.count where random.unit() >= p { mask[i] = scale }
        let y = zip(xv.data, mask).map { $0 * $1 }
        return record(Tensor(shape: xv.shape, data: y), inputs: [x]) { tape, g in
            tape.accumulate(x, zip(g, mask).map { $0 * $1 })
        }
    }

    // MARK: images

    /// 2-D convolution, NCHW: x `[B, C, H, W]`, w `[O, C, kH, kW]`, b `[O]` →
    /// `[B, O, oH, oW]`. The whole batch's patches form one matrix `[B·oH·oW, C·kH·kW]`
    /// (im2col), so the product is one large GEMM rather than one per image.
    public func conv2d(
        _ x: Var, _ w: Var, _ b: Var?, stride: Int = 1, padding: Int = 0,
        activation: Activation = .none
    ) -> Var {
        if activation == .gelu { return gelu(conv2d(x, w, b, stride: stride, padding: padding)) }
        let xv = values[x.id], wv = values[w.id]
        precondition(
            xv.shape.count == 4 && wv.shape.count == 4 && xv.shape[1] == wv.shape[1],
            "conv2d: input \(xv.shape) does not match weights \(wv.shape)")
        let geometry = ConvGeometry(
            batch: xv.shape[0], channels: xv.shape[1], height: xv.shape[2], width: xv.shape[3],
            kernelH: wv.shape[2], kernelW: wv.shape[3], stride: stride, padding: padding)
        precondition(
            geometry.outH > 0 && geometry.outW > 0,
            "conv2d: a \(wv.shape[2])x\(wv.shape[3]) kernel does not fit \(xv.shape[2])x\(xv.shape[3])")
        let outC = wv.shape[0], rows = geometry.rows, patch = geometry.patch, positions = geometry.positions
        let columns = geometry.im2col(xv.data)
        let flat = Products.abT(
            columns, rows, patch, wv.data, outC, bias: b.map { values[$0.id].data },
            activation: activation, pool: pool)
        // [B·P, O] → [B, O, P]: one transpose per image.
        let y = ConvLayout.transposeImages(flat, batch: geometry.batch, rows: positions, cols: outC)
        let pool = self.pool
        let shape = [geometry.batch, outC, geometry.outH, geometry.outW]
        return record(Tensor(shape: shape, data: y), inputs: [x, w] + (b.map { [$0] } ?? [])) { tape, g in
            let gFlat = ConvLayout.transposeImages(g, batch: geometry.batch, rows: outC, cols: positions)
            let dz = activationBackward(activation, output: flat, grad: gFlat)
            if tape.needsGradient(w) { tape.accumulate(w, Products.aTb(dz, rows, outC, columns, patch, pool: pool)) }
            if let b, tape.needsGradient(b) { tape.accumulate(b, Products.columnSums(dz, rows: rows, cols: outC)) }
            if tape.needsGradient(x) {
                tape.accumulate(x, geometry.col2im(Products.ab(dz, rows, outC, wv.data, patch, pool: pool)))
            }
        }
    }

    /// Max or average pooling over `size`×`size` windows every `stride` (no padding).
    public func pool2d(_ x: Var, _ kind: Pool2D.Kind, size: Int, stride: Int? = nil) -> Var {
        let xv = values[x.id]
        precondition(xv.shape.count == 4, "pool2d: input must be [B, C, H, W], got \(xv.shape)")
        let s = stride ?? size
        let planes = xv.shape[0] * xv.shape[1], h = xv.shape[2], w = xv.shape[3]
        let oh = (h - size) / s + 1, ow = (w - size) / s + 1
        precondition(oh > 0 && ow > 0, "pool2d: a \(size)x\(size) window does not fit \(h)x\(w)")
        var y = [Float](repeating: 0, count: planes * oh * ow)
        var argmax = [Int32](repeating: 0, count: kind == .max ? y.count : 0)
        let area = Float(size * size)
        for plane in 0..<planes {
            let base = plane * h * w
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let o = (plane * oh + oy) * ow + ox
                    var best = -Float.infinity, at = 0, sum: Float = 0
                    for ky in 0..<size {
                        for kx in 0..<size {
                            let i = base + (oy * s + ky) * w + ox * s + kx
                            let v = xv.data[i]
                            if v > best { best = v; at = i }
                            sum += v
                        }
                    }
                    if kind == .max {
                        y[o] = best
                        argmax[o] = Int32(at)
                    } else {
                        y[o] = sum / area
                    }
                }
            }
        }
        return record(Tensor(shape: [xv.shape[0], xv.shape[1], oh, ow], data: y), inputs: [x]) { tape, g in
            var dx = [Float](repeating: 0, count: xv.count)
            if kind == .max {
                for o in 0..<g.count { dx[Int(argmax[o])] += g[o] }
            } else {
                for plane in 0..<planes {
                    let base = plane * h * w
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let share = g[(plane * oh + oy) * ow + ox] / area
                            for ky in 0..<size {
                                for kx in 0..<size { dx[base + (oy * s + ky) * w + ox * s + kx] += share }
                            }
                        }
                    }
                }
            }
            tape.accumulate(x, dx)
        }
    }

    // MARK: normalisation and lookup

    /// Batch norm over `[B, C]` or `[B, C, H, W]`, per channel. Training uses the batch's
    /// statistics and updates the running ones (momentum 0.1, unbiased variance, as
    /// PyTorch); inference uses the running statistics.
    public func batchNorm(
        _ x: Var, gamma: Var, beta: Var, stats: BatchNormStatistics, eps: Float = 1e-5,
        momentum: Float = 0.1
    ) -> Var {
        let xv = values[x.id]
        precondition(xv.shape.count == 2 || xv.shape.count == 4, "batchNorm: input must be [B, C] or [B, C, H, W]")
        let batch = xv.shape[0], channels = xv.shape[1], inner = xv.shape.count == 4 ? xv.shape[2] * xv.shape[3] : 1
        precondition(
            channels == stats.mean.count, "batchNorm: \(channels) channels, statistics for \(stats.mean.count)")
        let count = batch * inner
        let index = { (b: Int, c: Int, i: Int) in (b * channels + c) * inner + i }
        var mean = stats.mean, variance = stats.variance
        if training {
            for c in 0..<channels {
                var sum: Double = 0
                for b in 0..<batch { for i in 0..<inner { sum += Double(xv.data[index(b, c, i)]) } }
                let mu = sum / Double(count)
                var sq: Double = 0
                for b in 0..<batch {
                    for i in 0..<inner { let d = Double(xv.data[index(b, c, i)]) - mu; sq += d * d }
                }
                mean[c] = Float(mu)
                variance[c] = Float(sq / Double(count))
                let unbiased = count > 1 ? Float(sq / Double(count - 1)) : variance[c]
                stats.mean[c] = (1 - momentum) * stats.mean[c] + momentum * mean[c]
                stats.variance[c] = (1 - momentum) * stats.variance[c] + momentum * unbiased
            }
        }
        let invStd = variance.map { 1 / (($0 + eps).squareRoot()) }
        let gv = values[gamma.id].data, bv = values[beta.id].data
        var normalized = [Float](repeating: 0, count: xv.count), y = normalized
        for b in 0..<batch {
            for c in 0..<channels {
                for i in 0..<inner {
                    let at = index(b, c, i)
                    normalized[at] = (xv.data[at] - mean[c]) * invStd[c]
                    y[at] = normalized[at] * gv[c] + bv[c]
                }
            }
        }
        let usedBatchStatistics = training
        return record(Tensor(shape: xv.shape, data: y), inputs: [x, gamma, beta]) { tape, g in
            var dGamma = [Float](repeating: 0, count: channels), dBeta = dGamma
            var sumDn = [Float](repeating: 0, count: channels), sumDnN = sumDn
            for b in 0..<batch {
                for c in 0..<channels {
                    for i in 0..<inner {
                        let at = index(b, c, i)
                        dGamma[c] += g[at] * normalized[at]
                        dBeta[c] += g[at]
                        let dn = g[at] * gv[c]
                        sumDn[c] += dn
                        sumDnN[c] += dn * normalized[at]
                    }
                }
            }
            tape.accumulate(gamma, dGamma)
            tape.accumulate(beta, dBeta)
            guard tape.needsGradient(x) else { return }
            var dx = [Float](repeating: 0, count: xv.count)
            let n = Float(count)
            for b in 0..<batch {
                for c in 0..<channels {
                    for i in 0..<inner {
                        let at = index(b, c, i)
                        let dn = g[at] * gv[c]
                        // With batch statistics the mean and variance depend on x too.
                        dx[at] =
                            usedBatchStatistics
                            ? invStd[c] / n * (n * dn - sumDn[c] - normalized[at] * sumDnN[c])
                            : dn * invStd[c]
                    }
                }
            }
            tape.accumulate(x, dx)
        }
    }

    /// Layer norm over the last dimension with learned gamma and beta.
    public func layerNorm(_ x: Var, gamma: Var, beta: Var, eps: Float = 1e-5) -> Var {
        let xv = values[x.id]
        let n = xv.shape.last ?? 1, rows = xv.count / max(n, 1)
        let gv = values[gamma.id].data, bv = values[beta.id].data
        precondition(gv.count == n && bv.count == n, "layerNorm: gamma/beta must have \(n) values")
        var normalized = [Float](repeating: 0, count: xv.count), y = normalized
        var invStd = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var sum: Double = 0
            for j in 0..<n { sum += Double(xv.data[r * n + j]) }
            let mu = sum / Double(n)
            var sq: Double = 0
            for j in 0..<n { let d = Double(xv.data[r * n + j]) - mu; sq += d * d }
            invStd[r] = Float(1 / (sq / Double(n) + Double(eps)).squareRoot())
            for j in 0..<n {
                normalized[r * n + j] = (xv.data[r * n + j] - Float(mu)) * invStd[r]
                y[r * n + j] = normalized[r * n + j] * gv[j] + bv[j]
            }
        }
        return record(Tensor(shape: xv.shape, data: y), inputs: [x, gamma, beta]) { tape, g in
            var dGamma = [Float](repeating: 0, count: n), dBeta = dGamma
            var dx = [Float](repeating: 0, count: xv.count)
            for r in 0..<rows {
                var sumDn: Float = 0, sumDnN: Float = 0
                for j in 0..<n {
                    let at = r * n + j
                    dGamma[j] += g[at] * normalized[at]
                    dBeta[j] += g[at]
                    let dn = g[at] * gv[j]
                    sumDn += dn
                    sumDnN += dn * normalized[at]
                }
                for j in 0..<n {
                    let at = r * n + j
                    dx[at] = invStd[r] / Float(n) * (Float(n) * g[at] * gv[j] - sumDn - normalized[at] * sumDnN)
                }
            }
            tape.accumulate(gamma, dGamma)
            tape.accumulate(beta, dBeta)
            tape.accumulate(x, dx)
        }
    }

    /// Rows of `table` `[V, D]` picked by `ids` → `[ids.count, D]`; the gradient is
    /// scattered back (added, for repeated ids).
    public func embedding(_ ids: [Int], table: Var) -> Var {
        let tv = values[table.id]
        precondition(tv.shape.count == 2, "embedding: table must be [V, D]")
        let vocab = tv.shape[0], d = tv.shape[1]
        var y = [Float](repeating: 0, count: ids.count * d)
        for (i, id) in ids.enumerated() {
            precondition(id >= 0 && id < vocab, "embedding: id \(id) outside 0..<\(vocab)")
            for j in 0..<d { y[i * d + j] = tv.data[id * d + j] }
        }
        return record(Tensor(shape: [ids.count, d], data: y), inputs: [table]) { tape, g in
            var dt = [Float](repeating: 0, count: tv.count)
            for (i, id) in ids.enumerated() {
                for j in 0..<d { dt[id * d + j] += g[i * d + j] }
            }
            tape.accumulate(table, dt)
        }
    }
}

/// dL/dz from dL/dy for y = act(z), for activations whose derivative is a function of y.
func activationBackward(_ activation: Activation, output y: [Float], grad g: [Float]) -> [Float] {
    if activation == .none { return g }
    precondition(activation != .gelu, "GELU is differentiated from its input (Tape.gelu)")
    return [Float](unsafeUninitializedCapacity: g.count) { out, count in
        y.withUnsafeBufferPointer { y in
            g.withUnsafeBufferPointer { g in
                switch activation {
                case .relu: for i in 0..<g.count { out[i] = y[i] > 0 ? g[i] : 0 }
                case .tanh: for i in 0..<g.count { out[i] = g[i] * (1 - y[i] * y[i]) }
                default: for i in 0..<g.count { out[i] = g[i] * y[i] * (1 - y[i]) }
                }
            }
        }
        count = g.count
    }
}

/// Running mean and variance of a batch-norm layer: state, not parameters (no gradient).
public final class BatchNormStatistics: @unchecked Sendable {
    public var mean: [Float]
    public var variance: [Float]

    public init(channels: Int) {
        mean = [Float](repeating: 0, count: channels)
        variance = [Float](repeating: 1, count: channels)
    }

    public init(mean: [Float], variance: [Float]) {
        self.mean = mean
        self.variance = variance
    }
}

/// Where a convolution's patches come from: im2col for the batch, and its adjoint.
struct ConvGeometry {
    let batch, channels, height, width, kernelH, kernelW, stride, padding: Int
    var outH: Int { (height + 2 * padding - kernelH) / stride + 1 }
    var outW: Int { (width + 2 * padding - kernelW) / stride + 1 }
    var positions: Int { outH * outW }
    var rows: Int { batch * positions }
    var patch: Int { channels * kernelH * kernelW }

    /// `[B·oH·oW, C·kH·kW]`: row (b, oy, ox) holds the window under output (oy, ox).
    func im2col(_ x: [Float]) -> [Float] {
        ConvLayout.im2col(
            x, batch: batch, channels: channels, height: height, width: width, kernelH: kernelH,
            kernelW: kernelW, stride: stride, padding: padding)
    }

    /// The adjoint of im2col: every patch entry is added back to the pixel it came from.
    func col2im(_ columns: [Float]) -> [Float] {
        ConvLayout.col2im(
            columns, batch: batch, channels: channels, height: height, width: width, kernelH: kernelH,
            kernelW: kernelW, stride: stride, padding: padding)
    }
}
