import Foundation
import QuernCore
import QuernKernels
import QuernModels
import QuernNN
import QuernTestSupport
import Testing

/// Inference (im2col + packed operators, batch norm as a per-channel affine) against the
/// training network's forward pass on the same weights: different code, same function.
let inferenceTolerance: Float = 1e-4
/// int8 inference against fp32, relative to the largest output magnitude: per-channel
/// int8 weights and per-row u8 activations keep layer errors near 1 %.
let int8RelativeTolerance: Float = 0.05

/// A config.json text as the object families decode.
func object(_ json: String) throws -> JSONObject { try #require(try JSONParser.parse(Array(json.utf8)).objectValue) }

@Suite("cnn and mlp layer stacks")
struct StackModelTests {
    static let lenet = #"""
        {"model_type": "cnn", "input_shape": [1, 8, 8],
         "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "activation": "relu"},
                    {"type": "batchnorm"},
                    {"type": "maxpool2d", "kernel_size": 2},
                    {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 1, "activation": "tanh"},
                    {"type": "avgpool2d", "kernel_size": 2},
                    {"type": "flatten"},
                    {"type": "linear", "out_features": 12, "activation": "gelu"},
                    {"type": "dropout", "p": 0.3},
                    {"type": "linear", "out_features": 3}],
         "id2label": {"0": "a", "1": "b", "2": "c"}}
        """#

    /// Writes a model directory with the network's (trained-looking) weights.
    func writeModel(_ config: String, seed: UInt64, into dir: String) throws -> (StackConfig, Sequential) {
        let c = try CNN.config(object(config))
        let net = try c.network(tensors: nil, seed: seed)
        // Give batch norm non-trivial statistics.
        var r = SeededRandom(seed: seed + 1)
        for layer in net.layers {
            if let bn = layer as? BatchNorm {
                bn.statistics.mean = bn.statistics.mean.map { _ in r.uniform(0.5) }
                bn.statistics.variance = bn.statistics.variance.map { _ in 0.5 + r.unit() }
                bn.gamma.value.data = bn.gamma.value.data.map { _ in 1 + r.uniform(0.3) }
                bn.beta.value.data = bn.beta.value.data.map { _ in r.uniform(0.5) }
            }
        }
        try Sys.mkdirs(dir)
        try Sys.writeFile(dir + "/config.json", JSONWriter.pretty(c.json))
        let tensors = net.state.mapValues { ($0.shape, $0.data) }
        try Sys.writeFile(dir + "/model.safetensors", Safetensors.encode(tensors))
        return (c, net)
    }

    @Test("a cnn loads from config.json + safetensors and infers what the training network computes")
    func cnnMatchesTrainingForward() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let (_, net) = try writeModel(Self.lenet, seed: 4, into: tmp.path + "/m")
        let model = try stack(tmp.path + "/m")
        #expect(model.family == "cnn")
        #expect(model.inputSize == 64)
        #expect(model.labels == ["a", "b", "c"])
        var r = SeededRandom(seed: 9)
        let x = Tensor(shape: [5, 64], data: (0..<320).map { _ in r.unit() * 16 })
        let fast = model.forward(x)
        let tape = Tape(training: false)
        let slow = tape.value(net.forward(tape.constant(Tensor(shape: [5, 1, 8, 8], data: x.data)), on: tape))
        #expect(fast.shape == [5, 3])
        for (a, b) in zip(fast.data, slow.data) { #expect(abs(a - b) <= inferenceTolerance * max(1, abs(b))) }

        // int8 at load: close to fp32.
        let q = try stack(tmp.path + "/m", precision: .int8).forward(x)
        let scale = fast.data.map(abs).max()!
        for (a, b) in zip(q.data, fast.data) { #expect(abs(a - b) <= int8RelativeTolerance * scale) }
        let description = try #require(model.describe().objectValue)
        #expect(description["family"] == "cnn")
        #expect(description["layers"]?.arrayValue?.count == 9)
    }

    @Test("a batch norm after a conv or linear without activation is folded at load; outputs unchanged")
    func foldedBatchNorm() throws {
        let config = #"""
            {"model_type": "cnn", "input_shape": [2, 6, 6],
             "layers": [{"type": "conv2d", "out_channels": 3, "kernel_size": 3},
                        {"type": "batchnorm"},
                        {"type": "activation", "activation": "relu"},
                        {"type": "flatten"},
                        {"type": "linear", "out_features": 5},
                        {"type": "batchnorm"},
                        {"type": "linear", "out_features": 2}]}
            """#
        let tmp = try TempDir()
        defer { tmp.remove() }
        let (_, net) = try writeModel(config, seed: 8, into: tmp.path + "/m")
        let model = try stack(tmp.path + "/m")
        var r = SeededRandom(seed: 3)
        let x = Tensor(shape: [4, 72], data: (0..<288).map { _ in r.uniform(2) })
        let tape = Tape(training: false)
        let slow = tape.value(net.forward(tape.constant(Tensor(shape: [4, 2, 6, 6], data: x.data)), on: tape))
        for (a, b) in zip(model.forward(x).data, slow.data) {
            #expect(abs(a - b) <= inferenceTolerance * max(1, abs(b)))
        }
        let layers = try #require(model.describe().objectValue?["layers"]?.arrayValue)
        #expect(layers.count == 7)
    }

    @Test("config errors name the layer")
    func configErrors() throws {
        let cases: [(String, String)] = [
            (
                #"{"model_type": "cnn", "input_shape": [1, 8, 8], "layers": [{"type": "linear", "out_features": 3}]}"#,
                "flatten"
            ),
            (
                #"{"model_type": "cnn", "input_shape": [1, 4, 4], "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 5}]}"#,
                "does not fit"
            ),
            (#"{"model_type": "cnn", "input_shape": [1, 8, 8], "layers": [{"type": "swirl"}]}"#, "unknown layer type"),
            (#"{"model_type": "cnn", "input_size": 64, "layers": [{"type": "flatten"}]}"#, "input_shape")
        ]
        for (config, needle) in cases {
            do {
                _ = try CNN.config(object(config))
                Issue.record("accepted: \(config)")
            } catch let e as QuernError {
                #expect(e.code == .modelInvalid)
                #expect(e.message.contains(needle), "\(e.message)")
            }
        }
    }

    @Test("loading names the tensor and both shapes on a mismatch")
    func shapeMismatch() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        _ = try writeModel(Self.lenet, seed: 5, into: tmp.path + "/m")
        var tensors = try CNN.config(object(Self.lenet)).network(tensors: nil, seed: 1).state.mapValues {
            ($0.shape, $0.data)
        }
        tensors["layers.3.weight"] = ([6, 4, 2, 2], [Float](repeating: 0, count: 96))
        try Sys.writeFile(tmp.path + "/m/model.safetensors", Safetensors.encode(tensors))
        do {
            _ = try ModelRegistry.load(tmp.path + "/m")
            Issue.record("loaded a mismatched model")
        } catch let e as QuernError {
            #expect(e.message.contains("layers.3.weight"))
            #expect(e.message.contains("[6, 4, 3, 3]") && e.message.contains("[6, 4, 2, 2]"), "\(e.message)")
        }
    }
}
