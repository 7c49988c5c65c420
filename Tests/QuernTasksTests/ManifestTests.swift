import QuernCore
import QuernData
import QuernTestSupport
import Testing

@testable import QuernTasks

/// A manifest that decodes, as a JSON object to change one thing at a time.
let baseManifest: JSONObject = [
    "version": 1, "id": "job-1", "task": "predict", "model": "models/m",
    "input": ["path": "data/x.csv", "id_field": "id"]
]

func manifest(_ edit: (inout JSONObject) -> Void) -> [UInt8] {
    var o = baseManifest
    edit(&o)
    return JSONWriter.pretty(.object(o))
}

func setInput(_ o: inout JSONObject, _ key: String, _ value: JSONValue?) {
    var i = o["input"]!.objectValue!
    i[key] = value
    o["input"] = .object(i)
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self.init(elements) }
}

struct BadManifest: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let code: QuernError.Code
    let field: String?
    var testDescription: String { name }

    init(_ name: String, _ code: QuernError.Code, _ field: String?, _ edit: (inout JSONObject) -> Void) {
        self.name = name
        self.bytes = manifest(edit)
        self.code = code
        self.field = field
    }

    init(_ name: String, _ code: QuernError.Code, _ field: String?, text: String) {
        self.name = name
        self.bytes = Array(text.utf8)
        self.code = code
        self.field = field
    }
}

@Suite("Manifest.decode")
struct ManifestTests {
    @Test func theBaseManifestDecodesWithDefaults() throws {
        let m = try Manifest.decode(manifest { _ in })
        #expect(m.version == 1)
        #expect(m.id == "job-1")
        #expect(m.task.name == "predict")
        #expect(m.model == "models/m")
        #expect(m.precision == .fp32)
        #expect(m.input.path == "data/x.csv")
        #expect(m.input.format == .csv)
        #expect(m.input.idField == "id")
        #expect(m.batchSize == 64)
        #expect(m.output.format == .jsonl)
        #expect(m.output.compressionLevel == 6)
        #expect(m.output.probabilities)
        #expect(m.limits.maxErrors == 100)
        #expect(m.limits.stream.maxLineBytes == 16 << 20)
        #expect(m.limits.stream.maxInputBytes == nil)
        #expect(m.limits.stream.maxExpansionRatio == 200)
        #expect(m.raw == baseManifest)
        let s = m.recordSpec(texts: false, labels: false)
        #expect(s.wantsFeatures && !s.wantsText)
        #expect(!s.wantsLabel)
        #expect(s.idField == "id")
        let t = m.recordSpec(texts: true, labels: true)
        #expect(t.wantsText && !t.wantsFeatures && t.wantsLabel)
        #expect(t.textField == "text", "text_field defaults to \"text\"")
    }

    @Test func everyFieldIsRead() throws {
        let m = try Manifest.decode(
            manifest { o in
                o["task"] = "evaluate"
                o["batch_size"] = 128
                o["precision"] = "fp32"
                o["input"] = [
                    "path": "d.tar.gz", "members": "*.jsonl", "format": "jsonl", "id_field": "key",
                    "label_field": "y", "features_field": "x", "feature_columns": ["a", "b"], "text_field": "t"
                ]
                o["output"] = ["format": "csv", "compression": "gzip", "compression_level": 9, "probabilities": false]
                o["limits"] = [
                    "max_errors": 0, "max_line_bytes": 4096, "max_input_bytes": 1_000_000, "max_expansion_ratio": 50.5
                ]
            })
        #expect(m.task.name == "evaluate")
        #expect(m.batchSize == 128)
        #expect(m.input.members == "*.jsonl")
        #expect(m.input.labelField == "y")
        #expect(m.input.featuresField == "x")
        #expect(m.input.featureColumns == ["a", "b"])
        #expect(m.input.textField == "t")
        #expect(m.output.format == .csv)
        #expect(m.output.compressionLevel == 9)
        #expect(!m.output.probabilities)
        #expect(m.limits.maxErrors == 0)
        #expect(m.limits.stream.maxLineBytes == 4096)
        #expect(m.limits.stream.maxInputBytes == 1_000_000)
        #expect(m.limits.stream.maxExpansionRatio == 50.5)
        #expect(m.recordSpec(texts: false, labels: true).featureColumns == ["a", "b"])
    }

    @Test func aTaskReadsItsOwnBlocks() throws {
        let m = try Manifest.decode(
            manifest { o in
                o["task"] = "prune"
                setInput(&o, "label_field", "y")
                o["train"] = ["epochs": 3, "optimizer": "adam", "patience": 2]
                o["prune"] = ["sparsity": 0.5, "pattern": "2:4"]
            })
        #expect(m.block(TrainingBlock.self).epochs == 3)
        #expect(m.block(TrainingBlock.self).patience == 2)
        #expect(m.block(PruneTask.Pruning.self).pattern == "2:4")
        #expect(m.block(PruneTask.Pruning.self).recoveryEpochs == 10, "defaults for keys not given")
        #expect(
            m.block(QuantizeTask.Quantization.self) == QuantizeTask.Quantization(), "defaults for a block not given")
        let options = m.block(TrainingBlock.self).options(epochs: 3, batchSize: 64)
        #expect(options.optimizer == .adam && options.weightDecay == 0 && options.batchSize == 64)
    }

    @Test func everyTaskIsRegisteredOnceByName() {
        #expect(
            TaskRegistry.names == ["predict", "embed", "score", "evaluate", "generate", "finetune", "quantize", "prune"]
        )
        for name in TaskRegistry.names { #expect(TaskRegistry.task(named: name)?.name == name) }
        #expect(TaskRegistry.task(named: "train") == nil)
    }

    static let bad: [BadManifest] = [
        BadManifest("unknown top-level key", .unknownKey, "colour") { $0["colour"] = "blue" },
        BadManifest("misspelt input key", .unknownKey, "input.text_feild") { setInput(&$0, "text_feild", "text") },
        BadManifest("misspelt output key", .unknownKey, "output.compresion") { $0["output"] = ["compresion": "gzip"] },
        BadManifest("misspelt limits key", .unknownKey, "limits.max_errrors") { $0["limits"] = ["max_errrors": 3] },
        BadManifest("unknown key in a task block", .unknownKey, "train.lr") { $0["train"] = ["epochs": 1, "lr": 0.1] },
        BadManifest("batch_size as a string", .invalidType, "batch_size") { $0["batch_size"] = "64" },
        BadManifest("batch_size as a float", .invalidType, "batch_size") { $0["batch_size"] = 64.5 },
        BadManifest("version as a string", .invalidType, "version") { $0["version"] = "1" },
        BadManifest("input as a string", .invalidType, "input") { $0["input"] = "data/x.csv" },
        BadManifest("input.path as a number", .invalidType, "input.path") { setInput(&$0, "path", 5) },
        BadManifest("feature_columns with a number", .invalidType, "input.feature_columns") {
            setInput(&$0, "feature_columns", ["a", 1])
        },
        BadManifest("feature_columns empty", .invalidType, "input.feature_columns") {
            setInput(&$0, "feature_columns", [])
        },
        BadManifest("probabilities as a string", .invalidType, "output.probabilities") {
            $0["output"] = ["probabilities": "yes"]
        },
        BadManifest("id as a number", .invalidType, "id") { $0["id"] = 7 },
        BadManifest("task missing", .missingField, "task") { $0["task"] = nil },
        BadManifest("task null", .missingField, "task") { $0["task"] = .null },
        BadManifest("version missing", .missingField, "version") { $0["version"] = nil },
        BadManifest("input missing", .missingField, "input") { $0["input"] = nil },
        BadManifest("input.path missing", .missingField, "input.path") { setInput(&$0, "path", nil) },
        BadManifest("model missing for predict", .missingField, "model") { $0["model"] = nil },
        BadManifest("evaluate without label_field", .missingField, "input.label_field") { $0["task"] = "evaluate" },
        BadManifest("format not inferable", .missingField, "input.format") { setInput(&$0, "path", "data/x.bin") },
        BadManifest("archive without members or format", .missingField, "input.format") {
            setInput(&$0, "path", "data/x.tar.gz")
        },
        BadManifest("version 2", .unsupportedVersion, "version") { $0["version"] = 2 },
        BadManifest("version 0", .unsupportedVersion, "version") { $0["version"] = 0 },
        BadManifest("unknown task", .unsupportedTask, "task") { $0["task"] = "train" },
        BadManifest("embed on npy records", .unsupportedFormat, "input.format") {
            $0["task"] = "embed"; setInput(&$0, "format", "npy")
        },
        BadManifest("id with a slash", .invalidID, "id") { $0["id"] = "../etc" },
        BadManifest("id starting with a dot", .invalidID, "id") { $0["id"] = ".hidden" },
        BadManifest("id with a space", .invalidID, "id") { $0["id"] = "my job" },
        BadManifest("id too long", .invalidID, "id") { $0["id"] = .string(String(repeating: "a", count: 129)) },
        BadManifest("id not ASCII", .invalidID, "id") { $0["id"] = "jöb" },
        BadManifest("empty id", .invalidValue, "id") { $0["id"] = "" },
        BadManifest("batch_size 0", .invalidValue, "batch_size") { $0["batch_size"] = 0 },
        BadManifest("compression_level 10", .invalidValue, "output.compression_level") {
            $0["output"] = ["compression_level": 10]
        },
        BadManifest("compression zstd", .invalidValue, "output.compression") { $0["output"] = ["compression": "zstd"] },
        BadManifest("output format parquet", .invalidValue, "output.format") { $0["output"] = ["format": "parquet"] },
        BadManifest("precision fp16", .invalidValue, "precision") { $0["precision"] = "fp16" },
        BadManifest("finetune without labels", .missingField, "input.label_field") { $0["task"] = "finetune" },
        BadManifest("score without pairs or queries", .missingField, "score.queries") { $0["task"] = "score" },
        BadManifest("score with pairs and queries", .invalidValue, "score.queries") {
            $0["task"] = "score"; setInput(&$0, "pair_field", "b"); $0["score"] = ["queries": "q.jsonl"]
        },
        BadManifest("score block on predict", .invalidValue, "score") { $0["score"] = ["top_k": 3] },
        BadManifest("train block on evaluate", .invalidValue, "train") {
            $0["task"] = "evaluate"; setInput(&$0, "label_field", "y"); $0["train"] = ["epochs": 3]
        },
        BadManifest("patience 0", .invalidValue, "train.patience") { $0["train"] = ["patience": 0] },
        BadManifest("score top_k 0", .invalidValue, "score.top_k") {
            $0["task"] = "score"; $0["score"] = ["queries": "q.jsonl", "top_k": 0]
        },
        BadManifest("max_length 1", .invalidValue, "max_length") { $0["max_length"] = 1 },
        BadManifest("prune sparsity 1", .invalidValue, "prune.sparsity") {
            $0["task"] = "prune"; $0["prune"] = ["sparsity": 1.0]
        },
        BadManifest("quantize scheme unknown", .invalidValue, "quantize.scheme") { $0["quantize"] = ["scheme": "fp8"] },
        BadManifest("smoothing above 1", .invalidValue, "quantize.smoothing") {
            $0["quantize"] = ["scheme": "static", "smoothing": 1.5]
        },
        BadManifest("smoothing with dynamic ranges", .invalidValue, "quantize.smoothing") {
            $0["quantize"] = ["smoothing": 0.5]
        },
        BadManifest("train optimizer unknown", .invalidValue, "train.optimizer") {
            $0["train"] = ["optimizer": "lion"]
        },
        BadManifest("scale on csv", .invalidValue, "input.scale") { setInput(&$0, "scale", 0.5) },
        BadManifest("finetune on txt", .unsupportedFormat, "input.format") {
            $0["task"] = "finetune"; setInput(&$0, "format", "txt"); setInput(&$0, "label_field", "label")
        },
        BadManifest("max_line_bytes too small", .invalidValue, "limits.max_line_bytes") {
            $0["limits"] = ["max_line_bytes": 10]
        },
        BadManifest("expansion ratio below 1", .invalidValue, "limits.max_expansion_ratio") {
            $0["limits"] = ["max_expansion_ratio": 0.5]
        },
        BadManifest("empty members glob", .invalidValue, "input.members") { setInput(&$0, "members", "") },
        BadManifest("input format parquet", .unsupportedFormat, "input.format") { setInput(&$0, "format", "parquet") },
        BadManifest("npy output for predict", .invalidValue, "output.format") { $0["output"] = ["format": "npy"] },
        BadManifest("dtype without npy", .invalidValue, "output.dtype") {
            $0["task"] = "embed"; $0["output"] = ["dtype": "int8"]
        },
        BadManifest("deadline neither a time nor a duration", .invalidValue, "deadline") {
            $0["deadline"] = "tomorrow"
        },
        BadManifest("deadline of zero", .invalidValue, "deadline") { $0["deadline"] = "0h" },
        BadManifest("prompt and prompt_name", .invalidValue, "prompt") {
            $0["task"] = "embed"; $0["prompt"] = "query: "; $0["prompt_name"] = "query"
        },
        BadManifest("chunk overlap over half", .invalidValue, "embed.chunk.overlap") {
            $0["task"] = "embed"; $0["embed"] = ["chunk": ["tokens": 16, "overlap": 9]]
        },
        BadManifest("uint8 without ranges", .missingField, "output.ranges") {
            $0["task"] = "embed"; $0["output"] = ["format": "npy", "dtype": "uint8"]
        },
        BadManifest("ranges for float32", .invalidValue, "output.ranges") {
            $0["task"] = "embed"; $0["output"] = ["format": "npy", "ranges": "r.npy"]
        },
        BadManifest("include_fields naming id", .invalidValue, "output.include_fields") {
            $0["output"] = ["include_fields": ["title", "id"]]
        },
        BadManifest("include_fields twice", .invalidValue, "output.include_fields") {
            $0["output"] = ["include_fields": ["title", "title"]]
        },
        BadManifest("include_fields empty", .invalidType, "output.include_fields") {
            $0["output"] = ["include_fields": []]
        },
        BadManifest("include_fields on txt", .invalidValue, "output.include_fields") {
            $0["task"] = "embed"; setInput(&$0, "format", "txt"); $0["output"] = ["include_fields": ["a"]]
        },
        BadManifest("include_fields on a whole-input task", .invalidValue, "output.include_fields") {
            $0["task"] = "finetune"; $0["output"] = ["include_fields": ["a"]]
        },
        BadManifest("not JSON", .invalidJSON, nil, text: "{\n  \"version\": 1,\n  \"task\": predict\n}"),
        BadManifest("trailing comma", .invalidJSON, nil, text: "{\"version\": 1,}"),
        BadManifest("not an object", .invalidType, nil, text: "[1, 2]")
    ]

    @Test(arguments: bad)
    func badManifestsAreRefusedNamingTheField(_ c: BadManifest) {
        let e = quernError { _ = try Manifest.decode(c.bytes) }
        #expect(e?.code == c.code, "\(c.name): \(String(describing: e))")
        #expect(e?.field == c.field, "\(c.name): \(String(describing: e))")
        #expect(e?.message.isEmpty == false)
    }

    @Test
    func aManifestMayStartWithWhitespace() throws {
        let m = try Manifest.decode(Array("\n  ".utf8) + manifest { _ in })
        #expect(m.id == "job-1")
    }

    @Test func unknownKeysAreNamedInTheMessage() {
        let e = quernError { _ = try Manifest.decode(manifest { setInput(&$0, "text_feild", "text") }) }
        #expect(e?.message.contains("\"input.text_feild\"") == true)
        #expect(e?.message.contains("text_field") == true, "the message lists the known keys")
    }

    @Test func syntaxErrorsCarryTheLine() {
        let e = quernError { _ = try Manifest.decode(Array("{\n  \"version\": 1,\n  \"task\": predict\n}".utf8)) }
        #expect(e?.line == 3)
        #expect(e?.message.contains("line 3") == true)
    }

    @Test func invalidUTF8InAString() {
        let bytes = Array("{\"version\": 1, \"id\": \"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        let e = quernError { _ = try Manifest.decode(bytes) }
        #expect(e?.code == .invalidUTF8)
    }

    @Test("bytes that are not UTF-8 are named by offset and line; a byte-order mark is ignored")
    func encoding() throws {
        let latin1 = Array("{\n\"version\": 1, \"id\": \"caf".utf8) + [0xE9] + Array("\"}".utf8)
        let e = quernError { _ = try Manifest.decode(latin1) }
        #expect(e?.code == .invalidUTF8)
        #expect(e?.message.contains("byte 27 is 0xE9") == true, "\(String(describing: e))")
        #expect(e?.line == 2)
        let m = try Manifest.decode([0xEF, 0xBB, 0xBF] + manifest { _ in })
        #expect(m.id == "job-1")
    }

    @Test(
        arguments: [
            ("data/x.jsonl", nil, RecordFormat.jsonl), ("x.csv.gz", nil, .csv), ("x.CSV", nil, .csv),
            ("x.ndjson", nil, .jsonl),
            ("x.npy.zst", nil, .npy), ("x.jsonl.xz", nil, .jsonl), ("x.tar.gz", "*.npy", .npy),
            ("x.zip", "part-*.csv", .csv),
            ("x.tar", "*.jsonl.gz", .jsonl)
        ] as [(String, String?, RecordFormat)])
    func formatIsInferredFromTheExtension(_ path: String, _ members: String?, _ format: RecordFormat) throws {
        let m = try Manifest.decode(
            manifest { o in
                setInput(&o, "path", .string(path))
                if let members { setInput(&o, "members", .string(members)) }
            })
        #expect(m.input.format == format)
    }

    @Test func anExplicitFormatWinsOverTheExtension() throws {
        let m = try Manifest.decode(manifest { setInput(&$0, "format", "jsonl") })
        #expect(m.input.format == .jsonl)
    }

    @Test func validIDs() {
        #expect(Manifest.isValidID("a"))
        #expect(Manifest.isValidID("Job_1.2-x"))
        #expect(Manifest.isValidID(String(repeating: "z", count: 128)))
        #expect(!Manifest.isValidID(""))
        #expect(!Manifest.isValidID("."))
        #expect(!Manifest.isValidID("a/b"))
        #expect(!Manifest.isValidID("a b"))
    }
}
