import Foundation
import QuernCore
import QuernKernels
import QuernModels
import QuernTestSupport
import Testing

/// Largest difference allowed between Quern's probabilities and the independent numpy fp32
/// forward pass in `digits-test.expected.jsonl` (Quern accumulates in double, numpy in float).
let probabilityTolerance: Float = 1e-5

@Suite("the mlp family on the digits fixture")
struct DigitsModelTests {
    let modelPath = repoRoot + "/fixtures/models/digits-mlp"

    @Test func loadsTheFixture() throws {
        let model = try stack(modelPath)
        #expect(model.family == "mlp")
        #expect(model.inputSize == 64)
        #expect(model.labels == (0..<10).map(String.init))
        #expect(model.featureNames?.count == 64)
        #expect(model.featureNames?.first == "pixel_0_0")
        #expect(
            ModelRegistry.names == [
                "bert", "camembert", "cnn", "gpt2", "llama", "mistral", "mlp", "qwen2", "roberta", "xlm-roberta"
            ])
        // The digest and size come from the file itself (checked against sha256sum).
        let weights = modelPath + "/model.safetensors"
        let expected = String(decoding: try run(["sha256sum", weights]), as: UTF8.self).prefix(64)
        #expect(model.weights?.sha256 == String(expected))
        #expect(model.weights?.bytes == Int(try #require(Sys.fileStatus(weights)).st_size))
        let description = try #require(model.describe().objectValue)
        let parameters: Int64 = 64 * 64 + 64 + 10 * 64 + 10
        #expect(description["parameters"] == .int(parameters))
        #expect(description["normalizer"] == .bool(true))
        #expect(description["classes"] == .int(10))
    }

    @Test func forwardAndSoftmaxMatchTheReferenceOutputs() throws {
        let model = try stack(modelPath)
        let inputs = try Sys.readFile(repoRoot + "/fixtures/data/digits-test.jsonl").split(separator: 0x0A)
        let expected = try Sys.readFile(repoRoot + "/fixtures/data/digits-test.expected.jsonl").split(separator: 0x0A)
        #expect(inputs.count == 450)
        #expect(expected.count == 450)

        var x: [Float] = []
        var truth: [String] = []
        var ids: [String] = []
        for line in inputs {
            let o = try #require(JSONParser.parse(Array(line)).objectValue)
            let f = try #require(o["features"]?.arrayValue)
            #expect(f.count == 64)
            x += f.map { Float($0.doubleValue!) }
            truth.append(String(o["label"]!.intValue!))
            ids.append(o["id"]!.stringValue!)
        }
        let logits = model.forward(Tensor(shape: [450, 64], data: x))
        #expect(logits.shape == [450, 10])
        let probs = Reference.softmax(logits)

        var worst: Float = 0
        var argmaxMismatches = 0
        var correct = 0
        for (r, line) in expected.enumerated() {
            let o = try #require(JSONParser.parse(Array(line)).objectValue)
            #expect(o["id"]?.stringValue == ids[r])
            let p = try #require(o["probabilities"]?.arrayValue).map { Float($0.doubleValue!) }
            let labelIndex = Int(try #require(o["label_index"]?.intValue))
            let row = Array(probs.row(r))
            for k in 0..<10 { worst = max(worst, abs(row[k] - p[k])) }
            let mine = row.indices.max { row[$0] < row[$1] }!
            if mine != labelIndex { argmaxMismatches += 1 }
            if model.labels[mine] == truth[r] { correct += 1 }
        }
        #expect(worst <= probabilityTolerance, "largest probability difference \(worst)")
        #expect(argmaxMismatches == 0)
        // TRAINING.md: test accuracy 0.9733 (438 of 450).
        #expect(correct == 438)
    }

    @Test func forwardIsRowIndependent() throws {
        let model = try stack(modelPath)
        let a = (0..<64).map { Float($0 % 17) }
        let b = (0..<64).map { Float((63 - $0) % 17) }
        let both = model.forward(Tensor(shape: [2, 64], data: a + b))
        let alone = model.forward(Tensor(shape: [1, 64], data: b))
        #expect(Array(both.row(1)) == alone.data)
    }
}

/// A layer-stack model directory loaded through the registry.
func stack(_ path: String, precision: LinearOperator.Precision = .fp32) throws -> StackModel {
    try #require(try ModelRegistry.load(path, ModelOptions(precision: precision)) as? StackModel)
}

/// Writes a model directory with `config` and the given fp32 tensors.
func makeModel(_ dir: String, config: String, tensors: [String: ([Int], [Float])]) throws {
    try Sys.mkdirs(dir)
    try Sys.writeFileAtomically(dir + "/config.json", Array(config.utf8))
    try Sys.writeFileAtomically(dir + "/model.safetensors", Safetensors.encode(tensors))
}

func filled(_ shape: [Int], _ v: Float = 0.5) -> ([Int], [Float]) {
    (shape, [Float](repeating: v, count: shape.reduce(1, *)))
}

@Suite("strict loading of layer stacks")
struct StrictLoadingTests {
    static let config =
        #"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 4, "activation": "relu"}, {"out_features": 2}]}"#
    static let tensors: [String: ([Int], [Float])] = [
        "layers.0.weight": filled([4, 3]), "layers.0.bias": filled([4]),
        "layers.1.weight": filled([2, 4]), "layers.1.bias": filled([2])
    ]

    func loadError(config: String = config, tensors: [String: ([Int], [Float])] = tensors) throws -> QuernError? {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        try makeModel(dir + "/m", config: config, tensors: tensors)
        return quernError { _ = try ModelRegistry.load(dir + "/m") }
    }

    @Test func theBaseModelLoads() throws {
        #expect(try loadError() == nil)
    }

    @Test func aSmallModelComputesWhatItShould() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        // (x - mean) / scale, then y = W x + b with W = [[1, 0], [1, -1]], b = [1, -1], then tanh.
        let config =
            #"{"model_type": "mlp", "input_size": 2, "layers": [{"out_features": 2, "activation": "tanh"}], "id2label": {"0": "neg", "1": "pos"}}"#
        try makeModel(
            dir + "/m", config: config,
            tensors: [
                "normalizer.mean": ([2], [1, 1]), "normalizer.scale": ([2], [2, 4]),
                "layers.0.weight": ([2, 2], [1, 0, 1, -1]), "layers.0.bias": ([2], [1, -1])
            ])
        let model = try stack(dir + "/m")
        #expect(model.labels == ["neg", "pos"])
        let y = model.forward(Tensor(shape: [2, 2], data: [3, 5, 1, 1]))
        // Row 0: normalized [1, 1] → [2, -1]; row 1: [0, 0] → [1, -1].
        let expected: [Float] = [Foundation.tanh(2), Foundation.tanh(-1), Foundation.tanh(1), Foundation.tanh(-1)]
        for (a, b) in zip(y.data, expected) { #expect(abs(a - b) < 1e-6) }
    }

    @Test(arguments: ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
    func missingTensorIsAMismatchNamingIt(_ name: String) throws {
        var t = Self.tensors
        t[name] = nil
        let e = try #require(try loadError(tensors: t))
        #expect(e.code == .modelMismatch)
        #expect(e.message.contains("\"\(name)\""), "\(e.message)")
        #expect(e.field == "model")
    }

    @Test(arguments: [
        ("layers.0.weight", [3, 4]), ("layers.0.weight", [12]), ("layers.1.bias", [2, 1]), ("layers.1.weight", [4, 2])
    ])
    func wrongShapeIsAMismatchNamingIt(_ name: String, _ shape: [Int]) throws {
        var t = Self.tensors
        t[name] = filled(shape)
        let e = try #require(try loadError(tensors: t))
        #expect(e.code == .modelMismatch)
        #expect(e.message.contains("\"\(name)\""), "\(e.message)")
    }

    @Test(arguments: ["layers.2.weight", "classifier.bias", "normalizer_mean"])
    func extraTensorIsAMismatchNamingIt(_ name: String) throws {
        var t = Self.tensors
        t[name] = filled([1])
        let e = try #require(try loadError(tensors: t))
        #expect(e.code == .modelMismatch)
        #expect(e.message.contains(name), "\(e.message)")
    }

    @Test func halfANormalizerIsAMismatch() throws {
        var t = Self.tensors
        t["normalizer.mean"] = filled([3])
        let e = try #require(try loadError(tensors: t))
        #expect(e.code == .modelMismatch)
        #expect(e.message.contains("normalizer.scale"))
        t["normalizer.scale"] = ([3], [1, 0, 1])
        #expect(try loadError(tensors: t)?.code == .modelInvalid)
        t["normalizer.scale"] = filled([3], 2)
        #expect(try loadError(tensors: t) == nil)
    }

    @Test(arguments: [
        #"{"model_type": "resnet9000", "input_size": 3, "layers": []}"#,
        #"{"model_type": "", "input_size": 3}"#,
        #"{"input_size": 3, "layers": [{"out_features": 2}]}"#,
        #"{"model_type": 7}"#,
        #"not json"#,
        #"{"model_type": "mlp", "layers": [{"out_features": 4}, {"out_features": 2}]}"#,
        #"{"model_type": "mlp", "input_size": "3", "layers": [{"out_features": 4}, {"out_features": 2}]}"#,
        #"{"model_type": "mlp", "input_size": 3, "layers": []}"#,
        #"{"model_type": "mlp", "input_size": 0, "layers": [{"out_features": 4}, {"out_features": 2}]}"#,
        #"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 4, "activation": "swish"}, {"out_features": 2}]}"#,
        #"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 4}, {"out_features": 2}], "id2label": {"0": "a"}}"#,
        #"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 4}, {"out_features": 2}], "feature_names": ["a", "b"]}"#
    ])
    func badConfigsAreModelInvalid(_ config: String) throws {
        let e = try #require(try loadError(config: config))
        #expect(e.code == .modelInvalid, "\(config): \(e)")
        #expect(e.field == "model")
    }

    @Test func unknownModelTypeNamesTheKnownFamilies() throws {
        let e = try #require(try loadError(config: #"{"model_type": "transformer"}"#))
        #expect(e.code == .modelInvalid)
        #expect(e.message.contains("\"transformer\""))
        #expect(e.message.contains("bert, cnn, gpt2, llama, mistral, mlp, qwen2"))
    }

    @Test func regressionModelsHaveNoLabels() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        try makeModel(
            dir + "/m",
            config:
                #"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 4, "activation": "gelu"}, {"out_features": 1}], "problem_type": "regression"}"#,
            tensors: Self.tensors.merging(["layers.1.weight": filled([1, 4]), "layers.1.bias": filled([1])]) { $1 })
        let model = try stack(dir + "/m")
        #expect(model.labels.isEmpty)
    }

    @Test func missingFilesAndDirectories() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let absent = quernError { _ = try ModelRegistry.load(dir + "/absent") }
        #expect(absent?.code == .fileNotFound)
        try Sys.mkdirs(dir + "/only-config")
        try Sys.writeFileAtomically(dir + "/only-config/config.json", Array(Self.config.utf8))
        let e = quernError { _ = try ModelRegistry.load(dir + "/only-config") }
        #expect(e?.code == .modelInvalid, "\(String(describing: e))")
        #expect(e?.message.contains("model.safetensors") == true)
        try Sys.mkdirs(dir + "/only-weights")
        try Sys.writeFileAtomically(dir + "/only-weights/model.safetensors", Safetensors.encode(Self.tensors))
        let onlyWeights = quernError { _ = try ModelRegistry.load(dir + "/only-weights") }
        #expect(onlyWeights?.code == .modelInvalid)
    }
}

/// Sizes read from a model's files are bounded before anything is allocated by them: an
/// absurd config is `model_invalid` naming the key, never a trap or gigabytes first.
@Suite("hostile model files")
struct HostileModelTests {
    static let tensors = StrictLoadingTests.tensors

    func loadError(_ config: String, files: [String: String] = [:], from fixture: String? = nil) throws -> QuernError? {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path + "/m"
        if let fixture {
            try Sys.mkdirs(dir)
            for name in try Sys.listDirectory(fixture) where Sys.isRegularFile(fixture + "/" + name) {
                try Sys.writeFile(dir + "/" + name, Sys.readFile(fixture + "/" + name, limit: 1 << 26))
            }
            if !config.isEmpty { try Sys.writeFile(dir + "/config.json", Array(config.utf8)) }
        } else {
            try makeModel(dir, config: config, tensors: Self.tensors)
        }
        for (name, text) in files { try Sys.writeFile(dir + "/" + name, Array(text.utf8)) }
        return quernError { _ = try ModelRegistry.load(dir, ModelOptions(allowArchitectureOnly: true)) }
    }

    @Test(arguments: [
        (#"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 4611686018427387904}]}"#, "out_features"),
        (#"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 10000000}]}"#, "classes"),
        (#"{"model_type": "mlp", "input_size": 4611686018427387904, "layers": [{"out_features": 2}]}"#, "input sizes"),
        (
            #"{"model_type": "cnn", "input_shape": [1, 8, 8], "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 4611686018427387904}, {"type": "flatten"}, {"type": "linear", "out_features": 2}]}"#,
            "padding"
        ),
        (
            #"{"model_type": "cnn", "input_shape": [16777216, 16777216, 16777216], "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}]}"#,
            "values"
        ),
        (
            #"{"model_type": "cnn", "input_shape": [4096, 8, 8], "layers": [{"type": "conv2d", "out_channels": 16777216, "kernel_size": 8}, {"type": "flatten"}, {"type": "linear", "out_features": 2}]}"#,
            "weights"
        )
    ])
    func absurdLayerStacks(_ config: String, _ needle: String) throws {
        let e = try #require(try loadError(config))
        #expect(e.code == .modelInvalid, "\(e)")
        #expect(e.message.contains(needle), "\(e.message)")
    }

    @Test("absurd bert sizes and malformed tokenizer.json name the file and the key")
    func absurdBert() throws {
        let fixture = repoRoot + "/fixtures/models/tiny-bert-classifier"
        var config = try #require(try JSONParser.parse(Sys.readFile(fixture + "/config.json")).objectValue)
        config["num_hidden_layers"] = 1_000_000_000_000
        let layers = try #require(
            try loadError(String(decoding: JSONWriter.compact(.object(config)), as: UTF8.self), from: fixture))
        #expect(layers.code == .modelInvalid && layers.message.contains("num_hidden_layers"), "\(layers)")

        let tokenizer = String(decoding: try Sys.readFile(fixture + "/tokenizer.json"), as: UTF8.self)
        let cases: [(String, String)] = [
            (String(tokenizer.prefix(200)), "not valid JSON"),
            (tokenizer.replacingOccurrences(of: "\"[UNK]\": 1,", with: "\"[UNK]\": 1099511627776,"), "[UNK]"),
            (tokenizer.replacingOccurrences(of: "\"[UNK]\": 1,", with: "\"[UNK]\": -1,"), "[UNK]"),
            (#"{"model": {"type": "WordPiece", "vocab": ["[UNK]", "a"]}}"#, "model.vocab must be an object")
        ]
        for (text, needle) in cases {
            let e = try #require(try loadError("", files: ["tokenizer.json": text], from: fixture))
            #expect(e.code == .modelInvalid, "\(e)")
            #expect(e.message.contains("tokenizer.json") && e.message.contains(needle), "\(e.message)")
        }
    }

    @Test("a config.json or model.safetensors that is not a regular file is named as what it is")
    func filesThatAreNotFiles() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path + "/m"
        try makeModel(
            dir, config: #"{"model_type": "mlp", "input_size": 3, "layers": [{"out_features": 2}]}"#,
            tensors: Self.tensors)
        try Sys.removeTree(dir + "/model.safetensors")
        try Sys.mkdir(dir + "/model.safetensors")
        let weights = quernError { _ = try ModelRegistry.load(dir) }
        #expect(weights?.code == .modelInvalid)
        #expect(weights?.message.contains("model.safetensors is a directory") == true, "\(String(describing: weights))")
        try Sys.removeTree(dir + "/config.json")
        #expect(mkfifo(dir + "/config.json", 0o644) == 0)
        let config = quernError { _ = try ModelRegistry.load(dir) }
        #expect(config?.message.contains("config.json is a FIFO") == true, "\(String(describing: config))")
    }
}
