import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "flatten"}`: `[channels, height, width]` → `[channels·height·width]`. The
/// data is already laid out that way, so inference does nothing.
public struct FlattenSpec: LayerSpec, Equatable {
    public static let types = ["flatten"]

    public init(type: String, entry: LayerEntry) throws {}

    public var json: JSONValue { ["type": "flatten"] }

    public func outputShape(_ input: [Int]) throws -> [Int] { [input.reduce(1, *)] }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer { IdentityLayer() }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        Flatten()
    }
}
