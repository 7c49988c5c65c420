import CKernels

/// The data layouts convolution moves between, shared by inference (`Conv2dSpec`) and
/// training (QuernNN): im2col and its adjoint, and per-image transposes between
/// `[positions, channels]` GEMM output and NCHW.
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

/// Max and average pooling on NCHW tensors.
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
