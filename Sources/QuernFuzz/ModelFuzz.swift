import QuernCore
import QuernKernels
import QuernModels

#if canImport(Glibc)
    import Glibc
#endif

/// What a model directory brings: config.json of every family (each paired with the
/// project's fixture weights, so loading gets as far as it can), the safetensors header
/// and weights, GGUF files, tokenizer.json (WordPiece here, BPE in BPEFuzz.swift, Unigram in UnigramFuzz.swift) and
/// vocab.txt, the texts a tokenizer is given, and the chat template of
/// tokenizer_config.json or a GGUF.
enum ModelFuzz {
    static let targets = [
        FuzzTarget(name: "config", input: "a model's config.json (any model_type)", run: config),
        FuzzTarget(name: "safetensors", input: "a model.safetensors file", run: safetensors),
        FuzzTarget(name: "gguf", input: "a GGUF model file", run: gguf),
        FuzzTarget(name: "tokenizer", input: "a tokenizer.json", run: tokenizerJSON),
        FuzzTarget(name: "vocab", input: "a vocab.txt", run: vocabTXT),
        FuzzTarget(name: "text", input: "a record's text, tokenized by the fixture BERT tokenizer", run: text),
        FuzzTarget(
            name: "chattemplate", input: "a chat template (Jinja2); after a NUL byte, the messages as a JSON array",
            run: chatTemplate),
        FuzzTarget(name: "bpe", input: "a byte-level BPE tokenizer.json", run: bpeJSON),
        FuzzTarget(name: "bpe-text", input: "a text (and ids) through the fixture BPE tokenizers", run: bpeText),
        FuzzTarget(name: "unigram", input: "a SentencePiece Unigram tokenizer.json", run: unigramJSON),
        FuzzTarget(
            name: "unigram-text", input: "a text (after a NUL, its pair) through the fixture Unigram tokenizer",
            run: unigramText)
    ]

    /// Model directories the fuzzed file is dropped into, by family: the fixtures'
    /// other files, copied once.
    static let directories: [String: String] = {
        let models: [String: (fixture: String, files: [String])] = [
            "bert": (
                "models/tiny-bert", ["model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"]
            ),
            "mlp": ("models/digits-mlp", ["model.safetensors"]),
            "cnn": ("models/digits-cnn-arch", []),
            "other": ("", [])
        ]
        var out: [String: String] = [:]
        for (family, m) in models {
            for file in m.files {
                _ = FuzzScratch.shared.file("\(family)/\(file)", FuzzFixtures.read(Path.join(m.fixture, file)))
            }
            let dir = Path.join(FuzzScratch.shared.path, family)
            try? Sys.mkdirs(dir)
            out[family] = dir
        }
        return out
    }()

    static let mlpConfig = FuzzFixtures.read("models/digits-mlp/config.json")

    static func config(_ bytes: [UInt8]) {
        let type = (try? JSONParser.parse(bytes))?.objectValue?["model_type"]?.stringValue ?? ""
        let family = directories[type] == nil ? "other" : type
        _ = FuzzScratch.shared.file("\(family)/config.json", bytes)
        let dir = directories[family]!
        for precision in [LinearOperator.Precision.fp32, .int8] {
            _ = FuzzCheck.handled("loading a \(family) model") {
                try ModelRegistry.load(dir, ModelOptions(precision: precision, maxLength: 16))
            }
        }
        // Stack families can start from config.json alone (finetune from scratch); the
        // size bounds are what keep that from allocating gigabytes.
        if family == "mlp" || family == "cnn", let o = (try? JSONParser.parse(bytes))?.objectValue,
            let stack = FuzzCheck.handled("StackConfig.decode", { try StackConfig.decode(o, family: family) }),
            let count = FuzzCheck.handled("parameterCount", { try stack.parameterCount() }), count <= 1 << 20
        {
            let arch = FuzzScratch.shared.file("\(family)-arch/config.json", bytes)
            _ = FuzzCheck.handled("building a \(family) architecture") {
                try ModelRegistry.load(Path.dirname(arch), ModelOptions(allowArchitectureOnly: true))
            }
        }
    }

    static func safetensors(_ bytes: [UInt8]) {
        let path = FuzzScratch.shared.file("weights/model.safetensors", bytes)
        guard let file = FuzzCheck.handled("SafetensorsFile", { try SafetensorsFile(path: path) }) else { return }
        for name in file.entries.keys.sorted().prefix(16) {
            let entry = file.entries[name]!
            if let t = FuzzCheck.handled("float32(\(name))", { try file.float32(name) }) {
                FuzzCheck.require(
                    t.shape == entry.shape, "tensor \(name) read with shape \(t.shape), not \(entry.shape)")
            }
            if entry.dtype == "I8" { _ = FuzzCheck.handled("int8(\(name))", { try file.int8(name) }) }
        }
        // The same file as an mlp's weights: strict loading must refuse what does not fit.
        _ = FuzzScratch.shared.file("weights/config.json", mlpConfig)
        _ = FuzzCheck.handled("loading an mlp with these weights") { try ModelRegistry.load(Path.dirname(path)) }
    }

    /// Every tensor the reader accepts lies inside the file, aligned, with the bytes its
    /// type and dims imply, and dequantizes to exactly its element count; the typed getters
    /// answer every key with a value or a QuernError.
    static func gguf(_ bytes: [UInt8]) {
        let path = FuzzScratch.shared.file("gguf/model.gguf", bytes)
        guard let file = FuzzCheck.handled("GGUFFile", { try GGUFFile(path: path) }) else { return }
        FuzzCheck.require(file.tensorNames.count == file.tensors.count, "tensor names and infos differ")
        FuzzCheck.require(file.dataStart % file.alignment == 0, "data section at \(file.dataStart) is not aligned")
        for name in file.tensorNames.prefix(16) {
            guard let t = file.tensors[name] else { FuzzCheck.fail("tensor \(name) listed but not kept") }
            FuzzCheck.require(t.offset % file.alignment == 0, "tensor \(name) at \(t.offset) is not aligned")
            FuzzCheck.require(
                file.dataStart + t.offset + t.byteCount <= bytes.count, "tensor \(name) lies outside the file")
            FuzzCheck.require(t.shape.reduce(1, *) == t.elementCount, "tensor \(name) shape \(t.shape) vs count")
            FuzzCheck.require(t.type.byteCount(weights: t.elementCount) == t.byteCount, "tensor \(name) byte count")
            FuzzCheck.require(file.bytes(of: t).count == t.byteCount, "tensor \(name) bytes")
            if let values = FuzzCheck.handled("float32(\(name))", { try file.float32(name, shape: t.shape) }) {
                FuzzCheck.require(values.count == t.elementCount, "tensor \(name) gave \(values.count) values")
            }
        }
        for key in file.metadata.keys.sorted().prefix(64) {
            _ = FuzzCheck.handled("int(\(key))") { try file.int(key) }
            _ = FuzzCheck.handled("double(\(key))") { try file.double(key) }
            _ = FuzzCheck.handled("string(\(key))") { try file.string(key) }
            _ = FuzzCheck.handled("ints(\(key))") { try file.ints(key) }
            _ = FuzzCheck.handled("strings(\(key))") { try file.strings(key) }
            _ = FuzzCheck.handled("floats(\(key))") { try file.floats(key) }
        }
    }

    static let probes = [
        "Hello, World!", "naïve café — ÉTÉ", "中文字符 and 日本語", "[CLS] [SEP] [UNK] [MASK]",
        "unaffable ##ing", String(repeating: "x", count: 300), "tab\tnew\nline\u{0}\u{FEFF}", "🙂👍🏽", ""
    ]

    static func tokenizerJSON(_ bytes: [UInt8]) {
        guard let t = FuzzCheck.handled("tokenizer.json", { try WordPieceTokenizer(tokenizerJSON: bytes) }) else {
            return
        }
        for p in probes { check(t, p) }
    }

    static func vocabTXT(_ bytes: [UInt8]) {
        guard let t = FuzzCheck.handled("vocab.txt", { try WordPieceTokenizer(vocabTXT: bytes) }) else { return }
        for p in probes { check(t, p) }
    }

    static let fixtureTokenizer: WordPieceTokenizer = {
        do {
            return try WordPieceTokenizer(tokenizerJSON: FuzzFixtures.read("text/tiny-bert/tokenizer.json"))
        } catch {
            FuzzCheck.fail("the fixture tokenizer does not load: \(error)")
        }
    }()

    static func text(_ bytes: [UInt8]) {
        let s = String(decoding: bytes, as: UTF8.self)
        check(fixtureTokenizer, s)
        // A NUL splits the input into a sentence pair.
        if let cut = bytes.firstIndex(of: 0) {
            let a = String(decoding: bytes[..<cut], as: UTF8.self)
            let b = String(decoding: bytes[(cut + 1)...], as: UTF8.self)
            let session = WordPieceTokenizer.Session(fixtureTokenizer)
            for limit in [nil, 3, 16] as [Int?] {
                let pair = session.encode(a, b, maxLength: limit)
                checkSequence(fixtureTokenizer, pair, limit: limit)
            }
        }
    }

    /// Invariants of an encoding: ids inside the vocabulary, truncation honoured, specials
    /// in place, and a session's caches never change the result.
    static func check(_ t: WordPieceTokenizer, _ s: String) {
        let fresh = WordPieceTokenizer.Session(t)
        let plain = fresh.tokens(s)
        for limit in [nil, 2, 16] as [Int?] {
            let sequence = fresh.encode(s, maxLength: limit)
            checkSequence(t, sequence, limit: limit)
            if let c = t.clsID { FuzzCheck.require(sequence.ids.first == c, "the sequence does not start with [CLS]") }
            if let e = t.sepID { FuzzCheck.require(sequence.ids.last == e, "the sequence does not end with [SEP]") }
            if limit == nil {
                FuzzCheck.require(sequence.ids.count == plain.count + t.template.addedSingle, "specials added wrongly")
            }
        }
        let warmed = WordPieceTokenizer.Session(t)
        for p in probes { _ = warmed.tokens(p) }
        FuzzCheck.require(warmed.tokens(s) == plain, "a session's cache changed the tokens of \(s.debugDescription)")
    }

    static func checkSequence(_ t: WordPieceTokenizer, _ s: TokenSequence, limit: Int?) {
        checkSequence(t.vocabularySize, t.template, s, limit: limit)
    }

    /// Any encoder tokenizer's sequence: ids inside the vocabulary, truncation honoured.
    static func checkSequence(_ vocabularySize: Int, _ template: EncoderTemplate, _ s: TokenSequence, limit: Int?) {
        FuzzCheck.require(s.ids.count == s.typeIDs.count, "ids and type ids differ in length")
        FuzzCheck.require(
            s.ids.allSatisfy { $0 >= 0 && Int($0) < max(vocabularySize, 1) }, "an id outside the vocabulary")
        if let limit {
            FuzzCheck.require(
                s.ids.count <= max(limit, template.addedPair), "\(s.ids.count) tokens for max_length \(limit)")
        }
    }

    // Built per input, not held in static storage: LeakSanitizer does not recognise
    // Swift's tagged pointers to enum boxes in globals and would report them as leaks.
    static func chatMessages() -> [JSONValue] {
        [
            ["role": "system", "content": "Be brief."], ["role": "user", "content": "Hi 🙂"],
            [
                "role": "assistant", "content": "Yo",
                "tool_calls": [["function": ["name": "f", "arguments": ["x": 1.5]]]]
            ],
            ["role": "tool", "content": "{\"ok\": true}"], ["role": "user", "content": "  and?\n"]
        ]
    }

    static func chatTools() -> [JSONValue] {
        [
            [
                "type": "function",
                "function": ["name": "f", "parameters": ["type": "object", "properties": ["x": ["type": "number"]]]]
            ]
        ]
    }

    /// Parsing and rendering any template return, within the output limit, and render
    /// the same twice (no state survives a render).
    static func chatTemplate(_ bytes: [UInt8]) {
        var source = bytes[...]
        var messages = chatMessages()
        let tools = chatTools()
        if let cut = bytes.firstIndex(of: 0) {
            source = bytes[..<cut]
            if let given = (try? JSONParser.parse(Array(bytes[(cut + 1)...])))?.arrayValue { messages = given }
        }
        let text = String(decoding: source, as: UTF8.self)
        guard let template = FuzzCheck.handled("ChatTemplate", { try ChatTemplate(source: text, name: "fuzz") }) else {
            return
        }
        let now = ChatTemplateDate(year: 2025, month: 1, day: 2, hour: 3, minute: 4, second: 5)
        func render() -> String? {
            FuzzCheck.handled("rendering the template") {
                try template.render(
                    messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>", tools: tools,
                    extra: ["enable_thinking": false], now: now)
            }
        }
        guard let first = render() else { return }
        FuzzCheck.require(
            first.utf8.count <= ChatTemplate.maxOutputBytes, "a render of \(first.utf8.count) bytes passed the limit")
        FuzzCheck.require(render()?.utf8.elementsEqual(first.utf8) == true, "rendering twice gave two outputs")
    }
}
