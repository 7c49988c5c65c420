import QuernCore
import QuernData

/// A job manifest, version 1 (DESIGN.md §3), decoded strictly: an unknown key, a wrong
/// type or a bad value is an error naming the dotted field, so `error.json` tells the
/// person exactly which line of their manifest to fix.
public struct Manifest: Sendable {
    public enum Task: String, Sendable, CaseIterable {
        case predict, embed, score, evaluate, finetune, quantize, prune

        /// finetune, quantize and prune see all their records at once (epochs,
        /// calibration) and re-read them from the start on resume; the others stream
        /// records one window at a time, so their input can be split into shards.
        public var readsWholeInput: Bool { [.finetune, .quantize, .prune].contains(self) }
    }
    public enum Precision: String, Sendable, CaseIterable { case fp32, int8 }
    public enum OutputFormat: String, Sendable, CaseIterable { case jsonl, csv, npy }
    /// The element type of NPY vectors: float32, or int8 with a scale per row.
    public enum VectorType: String, Sendable, CaseIterable { case float32, int8 }

    public struct Input: Sendable {
        public var path: String
        public var members: String?
        public var format: RecordFormat
        public var idField: String?
        public var textField: String?
        /// The second text of each pair (`score` of pairs, cross-encoder `predict`).
        public var pairField: String?
        public var labelField: String?
        public var featuresField: String?
        public var featureColumns: [String]?
        /// Image formats (idx, npy): features become x·scale + offset.
        public var scale: Double = 1
        public var offset: Double = 0
    }

    public struct Output: Sendable {
        public var format: OutputFormat = .jsonl
        /// zlib level; by default 6, but 1 for `embed`: vectors of floats compress
        /// little at any level (level 6 is 4× slower for a file 13 % smaller).
        public var compressionLevel = 6
        /// Write every class probability, not only the top label and its score.
        public var probabilities = true
        /// `format: npy` (embed): the vectors' element type.
        public var dtype = VectorType.float32
    }

    /// The `train` block. Defaults follow common practice for small classifiers: AdamW
    /// at 1e-3 with decay 0.01, cosine schedule, 10 % held out for validation.
    public struct Training: Sendable, Equatable {
        public var epochs = 10
        public var optimizer = "adamw"
        public var learningRate = 1e-3
        public var weightDecay: Double?
        public var momentum = 0.9
        public var batchSize: Int?
        public var validationSplit = 0.1
        public var schedule = "cosine"
        public var warmup = 0.0
        public var clipNorm: Double?
        public var patience: Int?
        public var seed = 0
        /// Standardise inputs with the training data's mean and deviation (new models).
        public var normalize = true
    }

    /// The `quantize` block: dynamic (activations quantized per row at run time) or
    /// static (each layer's input range calibrated on the job's records).
    public struct Quantization: Sendable, Equatable {
        public var scheme = "dynamic"
        public var calibration = "minmax"
        public var percentile = 99.99
        /// Records used for calibration (the first ones of the input).
        public var samples = 2048
    }

    /// The `prune` block.
    public struct Pruning: Sendable, Equatable {
        public var sparsity = 0.8
        public var pattern = "unstructured"
        public var scope = "layer"
        /// `oneshot` prunes once; `cubic` prunes gradually during recovery training.
        public var schedule = "cubic"
        public var recoveryEpochs = 10
    }

    /// The `score` block: each text against a set of queries, best `top_k` kept.
    public struct Scoring: Sendable, Equatable {
        /// A JSONL, CSV or TXT file of query texts (a path, resolved like input.path).
        public var queries: String?
        public var topK = 10
        /// Fields of the query file; default to input.text_field / input.id_field.
        public var textField: String?
        public var idField: String?
    }

    public struct Limits: Sendable {
        public var maxErrors = 100
        public var stream = StreamLimits()
    }

    public var version = 1
    public var id: String?
    public var task: Task
    public var model: String?
    public var precision: Precision = .fp32
    public var input: Input
    public var batchSize = 64
    public var output = Output()
    public var limits = Limits()
    /// Training settings (`finetune`, and recovery training of `prune`).
    public var training = Training()
    public var quantization = Quantization()
    public var pruning = Pruning()
    public var scoring = Scoring()
    /// Text models: tokens per sequence, specials included (default: the model's own,
    /// e.g. sentence_bert_config.json's max_seq_length).
    public var maxLength: Int?
    /// Task-specific blocks, validated for shape; used by the model tasks.
    public var train: JSONObject?
    public var quantize: JSONObject?
    public var prune: JSONObject?
    /// The manifest as received, for provenance.
    public var raw: JSONObject

    public static let idPattern = "[A-Za-z0-9._-]{1,128}, not starting with '.'"

    public static func isValidID(_ id: String) -> Bool {
        guard (1...128).contains(id.utf8.count), !id.hasPrefix(".") else { return false }
        return id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }

    /// Decodes manifest bytes. Errors carry `field` (dotted) and, for syntax errors, `line`.
    public static func decode(_ bytes: [UInt8]) throws -> Manifest {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch let e as JSONSyntaxError {
            let code: QuernError.Code = e.message.contains("UTF-8") ? .invalidUTF8 : .invalidJSON
            throw QuernError(code, "the manifest is not valid JSON: \(e.message) (line \(e.line), column \(e.column))", line: e.line)
        }
        guard let root = value.objectValue else {
            throw QuernError(.invalidType, "the manifest must be a JSON object, not \(value.typeName)")
        }
        var d = StrictObject(root, path: "")
        let version = try d.int("version", required: true)!
        guard version == 1 else {
            throw QuernError(.unsupportedVersion, "manifest version \(version) is not supported; this Quern reads version 1", field: "version")
        }
        let id = try d.string("id")
        if let id, !isValidID(id) {
            throw QuernError(.invalidID, "id \"\(id)\" is not a valid job id (\(idPattern))", field: "id")
        }
        let task = try d.enumeration("task", Task.self, required: true)!
        let model = try d.string("model")
        let precision = try d.enumeration("precision", Precision.self) ?? .fp32
        let batchSize = try d.int("batch_size", range: 1...65536) ?? 64

        var i = try d.object("input", required: true)!
        let path = try i.string("path", required: true)!
        let members = try i.string("members")
        let formatName = try i.string("format")
        let format: RecordFormat
        if let formatName {
            guard let f = RecordFormat(rawValue: formatName) else {
                throw QuernError(.unsupportedFormat, "input.format \"\(formatName)\" is not supported; use one of: \(RecordFormat.allCases.map(\.rawValue).joined(separator: ", "))", field: "input.format")
            }
            format = f
        } else if let f = inferFormat(members ?? path) {
            format = f
        } else {
            throw QuernError(.missingField, "input.format is missing and cannot be inferred from \"\(members ?? path)\"; set it to one of: \(RecordFormat.allCases.map(\.rawValue).joined(separator: ", "))", field: "input.format")
        }
        let input = Input(path: path, members: members, format: format,
                          idField: try i.string("id_field"), textField: try i.string("text_field"),
                          pairField: try i.string("pair_field"), labelField: try i.string("label_field"), featuresField: try i.string("features_field"),
                          featureColumns: try i.stringArray("feature_columns"),
                          scale: try i.number("scale") ?? 1, offset: try i.number("offset") ?? 0)
        guard input.scale.isFinite, input.offset.isFinite, input.scale != 0 else {
            throw QuernError(.invalidValue, "input.scale must be a non-zero number and input.offset a number", field: "input.scale")
        }
        if (input.scale != 1 || input.offset != 0) && ![RecordFormat.idx, .npy, .png].contains(input.format) {
            throw QuernError(.invalidValue, "input.scale and input.offset apply to image formats (idx, png, npy); \(input.format.rawValue) features are taken as they are", field: "input.scale")
        }
        try i.finish()

        var output = Output()
        if task == .embed { output.compressionLevel = 1 }
        if var o = try d.object("output") {
            output.format = try o.enumeration("format", OutputFormat.self) ?? .jsonl
            if let c = try o.string("compression"), c != "gzip" {
                throw QuernError(.invalidValue, "output.compression \"\(c)\" is not supported; results are always gzip", field: "output.compression")
            }
            output.compressionLevel = try o.int("compression_level", range: 1...9) ?? output.compressionLevel
            output.probabilities = try o.bool("probabilities") ?? true
            let dtype = try o.enumeration("dtype", VectorType.self)
            output.dtype = dtype ?? .float32
            try o.finish()
            if output.format == .npy && task != .embed {
                throw QuernError(.invalidValue, "output.format npy holds vectors: it is for task embed; use jsonl or csv", field: "output.format")
            }
            if dtype != nil && output.format != .npy {
                throw QuernError(.invalidValue, "output.dtype applies to output.format npy", field: "output.dtype")
            }
        }
        var limits = Limits()
        if var l = try d.object("limits") {
            limits.maxErrors = try l.int("max_errors", range: 0...Int(Int32.max)) ?? 100
            limits.stream.maxLineBytes = try l.int("max_line_bytes", range: 1024...(1 << 30)) ?? limits.stream.maxLineBytes
            limits.stream.maxInputBytes = try l.int("max_input_bytes", range: 1...Int.max)
            if let r = try l.number("max_expansion_ratio") {
                guard r >= 1 else { throw QuernError(.invalidValue, "limits.max_expansion_ratio must be at least 1", field: "limits.max_expansion_ratio") }
                limits.stream.maxExpansionRatio = r
            }
            try l.finish()
        }
        var training = Training()
        var train: JSONObject?
        if var t = try d.object("train") {
            training.epochs = try t.int("epochs", range: 1...100_000) ?? training.epochs
            if let o = try t.string("optimizer") {
                guard ["sgd", "adam", "adamw"].contains(o) else {
                    throw QuernError(.invalidValue, "train.optimizer \"\(o)\" is not one of: sgd, adam, adamw", field: "train.optimizer")
                }
                training.optimizer = o
            }
            func positive(_ key: String) throws -> Double? {
                guard let v = try t.number(key) else { return nil }
                guard v > 0, v.isFinite else { throw QuernError(.invalidValue, "train.\(key) must be a positive number", field: "train.\(key)") }
                return v
            }
            func fraction(_ key: String) throws -> Double? {
                guard let v = try t.number(key) else { return nil }
                guard v >= 0, v < 1 else { throw QuernError(.invalidValue, "train.\(key) must be in [0, 1)", field: "train.\(key)") }
                return v
            }
            training.learningRate = try positive("learning_rate") ?? training.learningRate
            if let wd = try t.number("weight_decay") {
                guard wd >= 0 else { throw QuernError(.invalidValue, "train.weight_decay must be at least 0", field: "train.weight_decay") }
                training.weightDecay = wd
            }
            training.momentum = try fraction("momentum") ?? training.momentum
            training.batchSize = try t.int("batch_size", range: 1...65536)
            training.validationSplit = try fraction("validation_split") ?? training.validationSplit
            if let s = try t.string("schedule") {
                guard ["constant", "linear", "cosine"].contains(s) else {
                    throw QuernError(.invalidValue, "train.schedule \"\(s)\" is not one of: constant, linear, cosine", field: "train.schedule")
                }
                training.schedule = s
            }
            training.warmup = try fraction("warmup") ?? training.warmup
            training.clipNorm = try positive("clip_norm")
            training.patience = try t.int("patience", range: 1...100_000)
            training.seed = try t.int("seed", range: 0...Int(Int32.max)) ?? 0
            training.normalize = try t.bool("normalize") ?? true
            try t.finish()
            train = t.object
        }
        var quantization = Quantization()
        var quantize: JSONObject?
        if var q = try d.object("quantize") {
            if let scheme = try q.string("scheme") {
                guard ["dynamic", "static"].contains(scheme) else {
                    throw QuernError(.invalidValue, "quantize.scheme \"\(scheme)\" is not one of: dynamic, static", field: "quantize.scheme")
                }
                quantization.scheme = scheme
            }
            if let c = try q.string("calibration") {
                guard ["minmax", "percentile"].contains(c) else {
                    throw QuernError(.invalidValue, "quantize.calibration \"\(c)\" is not one of: minmax, percentile", field: "quantize.calibration")
                }
                quantization.calibration = c
            }
            if let p = try q.number("percentile") {
                guard p > 50, p <= 100 else {
                    throw QuernError(.invalidValue, "quantize.percentile must be in (50, 100], e.g. 99.99", field: "quantize.percentile")
                }
                quantization.percentile = p
            }
            quantization.samples = try q.int("samples", range: 1...10_000_000) ?? quantization.samples
            try q.finish()
            quantize = q.object
        }
        var pruning = Pruning()
        var prune: JSONObject?
        if var p = try d.object("prune") {
            if let v = try p.number("sparsity") {
                guard v >= 0, v < 1 else { throw QuernError(.invalidValue, "prune.sparsity must be in [0, 1), e.g. 0.8", field: "prune.sparsity") }
                pruning.sparsity = v
            }
            func choice(_ key: String, _ allowed: [String]) throws -> String? {
                guard let v = try p.string(key) else { return nil }
                guard allowed.contains(v) else {
                    throw QuernError(.invalidValue, "prune.\(key) \"\(v)\" is not one of: \(allowed.joined(separator: ", "))", field: "prune.\(key)")
                }
                return v
            }
            pruning.pattern = try choice("pattern", ["unstructured", "1x4", "2:4"]) ?? pruning.pattern
            pruning.scope = try choice("scope", ["layer", "global"]) ?? pruning.scope
            pruning.schedule = try choice("schedule", ["oneshot", "cubic"]) ?? pruning.schedule
            pruning.recoveryEpochs = try p.int("recovery_epochs", range: 0...100_000) ?? pruning.recoveryEpochs
            try p.finish()
            prune = p.object
        }
        var scoring = Scoring()
        if var sc = try d.object("score") {
            scoring.queries = try sc.string("queries")
            scoring.topK = try sc.int("top_k", range: 1...10_000) ?? scoring.topK
            scoring.textField = try sc.string("text_field")
            scoring.idField = try sc.string("id_field")
            try sc.finish()
        }
        let maxLength = try d.int("max_length", range: 2...65536)
        try d.finish()

        var m = Manifest(version: 1, id: id, task: task, model: model, precision: precision, input: input,
                         batchSize: batchSize, output: output, limits: limits, training: training,
                         quantization: quantization, pruning: pruning, scoring: scoring, maxLength: maxLength, train: train, quantize: quantize, prune: prune,
                         raw: root)
        try m.checkTask()
        return m
    }

    static func inferFormat(_ name: String) -> RecordFormat? {
        var lower = name.lowercased()
        for s in [".gz", ".zst", ".xz", ".bz2"] where lower.hasSuffix(s) { lower.removeLast(s.count) }
        for f in RecordFormat.allCases where lower.hasSuffix("." + f.rawValue) { return f }
        if lower.hasSuffix(".ndjson") { return .jsonl }
        if lower.hasSuffix(".text") { return .txt }
        return nil
    }

    /// What each task needs from the manifest, checked before anything runs.
    mutating func checkTask() throws {
        switch task {
        case .predict, .evaluate:
            guard model != nil else { throw QuernError(.missingField, "task \(task.rawValue) needs \"model\" (a model directory)", field: "model") }
            if task == .evaluate && input.labelField == nil && input.format != .npy && !input.format.carriesLabels {
                throw QuernError(.missingField, "task evaluate needs input.label_field (the column or field holding the true label)", field: "input.label_field")
            }
        case .finetune:
            guard model != nil else {
                throw QuernError(.missingField, "task finetune needs \"model\": a model directory (config.json alone trains from scratch; with model.safetensors it fine-tunes those weights)", field: "model")
            }
            if input.labelField == nil && !input.format.carriesLabels {
                throw QuernError(.missingField, "task finetune needs input.label_field (the column or field holding the true label)", field: "input.label_field")
            }
            if input.format == .txt {
                throw QuernError(.unsupportedFormat, "task finetune needs labelled feature records (csv, jsonl, npy, idx or png), not txt", field: "input.format")
            }
            if precision == .int8 {
                throw QuernError(.invalidValue, "finetune trains in fp32; quantize the result with a quantize job", field: "precision")
            }
        case .quantize:
            guard model != nil else { throw QuernError(.missingField, "task quantize needs \"model\" (an fp32 model directory)", field: "model") }
            if input.format == .txt {
                throw QuernError(.unsupportedFormat, "task quantize needs feature records (csv, jsonl, npy or idx) to calibrate and measure on", field: "input.format")
            }
        case .prune:
            guard model != nil else { throw QuernError(.missingField, "task prune needs \"model\" (an fp32 model directory)", field: "model") }
            if input.format == .txt {
                throw QuernError(.unsupportedFormat, "task prune needs feature records (csv, jsonl, npy or idx)", field: "input.format")
            }
            if pruning.recoveryEpochs > 0 && input.labelField == nil && !input.format.carriesLabels {
                throw QuernError(.missingField, "prune.recovery_epochs > 0 trains on the records, which needs input.label_field (or set recovery_epochs to 0)", field: "input.label_field")
            }
        case .embed, .score:
            guard model != nil else { throw QuernError(.missingField, "task \(task.rawValue) needs \"model\" (a text encoder directory, e.g. all-MiniLM-L6-v2)", field: "model") }
            guard Self.textFormats.contains(input.format) else {
                throw QuernError(.unsupportedFormat, "task \(task.rawValue) reads texts: input.format must be jsonl, csv or txt, not \(input.format.rawValue)", field: "input.format")
            }
            if task == .score {
                switch (input.pairField, scoring.queries) {
                case (nil, nil):
                    throw QuernError(.missingField, "task score needs input.pair_field (score each text against its pair) or score.queries (each text against a query file)", field: "score.queries")
                case (.some, .some):
                    throw QuernError(.invalidValue, "task score takes input.pair_field or score.queries, not both", field: "score.queries")
                default: break
                }
                if input.pairField != nil && input.format == .txt {
                    throw QuernError(.unsupportedFormat, "pairs need two fields: use jsonl or csv with input.pair_field, not txt", field: "input.format")
                }
            }
        }
        if scoring != Scoring() && task != .score {
            throw QuernError(.invalidValue, "the score block applies to task score only", field: "score")
        }
    }

    static let textFormats: [RecordFormat] = [.jsonl, .csv, .txt]

    /// The record decoder settings this job needs: texts for text models (`text_field`
    /// defaults to "text"), features otherwise.
    public func recordSpec(text: Bool) -> RecordSpec {
        var s = recordSpec
        if text {
            s.wantsText = true
            s.wantsFeatures = false
            s.textField = input.textField ?? "text"
            s.pairField = input.pairField
        }
        return s
    }

    /// The record decoder settings of a tabular job (features).
    public var recordSpec: RecordSpec {
        var s = RecordSpec(format: input.format, members: input.members, idField: input.idField,
                           textField: input.textField, labelField: input.labelField,
                           featuresField: input.featuresField, featureColumns: input.featureColumns)
        s.wantsFeatures = true
        s.featureScale = Float(input.scale)
        s.featureOffset = Float(input.offset)
        // quantize and prune measure accuracy when the records are labelled.
        s.wantsLabel = task == .evaluate || task == .finetune || ((task == .quantize || task == .prune) && input.labelField != nil)
        return s
    }
}

/// Walks one JSON object, taking keys as they are asked for; `finish()` then refuses
/// any key nobody asked for, naming it.
struct StrictObject {
    let object: JSONObject
    let path: String
    var taken: Set<String> = []

    init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func take(_ key: String, required: Bool) throws -> JSONValue? {
        taken.insert(key)
        guard let v = object[key], v != .null else {
            if required { throw QuernError(.missingField, "\"\(field(key))\" is required", field: field(key)) }
            return nil
        }
        return v
    }

    func typeError(_ key: String, _ expected: String, _ got: JSONValue) -> QuernError {
        QuernError(.invalidType, "\"\(field(key))\" must be \(expected), not \(got.typeName)", field: field(key))
    }

    mutating func string(_ key: String, required: Bool = false) throws -> String? {
        guard let v = try take(key, required: required) else { return nil }
        guard let s = v.stringValue else { throw typeError(key, "a string", v) }
        if s.isEmpty { throw QuernError(.invalidValue, "\"\(field(key))\" must not be empty", field: field(key)) }
        return s
    }

    mutating func int(_ key: String, required: Bool = false, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let v = try take(key, required: required) else { return nil }
        guard let i = v.intValue else { throw typeError(key, "an integer", v) }
        if let range, !range.contains(Int(i)) {
            throw QuernError(.invalidValue, "\"\(field(key))\" is \(i); it must be between \(range.lowerBound) and \(range.upperBound)", field: field(key))
        }
        return Int(i)
    }

    mutating func number(_ key: String) throws -> Double? {
        guard let v = try take(key, required: false) else { return nil }
        guard let d = v.doubleValue else { throw typeError(key, "a number", v) }
        return d
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = try take(key, required: false) else { return nil }
        guard let b = v.boolValue else { throw typeError(key, "true or false", v) }
        return b
    }

    mutating func stringArray(_ key: String) throws -> [String]? {
        guard let v = try take(key, required: false) else { return nil }
        guard let a = v.arrayValue, let strings = Optional(a.compactMap(\.stringValue)), strings.count == a.count, !a.isEmpty else {
            throw typeError(key, "a non-empty array of strings", v)
        }
        return strings
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type, required: Bool = false) throws -> E? where E.RawValue == String {
        guard let s = try string(key, required: required) else { return nil }
        guard let e = E(rawValue: s) else {
            let code: QuernError.Code = key == "task" ? .unsupportedTask : .invalidValue
            throw QuernError(code, "\"\(field(key))\" is \"\(s)\"; it must be one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))", field: field(key))
        }
        return e
    }

    mutating func object(_ key: String, required: Bool = false) throws -> StrictObject? {
        guard let v = try take(key, required: required) else { return nil }
        guard let o = v.objectValue else { throw typeError(key, "an object", v) }
        return StrictObject(o, path: field(key))
    }

    /// A block whose keys are known but whose values the task checks later.
    mutating func block(_ key: String, keys: Set<String>) throws -> JSONObject? {
        guard var o = try object(key) else { return nil }
        for k in keys { _ = try o.take(k, required: false) }
        try o.finish()
        return o.object
    }

    func finish() throws {
        for key in object.keys where !taken.contains(key) {
            let known = taken.sorted().joined(separator: ", ")
            throw QuernError(.unknownKey, "unknown key \"\(field(key))\"; known keys here: \(known)", field: field(key))
        }
    }
}

/// Where a manifest's paths may point: the spool and the configured roots. Paths are
/// resolved (symlinks included) before the check, so a link cannot smuggle a path out.
public struct PathPolicy: Sendable {
    public let base: String
    public let roots: [String]

    /// `base` resolves relative paths; `roots` (plus `base`) bound where they may lead.
    public init(base: String, roots: [String]) {
        self.base = (try? Sys.realpath(base)) ?? base
        self.roots = ([base] + roots).map { (try? Sys.realpath($0)) ?? Path.normalize($0) }
    }

    /// Roots from `--root` flags and `QUERN_ROOTS` (colon-separated).
    public static func configuredRoots(_ flags: [String]) -> [String] {
        let env = Sys.environment("QUERN_ROOTS")?.split(separator: ":").map(String.init) ?? []
        return (flags + env).map { Path.absolute($0, relativeTo: Sys.getcwd()) }
    }

    public func resolve(_ path: String, field: String) throws -> String {
        if path.split(separator: "/").contains("..") {
            throw QuernError(.pathEscape, "\"\(path)\" contains '..'; give a path inside the spool or a configured root (--root / QUERN_ROOTS)", field: field)
        }
        let absolute = Path.absolute(path, relativeTo: base)
        let real: String
        do {
            real = try Sys.realpath(absolute)
        } catch {
            let hint = path.hasPrefix("/") ? "" : " (a relative path resolves against \(base); `quern submit` records paths absolute)"
            throw QuernError(.fileNotFound, "\(field) \(absolute) does not exist\(hint)", field: field)
        }
        guard roots.contains(where: { Path.isInside(real, $0) }) else {
            throw QuernError(.pathEscape, "\(absolute) is outside the spool and the configured roots (\(roots.joined(separator: ", "))); add its directory with --root or QUERN_ROOTS", field: field)
        }
        return real
    }
}
