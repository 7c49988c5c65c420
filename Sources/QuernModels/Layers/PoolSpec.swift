import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "maxpool2d" | "avgpool2d", "kernel_size": 2, "stride": 2}` (stride
/// defaults to the kernel size) on `[channels, height, width]`; no padding.
public struct PoolSpec: LayerSpec, Equatable {
    public static let types = ["maxpool2d", "avgpool2d"]
    public let kind: Pool2D.Kind
    public let size: Int
    public let stride: Int

    public init(_ kind: Pool2D.Kind, size: Int, stride: Int? = nil) {
        self.kind = kind
        self.size = size
        self.stride = stride ?? size
    }

    public init(type: String, entry: LayerEntry) throws {
        let k = try entry.int("kernel_size"), s = try entry.int("stride", default: k)
        guard k > 0, s > 0 else { throw entry.invalid("kernel_size and stride must be positive") }
        self.init(type == "maxpool2d" ? .max : .average, size: k, stride: s)
    }

    public var json: JSONValue {
        [
            "type": .string(kind == .max ? "maxpool2d" : "avgpool2d"), "kernel_size": .int(Int64(size)),
            "stride": .int(Int64(stride))
        ]
    }

    public func outputShape(_ input: [Int]) throws -> [Int] {
        guard input.count == 3, input[1] >= size, input[2] >= size else {
            throw ShapeError("a \(size)x\(size) pool does not fit \(input)")
        }
        return [input[0], (input[1] - size) / stride + 1, (input[2] - size) / stride + 1]
    }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer { Compiled(spec: self) }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        Pooling(kind, size: size, stride: stride)
    }

    struct Compiled: InferenceLayer {
        let spec: PoolSpec

        func forward(
            _ x: [Float], batch: Int, input: [Int], output: [Int],
            observe: ((String, [Float]) -> Void)?
        ) -> [Float] {
            Pool2D.forward(
                Tensor(shape: [batch] + input, data: x), kind: spec.kind, size: spec.size, stride: spec.stride
            ).data
        }

        var summary: [MatrixSummary] { [] }
    }
}
