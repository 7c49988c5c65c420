import Foundation
import QuernCore
import QuernKernels

/// What every model family can do for the tabular tasks (`predict`, `evaluate`).
public protocol TabularModel: Sendable {
    var family: String { get }
    /// Features each input row must have.
    var inputSize: Int { get }
    /// Class names by output index, for classifiers; empty for regressors.
    var labels: [String] { get }
    var featureNames: [String]? { get }
    /// `[batch, inputSize]` → `[batch, outputs]` (logits for classifiers).
    func forward(_ x: Tensor) -> Tensor
    /// Human-readable summary for `quern inspect`.
    func describe() -> JSONValue
}

/// A Hugging-Face-style model directory: `config.json` + `model.safetensors`.
public struct ModelDirectory {
    public let path: String
    public let config: StackConfig
    public let model: StackModel
    public let weightsSHA256: String
    public let weightsBytes: Int

    /// Families by `model_type`: each decodes its config.
    static let registry: [String: @Sendable ([UInt8]) throws -> StackConfig] = [
        "mlp": MLP.config,
        "cnn": CNN.config,
    ]

    /// Families whose models take text (their own loaders: `BertModel`).
    public static let textFamilies = ["bert"]

    public static var families: [String] { (registry.keys + textFamilies).sorted() }

    /// `model_type` of a model directory's config.json.
    public static func modelType(_ path: String) throws -> String {
        guard Sys.isDirectory(path) else {
            throw QuernError(.fileNotFound, "model directory \(path) does not exist", field: "model")
        }
        let configPath = Path.join(path, "config.json")
        guard Sys.isRegularFile(configPath) else {
            throw QuernError(.modelInvalid, "model directory \(path) has no config.json; a model is config.json + model.safetensors", field: "model")
        }
        do {
            guard let t = try JSONParser.parse(Sys.readFile(configPath)).objectValue?["model_type"]?.stringValue else {
                throw QuernError(.modelInvalid, "\(configPath) has no \"model_type\"", field: "model")
            }
            return t
        } catch let e as QuernError { throw e } catch {
            throw QuernError(.modelInvalid, "\(configPath) is not valid JSON: \(error)", field: "model")
        }
    }

    /// config.json alone: enough to build a network from scratch (a directory without
    /// model.safetensors is an architecture to train).
    public static func readConfig(_ path: String) throws -> StackConfig {
        let type = try modelType(path)
        let bytes = try Sys.readFile(Path.join(path, "config.json"))
        if textFamilies.contains(type) {
            throw QuernError(.modelInvalid, "\(path) is a \(type) text encoder; this takes a tabular or image model (\(registry.keys.sorted().joined(separator: ", ")))", field: "model")
        }
        guard let decode = registry[type] else {
            throw QuernError(.modelInvalid, "model_type \"\(type)\" is not supported; known families: \(families.joined(separator: ", "))", field: "model")
        }
        do {
            return try decode(bytes)
        } catch var e as QuernError {
            e.field = e.field ?? "model"
            throw e
        }
    }

    public static func hasWeights(_ path: String) -> Bool { Sys.isRegularFile(Path.join(path, "model.safetensors")) }

    /// Loads a model for inference; `precision: .int8` quantizes an fp32 model's weights
    /// at load (per output channel), an int8 model runs int8 either way.
    public static func load(_ path: String, precision: LinearOperator.Precision = .fp32) throws -> ModelDirectory {
        let config = try readConfig(path)
        let weightsPath = Path.join(path, "model.safetensors")
        guard Sys.isRegularFile(weightsPath) else {
            throw QuernError(.modelInvalid, "model directory \(path) has no model.safetensors; a model is config.json + model.safetensors", field: "model")
        }
        let weights = try SafetensorsFile(path: weightsPath)
        let model: StackModel
        do {
            model = try StackModel(config: config, weights: weights, precision: config.quantization != nil ? .int8 : precision)
        } catch var e as QuernError {
            e.field = e.field ?? "model"
            throw e
        }
        let digest = try SHA256Stream.file(weightsPath)
        return ModelDirectory(path: path, config: config, model: model, weightsSHA256: digest.sha256, weightsBytes: digest.bytes)
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case .keyNotFound(let k, let c): return "missing key \"\((c.codingPath + [k]).map(\.stringValue).joined(separator: "."))\""
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return "bad value at \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\": \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}
