import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 1, "padding": 1,
/// "activation": "relu"}` on `[channels, height, width]`: square kernels, zero padding,
/// run as one GEMM over im2col patches. Tensors `weight [out, in, k, k]`, `bias [out]`.
public struct Conv2dSpec: LayerSpec, Equatable {
    public static let types = ["conv2d"]
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int
    public let activation: Activation

    public init(outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, activation: Activation = .none) {
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.activation = activation
    }

    public init(type: String, entry: LayerEntry) throws {
        let out = try entry.int("out_channels"), k = try entry.int("kernel_size"),
            s = try entry.int("stride", default: 1)
        guard out > 0, k > 0, s > 0 else {
            throw entry.invalid("out_channels, kernel_size and stride must be positive")
        }
        self.init(
            outChannels: out, kernel: k, stride: s, padding: try entry.int("padding", default: 0),
            activation: try entry.activation())
    }

    public var json: JSONValue {
        [
            "type": "conv2d", "out_channels": .int(Int64(outChannels)), "kernel_size": .int(Int64(kernel)),
            "stride": .int(Int64(stride)), "padding": .int(Int64(padding)), "activation": .string(activation.rawValue)
        ]
    }

    public func outputShape(_ input: [Int]) throws -> [Int] {
        guard input.count == 3 else { throw ShapeError("conv2d needs [channels, height, width] input, got \(input)") }
        let h = (input[1] + 2 * padding - kernel) / stride + 1, w = (input[2] + 2 * padding - kernel) / stride + 1
        guard input[1] + 2 * padding >= kernel, input[2] + 2 * padding >= kernel, h > 0, w > 0 else {
            throw ShapeError("a \(kernel)x\(kernel) kernel does not fit a \(input[1])x\(input[2]) input")
        }
        return [outChannels, h, w]
    }

    public func tensors(input: [Int]) -> [(name: String, shape: [Int])] {
        [("weight", [outChannels, input[0], kernel, kernel]), ("bias", [outChannels])]
    }

    public func matrices(input: [Int]) -> [WeightMatrix] {
        [WeightMatrix(name: "weight", shape: [outChannels, input[0], kernel, kernel])]
    }

    public var foldTarget: (weight: String, bias: String)? { activation == .none ? ("weight", "bias") : nil }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer {
        Compiled(matrix: BoundMatrix(t, matrices(input: input)[0], bias: "bias"), spec: self)
    }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        guard let t = tensors, let w = t.optional("weight") else {
            return Conv2d(
                input[0], outChannels, kernel: kernel, stride: stride, padding: padding, activation: activation,
                random: &random, name: name)
        }
        return Conv2d(
            weight: Parameter(t.name("weight"), w), bias: t.optional("bias").map { Parameter(t.name("bias"), $0) },
            stride: stride, padding: padding, activation: activation)
    }

    struct Compiled: InferenceLayer {
        let matrix: BoundMatrix
        let spec: Conv2dSpec

        /// Patches `[batch·oH·oW, C·k·k]` times the kernels, then back to NCHW. Calibration
        /// observes the image itself: the patches hold the same values (and padding zeros,
        /// which every input range includes).
        func forward(
            _ x: [Float], batch: Int, input: [Int], output: [Int],
            observe: ((String, [Float]) -> Void)?
        ) -> [Float] {
            observe?(matrix.name, x)
            let columns = ConvLayout.im2col(
                x, batch: batch, channels: input[0], height: input[1], width: input[2],
                kernelH: spec.kernel, kernelW: spec.kernel, stride: spec.stride,
                padding: spec.padding)
            let positions = output[1] * output[2]
            let flat = matrix.apply(columns, rows: batch * positions, activation: spec.activation, observe: nil)
            return ConvLayout.transposeImages(flat, batch: batch, rows: positions, cols: output[0])
        }

        var summary: [MatrixSummary] { [matrix.summary] }
    }
}
