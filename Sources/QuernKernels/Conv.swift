import CKernels

/// 2-D convolution and pooling on NCHW tensors.
///
/// Convolution is im2col + the packed fp32 GEMM: for each image, the patch matrix
/// `[outH·outW, inC·kH·kW]` is built once and multiplied by the weights
/// `[outC, inC·kH·kW]`, packed at load like any Linear layer, with bias and activation
/// fused; the `[outH·outW, outC]` result is written back channel-major.
public struct Conv2D: Sendable {
    public let inChannels, outChannels, kernelH, kernelW, stride, padding: Int
    public let weights: PackedWeights
    public let bias: [Float]?
    public let activation: Activation

    /// weight: `[outC, inC, kH, kW]`; bias: `[outC]`.
    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, activation: Activation = .none) {
        precondition(weight.shape.count == 4, "Conv2D: weight must be [outC, inC, kH, kW], got \(weight.shape)")
        precondition(stride >= 1 && padding >= 0)
        outChannels = weight.shape[0]
        inChannels = weight.shape[1]
        kernelH = weight.shape[2]
        kernelW = weight.shape[3]
        self.stride = stride
        self.padding = padding
        self.activation = activation
        self.bias = bias?.data
        weights = PackedWeights(weight.data, n: outChannels, k: inChannels * kernelH * kernelW)
    }

    private func withBias<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernelH) / stride + 1, (w + 2 * padding - kernelW) / stride + 1)
    }

    /// x: `[batch, inC, H, W]` → `[batch, outC, outH, outW]`.
    public func forward(_ x: Tensor, isa: ISA = .active, pool: ThreadPool = .shared) -> Tensor {
        precondition(
            x.shape.count == 4 && x.shape[1] == inChannels,
            "Conv2D: input \(x.shape), expected [B, \(inChannels), H, W]")
        let batch = x.shape[0], h = x.shape[2], w = x.shape[3]
        let (oh, ow) = outputSize(h, w)
        precondition(oh > 0 && ow > 0, "Conv2D: a \(kernelH)x\(kernelW) kernel does not fit a \(h)x\(w) input")
        let positions = oh * ow, patch = inChannels * kernelH * kernelW
        var out = Tensor(zeros: [batch, outChannels, oh, ow])
        var columns = [Float](repeating: 0, count: positions * patch)
        var product = [Float](repeating: 0, count: positions * outChannels)
        x.data.withUnsafeBufferPointer { xp in
            for b in 0..<batch {
                let image = xp.baseAddress! + b * inChannels * h * w
                columns.withUnsafeMutableBufferPointer { cols in
                    quern_im2col_f32(image, 1, inChannels, h, w, kernelH, kernelW, stride, padding, cols.baseAddress!)
                }
                columns.withUnsafeBufferPointer { cols in
                    product.withUnsafeMutableBufferPointer { prod in
                        withBias { b in
                            SGEMM.linear(
                                cols.baseAddress!, m: positions, weights, bias: b,
                                activation: activation, into: prod.baseAddress!, isa: isa, pool: pool)
                        }
                    }
                }
                // [positions, outC] → [outC, positions]
                let transpose = isa.kernels.transpose
                product.withUnsafeBufferPointer { prod in
                    out.data.withUnsafeMutableBufferPointer { o in
                        transpose(
                            prod.baseAddress!, outChannels, positions, outChannels,
                            o.baseAddress! + b * outChannels * positions, positions)
                    }
                }
            }
        }
        return out
    }
}

/// The data layouts convolution moves between, shared by inference (`Conv2D`, the model
/// families) and training (QuernNN): im2col and its adjoint, and per-image transposes
/// between `[positions, channels]` GEMM output and NCHW.
public enum ConvLayout {
    /// The active path's transpose of a `rows × cols` block: `out[c·ldo + r] = input[r·ldi + c]`.
    public static func transpose(
        _ input: UnsafePointer<Float>, _ ldi: Int, _ rows: Int, _ cols: Int,
        _ out: UnsafeMutablePointer<Float>, _ ldo: Int
    ) {
        ISA.active.kernels.transpose(input, ldi, rows, cols, out, ldo)
    }

    /// `[B·oH·oW, C·kh·kw]` patches of NCHW images `x` (zero outside the image).
    public static func im2col(
        _ x: [Float], batch: Int, channels: Int, height: Int, width: Int, kernelH: Int, kernelW: Int,
        stride: Int, padding: Int
    ) -> [Float] {
        let oh = (height + 2 * padding - kernelH) / stride + 1, ow = (width + 2 * padding - kernelW) / stride + 1
        let count = batch * oh * ow * channels * kernelH * kernelW
        return [Float](unsafeUninitializedCapacity: count) { out, n in
            x.withUnsafeBufferPointer { xp in
                quern_im2col_f32(
                    xp.baseAddress!, batch, channels, height, width, kernelH, kernelW, stride, padding, out.baseAddress!
                )
            }
            n = count
        }
    }

    /// The adjoint of `im2col`: every patch entry added back to the pixel it came from.
    public static func col2im(
        _ columns: [Float], batch: Int, channels: Int, height: Int, width: Int, kernelH: Int,
        kernelW: Int, stride: Int, padding: Int
    ) -> [Float] {
        var dx = [Float](repeating: 0, count: batch * channels * height * width)
        columns.withUnsafeBufferPointer { cp in
            dx.withUnsafeMutableBufferPointer { dp in
                quern_col2im_f32(
                    cp.baseAddress!, batch, channels, height, width, kernelH, kernelW, stride, padding, dp.baseAddress!)
            }
        }
        return dx
    }

    /// Per image, a `rows × cols` matrix becomes `cols × rows`.
    public static func transposeImages(_ a: [Float], batch: Int, rows: Int, cols: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: a.count) { out, count in
            a.withUnsafeBufferPointer { src in
                for b in 0..<batch {
                    transpose(
                        src.baseAddress! + b * rows * cols, cols, rows, cols, out.baseAddress! + b * rows * cols, rows)
                }
            }
            count = a.count
        }
    }
}

public enum Pool2D {
    public enum Kind: Sendable { case max, average }

    /// x: `[batch, C, H, W]` → `[batch, C, outH, outW]`, windows of `size` every `stride`
    /// (no padding; average over the whole window, as PyTorch's default).
    public static func forward(_ x: Tensor, kind: Kind, size: Int, stride: Int? = nil) -> Tensor {
        precondition(x.shape.count == 4, "Pool2D: input must be [B, C, H, W], got \(x.shape)")
        let s = stride ?? size
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let oh = (h - size) / s + 1, ow = (w - size) / s + 1
        precondition(oh > 0 && ow > 0, "Pool2D: a \(size)x\(size) window does not fit \(h)x\(w)")
        var out = Tensor(zeros: [n, c, oh, ow])
        for plane in 0..<(n * c) {
            let base = plane * h * w
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var acc: Float = kind == .max ? -.infinity : 0
                    for ky in 0..<size {
                        for kx in 0..<size {
                            let v = x.data[base + (oy * s + ky) * w + ox * s + kx]
                            acc = kind == .max ? max(acc, v) : acc + v
                        }
                    }
                    out.data[(plane * oh + oy) * ow + ox] = kind == .max ? acc : acc / Float(size * size)
                }
            }
        }
        return out
    }
}
