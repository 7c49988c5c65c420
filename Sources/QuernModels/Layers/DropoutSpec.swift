import QuernCore
import QuernKernels
import QuernNN

/// `{"type": "dropout", "p": 0.5}`: zeroes a fraction p of activations while training
/// (scaling the rest by 1/(1−p)); nothing at inference.
public struct DropoutSpec: LayerSpec, Equatable {
    public static let types = ["dropout"]
    public let p: Float

    public init(p: Float) { self.p = p }

    public init(type: String, entry: LayerEntry) throws {
        let p = entry.object["p"]?.doubleValue ?? 0.5
        guard p >= 0, p < 1 else { throw entry.invalid("\"p\" must be in [0, 1)") }
        self.init(p: Float(p))
    }

    public var json: JSONValue { ["type": "dropout", "p": .double(Double(p))] }

    public func outputShape(_ input: [Int]) throws -> [Int] { input }

    public func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer { IdentityLayer() }

    public func trainable(
        input: [Int], name: String, tensors: LayerTensors?,
        random: inout SeededRandom
    ) -> any QuernNN.Layer {
        Dropout(p)
    }
}
