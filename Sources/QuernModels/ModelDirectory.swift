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

/// The `model_type` field every config.json carries, decoded first to pick the family.
struct ModelTypeProbe: Decodable {
    let modelType: String?
    enum CodingKeys: String, CodingKey { case modelType = "model_type" }
}

/// A Hugging-Face-style model directory: `config.json` + `model.safetensors`.
public struct ModelDirectory {
    public let path: String
    public let model: any TabularModel
    public let weightsSHA256: String
    public let weightsBytes: Int

    /// Families by `model_type`; each entry decodes its config and loads its weights.
    static let registry: [String: @Sendable (Data, SafetensorsFile) throws -> any TabularModel] = [
        "mlp": { try MLP(config: $0, weights: $1) },
    ]

    public static var families: [String] { registry.keys.sorted() }

    public static func load(_ path: String) throws -> ModelDirectory {
        let configPath = Path.join(path, "config.json"), weightsPath = Path.join(path, "model.safetensors")
        guard Sys.isDirectory(path) else {
            throw QuernError(.fileNotFound, "model directory \(path) does not exist", field: "model")
        }
        for p in [configPath, weightsPath] where !Sys.isRegularFile(p) {
            throw QuernError(.modelInvalid, "model directory \(path) has no \(Path.basename(p)); a model is config.json + model.safetensors", field: "model")
        }
        let config = Data(try Sys.readFile(configPath))
        let type: String
        do {
            guard let t = try JSONDecoder().decode(ModelTypeProbe.self, from: config).modelType else {
                throw QuernError(.modelInvalid, "\(configPath) has no \"model_type\"", field: "model")
            }
            type = t
        } catch let e as QuernError { throw e } catch {
            throw QuernError(.modelInvalid, "\(configPath) is not valid JSON: \(error)", field: "model")
        }
        guard let make = registry[type] else {
            throw QuernError(.modelInvalid, "model_type \"\(type)\" is not supported; known families: \(families.joined(separator: ", "))", field: "model")
        }
        let weights = try SafetensorsFile(path: weightsPath)
        let model: any TabularModel
        do {
            model = try make(config, weights)
        } catch let e as QuernError {
            var e = e
            e.field = e.field ?? "model"
            throw e
        } catch let e as DecodingError {
            throw QuernError(.modelInvalid, "\(configPath): \(describe(e))", field: "model")
        }
        let digest = try SHA256Stream.file(weightsPath)
        return ModelDirectory(path: path, model: model, weightsSHA256: digest.sha256, weightsBytes: digest.bytes)
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
