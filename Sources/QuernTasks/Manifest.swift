import QuernCore
import QuernData

/// A job manifest, version 1 (DESIGN.md §3), decoded strictly: an unknown key, a wrong
/// type or a bad value is an error naming the dotted field, so `error.json` tells the
/// person exactly which line of their manifest to fix. This is the envelope every task
/// shares (model, input, output, limits); a task's own blocks (`train`, `score`…) are
/// decoded by their types and checked by the task (`JobTask.check`).
public struct Manifest: Sendable {
    /// Weights as stored or converted at load: fp32, int8 (per output channel), or q4
    /// (4-bit groups of 32; a GGUF's own Q4_0/Q4_1/Q4_K as stored).
    public enum Precision: String, Sendable, CaseIterable { case fp32, int8, q4 }
    public enum OutputFormat: String, Sendable, CaseIterable { case jsonl, csv, npy }
    /// The element type of NPY vectors: float32, or int8 with a scale per row.
    /// `output.dtype` of NPY vectors: float32; int8 rows with a scale each (symmetric);
    /// or sentence-transformers' `binary` / `ubinary` (one bit a dimension, set when the
    /// value is positive, packed 8 to a byte first dimension in the high bit as
    /// `numpy.packbits` does; `binary` bytes are stored minus 128 as int8).
    /// With `output.ranges`, `int8` and `uint8` are sentence-transformers' calibrated
    /// scalar quantization instead: per dimension, q = floor((x − min) / step) clipped to
    /// [0, 255] with step = (max − min) / 255; uint8 stores q, int8 q − 128.
    public enum VectorType: String, Sendable, CaseIterable {
        case float32, int8, uint8, binary, ubinary

        /// The NPY element type.
        public var descr: String {
            switch self {
            case .float32: "<f4"
            case .int8, .binary: "|i1"
            case .uint8, .ubinary: "|u1"
            }
        }

        /// NPY columns for vectors of `dimension` values.
        public func columns(_ dimension: Int) -> Int {
            self == .binary || self == .ubinary ? (dimension + 7) / 8 : dimension
        }
    }

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
        /// Read only the records a JSON Lines file lists by `member` and `line` (an
        /// `errors.jsonl.gz` or `unrun.jsonl.gz`, gzipped or not): what `quern retry` sets.
        public var select: String?

        /// Whether records bring a label: a label field, or a format that carries its own.
        public var hasLabels: Bool { labelField != nil || format.carriesLabels }

        /// The `input` block: its format named or inferred from the file name, its fields,
        /// and an image scale only where there are images.
        init(from i: inout StrictObject) throws {
            path = try i.string("path", required: true)!
            members = try i.string("members")
            select = try i.string("select")
            let formats = RecordFormat.allCases.map(\.rawValue).joined(separator: ", ")
            if let name = try i.string("format") {
                guard let f = RecordFormat(rawValue: name) else {
                    throw QuernError(
                        .unsupportedFormat, "input.format \"\(name)\" is not supported; use one of: \(formats)",
                        field: "input.format")
                }
                format = f
            } else if let f = Manifest.inferFormat(members ?? path) {
                format = f
            } else {
                throw QuernError(
                    .missingField,
                    "input.format is missing and cannot be inferred from \"\(members ?? path)\"; set it to one of: \(formats)",
                    field: "input.format")
            }
            idField = try i.string("id_field")
            textField = try i.string("text_field")
            pairField = try i.string("pair_field")
            labelField = try i.string("label_field")
            featuresField = try i.string("features_field")
            featureColumns = try i.stringArray("feature_columns")
            scale = try i.number("scale") ?? 1
            offset = try i.number("offset") ?? 0
            guard scale.isFinite, offset.isFinite, scale != 0 else {
                throw QuernError(
                    .invalidValue, "input.scale must be a non-zero number and input.offset a number",
                    field: "input.scale")
            }
            if (scale != 1 || offset != 0) && ![RecordFormat.idx, .npy, .png].contains(format) {
                throw QuernError(
                    .invalidValue,
                    "input.scale and input.offset apply to image formats (idx, png, npy); \(format.rawValue) features are taken as they are",
                    field: "input.scale")
            }
            try i.finish()
        }
    }

    public struct Output: Sendable {
        public var format: OutputFormat = .jsonl
        /// zlib level: the task's default (`JobTask.defaultCompressionLevel`) unless set.
        public var compressionLevel = 6
        /// Write every class probability, not only the top label and its score.
        public var probabilities = true
        /// `format: npy`: the vectors' element type.
        public var dtype = VectorType.float32
        /// Input fields (JSONL) or columns (CSV) copied into every result line, after the
        /// task's own fields: SageMaker's `JoinSource`, Vertex's `included_fields`.
        public var includeFields: [String] = []
        /// `dtype` int8 / uint8: an NPY file of shape (2, dimension), each dimension's
        /// minimum and maximum (sentence-transformers' `ranges`; `quern ranges` makes one).
        public var ranges: String?

        /// The `output` block; NPY only for tasks whose rows are vectors.
        mutating func decode(_ o: inout StrictObject, task: any JobTask.Type) throws {
            format = try o.enumeration("format", OutputFormat.self) ?? .jsonl
            if let c = try o.string("compression"), c != "gzip" {
                throw QuernError(
                    .invalidValue, "output.compression \"\(c)\" is not supported; results are always gzip",
                    field: "output.compression")
            }
            compressionLevel = try o.int("compression_level", range: 1...9) ?? compressionLevel
            probabilities = try o.bool("probabilities") ?? true
            let type = try o.enumeration("dtype", VectorType.self)
            dtype = type ?? .float32
            ranges = try o.string("ranges")
            if ranges != nil && dtype != .int8 && dtype != .uint8 {
                throw QuernError(
                    .invalidValue, "output.ranges calibrates int8 and uint8 vectors; set output.dtype to one of them",
                    field: "output.ranges")
            }
            if dtype == .uint8 && ranges == nil {
                throw QuernError(
                    .missingField,
                    "output.dtype uint8 needs output.ranges: an NPY of each dimension's minimum and maximum (quern ranges makes one from a float32 embed job's results.npy.gz)",
                    field: "output.ranges")
            }
            includeFields = try o.stringArray("include_fields") ?? []
            for (i, name) in includeFields.enumerated() {
                guard !name.isEmpty, name != "id", !includeFields[..<i].contains(name) else {
                    throw QuernError(
                        .invalidValue,
                        name.isEmpty || name == "id"
                            ? "output.include_fields cannot name \"\(name)\": every result line has its id already"
                            : "output.include_fields names \"\(name)\" twice",
                        field: "output.include_fields")
                }
            }
            try o.finish()
            if format == .npy && !task.writesVectors {
                let vectorTasks = TaskRegistry.tasks.filter { $0.writesVectors }.map { $0.name }.joined(separator: ", ")
                throw QuernError(
                    .invalidValue, "output.format npy holds vectors: it is for task \(vectorTasks); use jsonl or csv",
                    field: "output.format")
            }
            if type != nil && format != .npy {
                throw QuernError(.invalidValue, "output.dtype applies to output.format npy", field: "output.dtype")
            }
        }
    }

    public struct Limits: Sendable {
        public var maxErrors = 100
        public var stream = StreamLimits()
        /// Attempts a job's process may crash (die by a signal, or exit without finishing)
        /// before the job fails with `crashed`.
        public var maxAttempts = 3
        /// The job process's address space, in MiB; over it the job fails with
        /// `memory_limit`. The default leaves a 24 GB machine room for the daemon and a
        /// second job.
        public var maxMemoryMB = 16384
        /// Seconds one run of the job may take; then it is stopped (checkpointed) and fails
        /// with `time_limit`.
        public var maxSeconds = 86400
        /// Times a job goes back to its last checkpoint after a read the system failed for
        /// a reason that may pass (a disk or network error), waiting 1, 2, 4… seconds,
        /// before it fails with `io_error`.
        public var ioRetries = 3

        public init() {}

        /// The `limits` block.
        mutating func decode(_ l: inout StrictObject) throws {
            maxErrors = try l.int("max_errors", range: 0...Int(Int32.max)) ?? 100
            maxAttempts = try l.int("max_attempts", range: 1...100) ?? maxAttempts
            maxMemoryMB = try l.int("max_memory_mb", range: 64...(1 << 24)) ?? maxMemoryMB
            maxSeconds = try l.int("max_seconds", range: 1...(366 * 86400)) ?? maxSeconds
            ioRetries = try l.int("io_retries", range: 0...20) ?? ioRetries
            stream.maxLineBytes = try l.int("max_line_bytes", range: 1024...(1 << 30)) ?? stream.maxLineBytes
            stream.maxInputBytes = try l.int("max_input_bytes", range: 1...Int.max)
            if let r = try l.number("max_expansion_ratio") {
                guard r >= 1 else {
                    throw QuernError(
                        .invalidValue, "limits.max_expansion_ratio must be at least 1",
                        field: "limits.max_expansion_ratio")
                }
                stream.maxExpansionRatio = r
            }
            try l.finish()
        }
    }

    public var version = 1
    public var id: String?
    /// The task, as the registry knows it.
    public var task: any JobTask.Type
    public var model: String?
    public var precision: Precision = .fp32
    public var input: Input
    public var batchSize = 64
    public var output = Output()
    public var limits = Limits()
    /// Text models: tokens per sequence, specials included (default: the model's own,
    /// e.g. sentence_bert_config.json's max_seq_length).
    public var maxLength: Int?
    /// Text encoders: the text put before every input, named from the model's
    /// sentence-transformers prompts (`prompt_name`) or given (`prompt`); without either,
    /// the model's default prompt if it has one.
    public var promptName: String?
    public var prompt: String?
    /// Claim order among pending manifests: higher first, ties in arrival order.
    public var priority = 0
    /// The job's own hooks (run only where the spool's quern.json allows manifest hooks).
    public var hooks: JobHooks?
    /// When the job stops (status `expired`, finished work kept): a time, or a duration
    /// after submission (the manifest file's modification time).
    public var deadline: Deadline?

    public enum Deadline: Sendable, Equatable {
        case at(Double)
        case after(Double)

        /// The moment, for a manifest submitted at `submitted`.
        public func time(submitted: Double) -> Double {
            switch self {
            case .at(let t): t
            case .after(let s): submitted + s
            }
        }
    }
    public static let priorityRange = -1_000_000...1_000_000
    /// The task's blocks that the manifest gave, decoded and checked, by key.
    var blocks: [String: any ManifestBlock]
    /// The manifest as received, for provenance.
    public var raw: JSONObject

    /// The task's block of this type: as the manifest gave it, or its defaults.
    public func block<B: ManifestBlock>(_ type: B.Type) -> B { blocks[B.key] as? B ?? B() }

    public static let idPattern = "[A-Za-z0-9._-]{1,128}, not starting with '.'"

    public static func isValidID(_ id: String) -> Bool {
        guard (1...128).contains(id.utf8.count), !id.hasPrefix(".") else { return false }
        return id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F
                || c == 0x2D
        }
    }

    /// Decodes manifest bytes. Errors carry `field` (dotted) and, for syntax errors, `line`.
    public static func decode(_ bytes: [UInt8]) throws -> Manifest {
        // RFC 8259 lets a parser ignore a byte-order mark; editors on Windows write one.
        let bytes = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
        if String(validating: bytes, as: UTF8.self) == nil {
            // The first byte that does not decode, counting from 1.
            var at = 1
            var decoder = UTF8()
            var input = bytes.makeIterator()
            decoding: while true {
                switch decoder.decode(&input) {
                case .scalarValue(let c): at += UTF8.width(c)
                case .emptyInput, .error: break decoding
                }
            }
            throw QuernError(
                .invalidUTF8,
                "the manifest is not UTF-8 text (byte \(at) is 0x\(String(bytes[at - 1], radix: 16, uppercase: true))); save it as UTF-8",
                line: bytes[..<(at - 1)].filter { $0 == 0x0A }.count + 1)
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch let e as JSONSyntaxError {
            let code: QuernError.Code = e.message.contains("UTF-8") ? .invalidUTF8 : .invalidJSON
            throw QuernError(
                code, "the manifest is not valid JSON: \(e.message) (line \(e.line), column \(e.column))", line: e.line)
        }
        guard let root = value.objectValue else {
            throw QuernError(.invalidType, "the manifest must be a JSON object, not \(value.typeName)")
        }
        var d = StrictObject(root, path: "")
        let version = try d.int("version", required: true)!
        guard version == 1 else {
            throw QuernError(
                .unsupportedVersion, "manifest version \(version) is not supported; this Quern reads version 1",
                field: "version")
        }
        let id = try d.string("id")
        if let id, !isValidID(id) {
            throw QuernError(.invalidID, "id \"\(id)\" is not a valid job id (\(idPattern))", field: "id")
        }
        let name = try d.choice("task", TaskRegistry.names, code: .unsupportedTask, required: true)!
        let task = TaskRegistry.task(named: name)!
        let model = try d.string("model")
        let precision = try d.enumeration("precision", Precision.self) ?? .fp32
        let batchSize = try d.int("batch_size", range: 1...65536) ?? 64

        var i = try d.object("input", required: true)!
        let input = try Input(from: &i)
        var output = Output()
        output.compressionLevel = task.defaultCompressionLevel
        if var o = try d.object("output") { try output.decode(&o, task: task) }
        if !output.includeFields.isEmpty {
            guard input.format == .jsonl || input.format == .csv else {
                throw QuernError(
                    .invalidValue,
                    "output.include_fields copies JSON Lines fields or CSV columns; input.format is \(input.format.rawValue)",
                    field: "output.include_fields")
            }
            guard !task.readsWholeInput else {
                throw QuernError(
                    .invalidValue, "output.include_fields applies to tasks that write a line per record, not \(name)",
                    field: "output.include_fields")
            }
        }
        var limits = Limits()
        if var l = try d.object("limits") { try limits.decode(&l) }
        let blocks = try decodeBlocks(&d, task: task)
        let maxLength = try d.int("max_length", range: 2...65536)
        let promptName = try d.string("prompt_name"), prompt = try d.string("prompt", allowEmpty: true)
        let priority = try d.int("priority", range: priorityRange) ?? 0
        var hooks: JobHooks?
        if var h = try d.object("hooks") { hooks = try JobHooks(from: &h) }
        var deadline: Deadline?
        if let text = try d.string("deadline") {
            if let t = Timestamp.parse(text) {
                deadline = .at(t)
            } else if let s = Timestamp.duration(text) {
                deadline = .after(s)
            } else {
                throw QuernError(
                    .invalidValue,
                    "deadline \"\(text)\" is neither an RFC 3339 time (2026-12-06T10:00:00Z) nor a duration (90m, 24h, 2d)",
                    field: "deadline")
            }
        }
        if promptName != nil && prompt != nil {
            throw QuernError(
                .invalidValue, "give prompt_name (one of the model's prompts) or prompt (the text itself), not both",
                field: "prompt")
        }
        try d.finish()

        var m = Manifest(
            version: 1, id: id, task: task, model: model, precision: precision, input: input, batchSize: batchSize,
            output: output, limits: limits, maxLength: maxLength, blocks: blocks, raw: root)
        m.promptName = promptName
        m.prompt = prompt
        m.priority = priority
        m.hooks = hooks
        m.deadline = deadline
        try task.check(m)
        return m
    }

    /// Every task's blocks are known keys, checked whatever the task; a block with
    /// settings given to a task that does not read it is refused, so a setting never
    /// silently does nothing (an empty one says nothing and is let be).
    static func decodeBlocks(_ d: inout StrictObject, task: any JobTask.Type) throws -> [String: any ManifestBlock] {
        var blocks: [String: any ManifestBlock] = [:]
        for type in TaskRegistry.blockTypes {
            guard var b = try d.object(type.key) else { continue }
            let block = try type.init(from: &b)
            try b.finish()
            let readers = TaskRegistry.tasks.filter { t in t.blocks.contains { $0.key == type.key } }.map { $0.name }
            guard readers.contains(task.name) else {
                if b.object.keys.isEmpty { continue }
                throw QuernError(
                    .invalidValue,
                    "the \(type.key) block applies to task\(readers.count == 1 ? "" : "s") \(readers.joined(separator: ", ")) only",
                    field: type.key)
            }
            blocks[type.key] = block
        }
        return blocks
    }

    /// The record format a file name implies (`x.jsonl.gz` → jsonl), if any.
    public static func inferFormat(_ name: String) -> RecordFormat? {
        var lower = name.lowercased()
        for s in [".gz", ".zst", ".xz", ".bz2"] where lower.hasSuffix(s) { lower.removeLast(s.count) }
        for f in RecordFormat.allCases where lower.hasSuffix("." + f.rawValue) { return f }
        if lower.hasSuffix(".ndjson") { return .jsonl }
        if lower.hasSuffix(".text") { return .txt }
        return nil
    }

    /// Formats that hold texts.
    public static let textFormats: [RecordFormat] = [.jsonl, .csv, .txt]

    /// The manifest with every path it names resolved by `resolve(path, field)`: the
    /// input, the model and the paths in task blocks (`score.queries`); its `raw` JSON
    /// says the same, which is what `quern submit` records.
    public func resolvingPaths(_ resolve: (_ path: String, _ field: String) throws -> String) throws -> Manifest {
        var raw = self.raw
        var i = raw["input"]!.objectValue!
        i["path"] = .string(try resolve(input.path, "input.path"))
        if let select = input.select { i["select"] = .string(try resolve(select, "input.select")) }
        raw["input"] = .object(i)
        if let ranges = output.ranges, var o = raw["output"]?.objectValue {
            o["ranges"] = .string(try resolve(ranges, "output.ranges"))
            raw["output"] = .object(o)
        }
        if let model { raw["model"] = .string(try resolve(model, "model")) }
        for (key, block) in blocks {
            guard var o = raw[key]?.objectValue else { continue }
            for field in type(of: block).pathFields {
                if let path = o[field]?.stringValue { o[field] = .string(try resolve(path, "\(key).\(field)")) }
            }
            raw[key] = .object(o)
        }
        return try Manifest.decode(JSONWriter.pretty(.object(raw)))
    }

    /// A job's `model` (every task names one; `check` says so when missing).
    public func modelField(_ what: String) throws -> String {
        guard let model else {
            throw QuernError(.missingField, "task \(task.name) needs \"model\" (\(what))", field: "model")
        }
        return model
    }

    /// The record decoder settings this job needs: texts (`text_field` defaulting to
    /// "text", and the pair field) or features, with labels when the task asks.
    public func recordSpec(texts: Bool, labels: Bool) -> RecordSpec {
        var s = RecordSpec(
            format: input.format, members: input.members, idField: input.idField,
            textField: input.textField, labelField: input.labelField,
            featuresField: input.featuresField, featureColumns: input.featureColumns)
        s.featureScale = Float(input.scale)
        s.featureOffset = Float(input.offset)
        s.carryFields = output.includeFields
        s.wantsLabel = labels
        if texts {
            s.wantsText = true
            s.textField = input.textField ?? "text"
            s.pairField = input.pairField
        } else {
            s.wantsFeatures = true
        }
        return s
    }
}

/// A task's own top-level block of the manifest (`train`, `quantize`, `prune`, `score`):
/// its keys, their defaults and their checks, in the file of the task that reads it.
public protocol ManifestBlock: Sendable, SendableMetatype {
    /// The manifest key.
    static var key: String { get }
    /// The defaults, when the manifest has no such block.
    init()
    /// Takes the block's keys (the decoder then refuses any other) and checks their values.
    init(from block: inout StrictObject) throws
    /// Keys whose values are paths, resolved like `input.path`.
    static var pathFields: [String] { get }
}

extension ManifestBlock {
    public static var pathFields: [String] { [] }
}

/// Shell commands run when a job ends (the spool's `quern.json`, or a manifest's `hooks`
/// where the spool allows them), with the job's id, final state and directory in the
/// environment (`QUERN_JOB_ID`, `QUERN_JOB_STATE` done or failed, `QUERN_JOB_DIR`,
/// `QUERN_SPOOL`), each stopped after `timeout_seconds`.
public struct JobHooks: Sendable, Equatable {
    public var onDone: String?
    public var onFailed: String?
    public var timeoutSeconds = 60.0

    public init() {}

    /// A `hooks` object.
    public init(from o: inout StrictObject) throws {
        onDone = try o.string("on_done")
        onFailed = try o.string("on_failed")
        timeoutSeconds = try o.number("timeout_seconds") ?? timeoutSeconds
        guard timeoutSeconds > 0, timeoutSeconds <= 86400 else {
            throw QuernError(
                .invalidValue, "hooks.timeout_seconds must be in (0, 86400]", field: "hooks.timeout_seconds")
        }
        try o.finish()
    }

    /// The command for a job that ended done (`succeeded`) or failed.
    public func command(succeeded: Bool) -> String? { succeeded ? onDone : onFailed }
}
