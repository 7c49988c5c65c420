import QuernCore
import QuernKernels

/// A model family: one file that decodes its config.json, maps its checkpoint's tensor
/// names, loads strictly (`StrictWeights`) and returns a `Model` with the capabilities
/// it has. Registered with one line in `ModelRegistry.families`.
public protocol ModelFamily: SendableMetatype {
    /// config.json's `model_type`.
    static var modelType: String { get }
    /// Other `model_type`s whose checkpoints this family loads (configs of the same
    /// architecture under another name).
    static var aliases: [String] { get }
    /// The capability protocols its models can have (`TextEncoder.self`…), so an error
    /// can name the families that would do.
    static var provides: [Any.Type] { get }
    static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model
}

extension ModelFamily {
    public static var aliases: [String] { [] }
}

/// A family that also loads GGUF files (llama.cpp's format), by their
/// `general.architecture`.
public protocol GGUFModelFamily: ModelFamily {
    static func load(gguf: GGUFFile, options: ModelOptions) throws -> any Model
}

/// How a job wants a model loaded.
public struct ModelOptions: Sendable {
    /// `int8` quantizes an fp32 model's weights at load (per output channel); an int8
    /// model runs int8 either way.
    public var precision: LinearOperator.Precision
    /// Text models: tokens per sequence, specials included (nil: the model's own).
    public var maxLength: Int?
    /// Accept a directory without model.safetensors: an architecture to train from
    /// scratch (families that cannot be built from config.json alone still refuse it).
    public var allowArchitectureOnly: Bool

    public init(precision: LinearOperator.Precision = .fp32, maxLength: Int? = nil, allowArchitectureOnly: Bool = false)
    {
        self.precision = precision
        self.maxLength = maxLength
        self.allowArchitectureOnly = allowArchitectureOnly
    }
}

/// What a family loads from: a model directory (Hugging Face layout) and its
/// config.json, parsed. Families decode their config first and open the weights after,
/// so a broken config is reported before a missing or broken weights file.
public struct ModelFiles {
    public let path: String
    public let configBytes: [UInt8]
    public let config: JSONObject

    public static let weightsName = "model.safetensors"
    public var configPath: String { Path.join(path, "config.json") }
    public var weightsPath: String { Path.join(path, Self.weightsName) }
    public var hasWeights: Bool { Sys.isRegularFile(weightsPath) }

    /// The weights (mapped, header checked) and their digest, or the error every family
    /// gives when a directory has none.
    public func weights() throws -> (SafetensorsFile, WeightsDigest) {
        if !hasWeights, let st = Sys.fileStatus(weightsPath) {
            throw QuernError(
                .modelInvalid, "\(weightsPath) is \(Sys.kind(st)), not a regular file", field: "model")
        }
        guard hasWeights else {
            throw QuernError(
                .modelInvalid,
                "model directory \(path) has no \(Self.weightsName); a model is config.json + \(Self.weightsName)",
                field: "model")
        }
        let file = try SafetensorsFile(path: weightsPath)
        let digest = try SHA256Stream.file(weightsPath)
        return (file, WeightsDigest(sha256: digest.sha256, bytes: digest.bytes))
    }

    /// Another JSON file of the directory (nil when absent), e.g. modules.json.
    public func json(_ name: String) throws -> JSONValue? {
        let file = Path.join(path, name)
        guard Sys.isRegularFile(file) else { return nil }
        do {
            return try JSONParser.parse(Sys.readFile(file))
        } catch let e as JSONSyntaxError {
            throw QuernError(.modelInvalid, "\(path): \(name) is not valid JSON: \(e)", field: "model")
        }
    }
}

/// Every model family Quern loads, by config.json's `model_type`: adding a family is
/// one file and one line here.
public enum ModelRegistry {
    public static let families: [any ModelFamily.Type] = [
        MLP.self,
        CNN.self,
        Bert.self,
        Roberta.self,
        Llama.self,
        GPT2.self
    ]

    public static var names: [String] { families.flatMap { [$0.modelType] + $0.aliases }.sorted() }

    /// The families whose models can have `capability`.
    public static func families<C>(providing capability: C.Type) -> [String] {
        families.filter { f in f.provides.contains { ObjectIdentifier($0) == ObjectIdentifier(capability) } }.map {
            $0.modelType
        }
    }

    public static func family(_ modelType: String) -> (any ModelFamily.Type)? {
        families.first { $0.modelType == modelType || $0.aliases.contains(modelType) }
    }

    static func config(_ path: String) throws -> ([UInt8], JSONObject) {
        guard Sys.isDirectory(path) else {
            if let st = Sys.fileStatus(path) {
                throw QuernError(
                    .modelInvalid,
                    "model \(path) is \(Sys.kind(st)), not a model directory (config.json + model.safetensors)",
                    field: "model")
            }
            throw QuernError(.fileNotFound, "model directory \(path) does not exist", field: "model")
        }
        let configPath = Path.join(path, "config.json")
        if !Sys.isRegularFile(configPath), let st = Sys.fileStatus(configPath) {
            throw QuernError(
                .modelInvalid, "\(configPath) is \(Sys.kind(st)), not a regular file", field: "model")
        }
        guard Sys.isRegularFile(configPath) else {
            throw QuernError(
                .modelInvalid, "model directory \(path) has no config.json; a model is config.json + model.safetensors",
                field: "model")
        }
        let bytes = try Sys.readFile(configPath)
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw QuernError(.modelInvalid, "\(configPath) is not valid JSON: \(error)", field: "model")
        }
        guard let o = value.objectValue, o["model_type"]?.stringValue != nil else {
            throw QuernError(.modelInvalid, "\(configPath) has no \"model_type\"", field: "model")
        }
        return (bytes, o)
    }

    /// Whether `path` is a GGUF file (its first four bytes say so).
    static func isGGUF(_ path: String) -> Bool {
        Sys.isRegularFile(path) && Sys.readPrefix(path, count: 4) == Array("GGUF".utf8)
    }

    /// Families that read GGUF files, by the `general.architecture` they read.
    public static let ggufFamilies: [String: any GGUFModelFamily.Type] = [Llama.modelType: Llama.self]

    /// A GGUF file through the family of its `general.architecture`.
    static func loadGGUF(_ path: String, _ options: ModelOptions) throws -> any Model {
        let file = try GGUFFile(path: path)
        let architecture = try file.string("general.architecture")
        guard let family = ggufFamilies[architecture] else {
            let known = ggufFamilies.keys.sorted().joined(separator: ", ")
            throw QuernError(
                .modelInvalid,
                "\(path): GGUF architecture \"\(architecture)\" is not supported; Quern reads GGUF files of: \(known)",
                field: "model")
        }
        return try family.load(gguf: file, options: options)
    }

    /// Loads a model directory (or a GGUF file) through its family. Errors name the model
    /// field, so a failed job's error.json points at the manifest's `model`.
    public static func load(_ path: String, _ options: ModelOptions = ModelOptions()) throws -> any Model {
        if isGGUF(path) {
            do {
                return try loadGGUF(path, options)
            } catch var e as QuernError {
                e.field = e.field ?? "model"
                throw e
            }
        }
        let (bytes, config) = try config(path)
        let type = config["model_type"]!.stringValue!
        guard let family = family(type) else {
            throw QuernError(
                .modelInvalid,
                "model_type \"\(type)\" is not supported; known families: \(names.joined(separator: ", "))",
                field: "model")
        }
        do {
            return try family.load(ModelFiles(path: path, configBytes: bytes, config: config), options: options)
        } catch var e as QuernError {
            e.field = e.field ?? "model"
            throw e
        }
    }
}
