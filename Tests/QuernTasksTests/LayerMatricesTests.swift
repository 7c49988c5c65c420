import QuernCore
import QuernKernels
import QuernNN
import QuernTestSupport
import Testing

@testable import QuernModels
@testable import QuernTasks

/// A layer kind with two weight matrices, defined here and nowhere else:
/// `y = act(x·Wᵀ + b) + x·Sᵀ` (a dense layer with a linear skip projection). quantize and
/// prune must reach both of its matrices through the layer kind, not assume one
/// `layers.{i}.weight` per layer.
struct TwoBranchSpec: LayerSpec {
    static let types = ["two_branch"]
    let outFeatures: Int
    let activation: Activation

    init(outFeatures: Int, activation: Activation) {
        self.outFeatures = outFeatures
        self.activation = activation
    }

    init(type: String, entry: LayerEntry) throws {
        self.init(outFeatures: try entry.int("out_features"), activation: try entry.activation())
    }

    var json: JSONValue {
        ["type": "two_branch", "out_features": .int(Int64(outFeatures)), "activation": .string(activation.rawValue)]
    }

    func outputShape(_ input: [Int]) throws -> [Int] { [outFeatures] }

    func tensors(input: [Int]) -> [(name: String, shape: [Int])] {
        [("weight", [outFeatures, input[0]]), ("bias", [outFeatures]), ("skip_weight", [outFeatures, input[0]])]
    }

    func matrices(input: [Int]) -> [WeightMatrix] {
        [
            WeightMatrix(name: "weight", shape: [outFeatures, input[0]]),
            WeightMatrix(name: "skip_weight", shape: [outFeatures, input[0]], input: "skip_input")
        ]
    }

    func compile(_ t: LayerTensors, input: [Int]) -> any InferenceLayer {
        let m = matrices(input: input)
        return Compiled(
            main: t.linearOperator(m[0]), skip: t.linearOperator(m[1]), bias: t["bias"].data, activation: activation,
            names: (t.name("weight"), t.name("skip_weight")), counts: (t.counts(m[0]), t.counts(m[1])))
    }

    func trainable(input: [Int], name: String, tensors: LayerTensors?, random: inout SeededRandom) -> any QuernNN.Layer
    {
        let main = Linear(input[0], outFeatures, activation: activation, random: &random, name: name)
        let skip = Linear(input[0], outFeatures, bias: false, random: &random, name: name + ".skip")
        let layer = Branches(
            main: main, skip: Linear(weight: Parameter(name + ".skip_weight", skip.weight.value), bias: nil))
        if let t = tensors {
            layer.main.weight.value = t["weight"]; layer.main.bias!.value = t["bias"];
            layer.skip.weight.value = t["skip_weight"]
        }
        return layer
    }

    final class Branches: QuernNN.Layer {
        let main: Linear
        let skip: Linear
        init(main: Linear, skip: Linear) { (self.main, self.skip) = (main, skip) }
        func forward(_ x: Var, on tape: Tape) -> Var { tape.add(main.forward(x, on: tape), skip.forward(x, on: tape)) }
        var parameters: [Parameter] { main.parameters + skip.parameters }
    }

    struct Compiled: InferenceLayer {
        let main: LinearOperator
        let skip: LinearOperator
        let bias: [Float]
        let activation: Activation
        let names: (String, String)
        let counts: ((weights: Int, zeros: Int), (weights: Int, zeros: Int))

        func forward(_ x: [Float], batch: Int, input: [Int], output: [Int], observe: ((String, [Float]) -> Void)?)
            -> [Float]
        {
            observe?(names.0, x)
            observe?(names.1, x)
            let a = applyLinear(main, x, rows: batch, bias: bias, activation: activation)
            let b = applyLinear(skip, x, rows: batch, bias: [Float](repeating: 0, count: bias.count), activation: .none)
            return zip(a, b).map { $0 + $1 }
        }

        var summary: [MatrixSummary] {
            [
                MatrixSummary(kernel: main.kind, weights: counts.0.weights, zeros: counts.0.zeros, bias: bias.count),
                MatrixSummary(kernel: skip.kind, weights: counts.1.weights, zeros: counts.1.zeros, bias: 0)
            ]
        }
    }
}

@Suite("layers with several weight matrices")
struct LayerMatricesTests {
    let config = MLP.config(
        inputSize: 12, layers: [TwoBranchSpec(outFeatures: 16, activation: .relu), LinearSpec(outFeatures: 3)],
        labels: ["a", "b", "c"])

    func inputs(_ rows: Int) -> Tensor {
        var r = SeededRandom(seed: 4)
        return Tensor(shape: [rows, 12], data: (0..<(rows * 12)).map { _ in r.uniform(2) })
    }

    @Test("inference runs what the training network computes")
    func inferenceMatchesTraining() throws {
        let net = try config.network(tensors: nil, seed: 3)
        let model = try StackModel(config: config, tensors: net.state, normalizer: nil)
        let x = inputs(20)
        let tape = Tape(training: false)
        let slow = tape.value(net.forward(tape.constant(x), on: tape))
        for (a, b) in zip(model.forward(x).data, slow.data) { #expect(abs(a - b) <= 1e-4 * max(1, abs(b))) }
        #expect(
            Set(try config.matrices().map(\.name)) == ["layers.0.weight", "layers.0.skip_weight", "layers.1.weight"])
    }

    @Test("quantize makes every matrix int8, statically calibrated ones with their own input range")
    func quantizeReachesEveryMatrix() throws {
        let net = try config.network(tensors: nil, seed: 5)
        let fp32 = LoadedWeights(tensors: net.state)
        let source = try StackModel(config: config, tensors: fp32.tensors, normalizer: nil)
        let x = inputs(64)
        var observer = RangeObserver(method: .minmax)
        _ = source.forward(x, observe: { observer.observe($0, $1) })
        let matrices = try config.matrices()
        var ranges: [String: QGEMM.InputRange] = [:]
        for m in matrices {
            if let r = observer.range(m.name) { ranges[m.name] = QGEMM.InputRange(lo: r.lo, hi: r.hi) }
        }
        #expect(ranges.count == 3)
        let (quantized, tensors) = Quantizer.quantize(matrices, fp32: fp32, ranges: ranges)
        #expect(Set(quantized.keys) == ["layers.0.weight", "layers.0.skip_weight", "layers.1.weight"])
        #expect(tensors["layers.0.skip_weight_scale"] != nil && tensors["layers.0.skip_input_scale"] != nil)
        let int8 = try StackModel(config: config, tensors: fp32.tensors, quantized: quantized, normalizer: nil)
        let want = source.forward(x).data, got = int8.forward(x).data
        let scale = want.map(abs).max()!
        for (a, b) in zip(got, want) { #expect(abs(a - b) <= 0.05 * scale) }
        let kernels = int8.describe().objectValue?["layers"]?.arrayValue?[0].objectValue?["kernel"]?.arrayValue
        #expect(kernels?.count == 2)

        // The int8 model as quantize publishes it loads back through the same layer kind.
        let dir = try TempDir()
        defer { dir.remove() }
        var published = config
        published.quantization = ["scheme": "static"]
        try published.write(into: dir.path, tensors: tensors, normalizer: nil)
        let loaded = try published.loadTensors(SafetensorsFile(path: dir.path + "/model.safetensors"))
        #expect(Set(loaded.quantized.keys) == Set(quantized.keys))
        #expect(loaded.quantized["layers.0.skip_weight"]?.input == ranges["layers.0.skip_weight"])
    }

    @Test("prune reaches every matrix and keeps the zeros through training steps")
    func pruneReachesEveryMatrix() throws {
        let net = try config.network(tensors: nil, seed: 6)
        var pruner = PruneRun.pruner(net, try config.matrices(), pattern: .unstructured, scope: .layer)
        #expect(pruner.parameters.map(\.name) == ["layers.0.weight", "layers.0.skip_weight", "layers.1.weight"])
        pruner.prune(to: 0.5)
        for s in pruner.sparsity { #expect(abs(s - 0.5) < 0.05) }
        let model = try StackModel(config: config, tensors: net.state, normalizer: nil)
        let layer = try #require(model.describe().objectValue?["layers"]?.arrayValue?[0].objectValue)
        #expect(abs((layer["sparsity"]?.doubleValue ?? 0) - 0.5) < 0.05)
    }
}
