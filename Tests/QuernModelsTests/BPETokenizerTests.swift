import QuernCore
import QuernTestSupport
import Testing

@testable import QuernModels

/// The byte-level BPE tokenizer against ids and strings Hugging Face `tokenizers` made
/// with the fixture tokenizers (scripts/make_bpe_fixture.py: a cut of SmolLM2's, tiny
/// Llama-3- and Qwen2-style ones, and two exercising Digits, prefix spaces, unknown bytes
/// and every Split behavior); the full check on SmolLM2, debdesc and every code point is
/// scripts/check-bpe-tokenizer.py.
@Suite("BPE tokenizer")
struct BPETokenizerTests {
    static let fixtures = repoRoot + "/fixtures/text/bpe"
    static let names = ["smollm2", "llama3", "qwen2", "starcoder-unk", "splits"]

    struct Golden {
        var text: String?
        var ids: [Int32]
        var plain: [Int32]?
        var decoded: String
        var skipped: String
    }

    static func golden(_ name: String) throws -> [Golden] {
        try Sys.readFile("\(fixtures)/\(name)/golden.jsonl").split(separator: 0x0A).map { line in
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            func ids(_ key: String) -> [Int32]? { o[key]?.arrayValue?.map { Int32($0.intValue!) } }
            return Golden(
                text: o["text"]?.stringValue, ids: try #require(ids("ids") ?? ids("decode")), plain: ids("plain"),
                decoded: try #require(o["decoded"]?.stringValue), skipped: try #require(o["skipped"]?.stringValue))
        }
    }

    static func load(_ name: String) throws -> BPETokenizer {
        try BPETokenizer.load(directory: "\(fixtures)/\(name)")
    }

    @Test("identical ids and decodings to tokenizers", arguments: names)
    func matchesTokenizers(_ name: String) throws {
        let t = try Self.load(name)
        let session = BPETokenizer.Session(t)
        var mismatches = 0
        let cases = try Self.golden(name)
        #expect(cases.count > 400)
        for c in cases {
            if let text = c.text {
                let ids = session.encode(text), plain = session.encode(text, addSpecialTokens: false)
                if ids != c.ids || plain != c.plain {
                    mismatches += 1
                    Issue.record("\(name) \(text.debugDescription): \(ids) / \(plain) != \(c.ids) / \(c.plain ?? [])")
                }
            }
            let decoded = t.decode(c.ids, skipSpecialTokens: false), skipped = t.decode(c.ids, skipSpecialTokens: true)
            if decoded != c.decoded || skipped != c.skipped {
                mismatches += 1
                Issue.record("\(name) decode \(c.ids): \(decoded.debugDescription) != \(c.decoded.debugDescription)")
            }
        }
        #expect(mismatches == 0)
    }

    @Test("a session's word cache never changes the ids", arguments: ["smollm2", "qwen2"])
    func cacheIsNeutral(_ name: String) throws {
        let t = try Self.load(name)
        let warm = BPETokenizer.Session(t)
        let cases = try Self.golden(name).compactMap(\.text)
        for text in cases { _ = warm.encode(text) }
        for text in cases.reversed() { #expect(warm.encode(text) == t.encode(text), "\(text.debugDescription)") }
    }

    @Test("streaming decode: at every cut point, what came out plus the flush is decode of the ids so far")
    func streamingAtEveryCut() throws {
        for name in Self.names {
            let t = try Self.load(name)
            for c in try Self.golden(name) {
                for skip in [false, true] {
                    var stream = BPETokenizer.StreamDecoder(t, skipSpecialTokens: skip)
                    var text = ""
                    for (k, id) in c.ids.enumerated() {
                        text += stream.next(id)
                        guard k < 48 else { continue }  // every cut of long cases would be quadratic
                        var flushed = stream
                        #expect(text + flushed.finish() == t.decode(Array(c.ids[...k]), skipSpecialTokens: skip))
                        // Nothing is replaced early: a U+FFFD out of the stream is one of the whole text's.
                        let whole = skip ? c.skipped : c.decoded
                        #expect(
                            text.unicodeScalars.filter { $0 == "\u{FFFD}" }.count
                                <= whole.unicodeScalars.filter { $0 == "\u{FFFD}" }.count)
                    }
                    #expect(text + stream.finish() == (skip ? c.skipped : c.decoded))
                }
            }
        }
    }

    /// A tokenizer whose tokens are single bytes, for feeding UTF-8 a byte at a time.
    static func bytesTokenizer() throws -> BPETokenizer {
        let alphabet = (0..<256).map { b in
            String(Unicode.Scalar(UInt32(ByteLevelAlphabet.byteOf.firstIndex(of: Int16(b))!))!)
        }
        return try BPETokenizer(
            vocabulary: alphabet, merges: [], pipeline: BPEPreset.gpt2.pipeline, source: "bytes")
    }

    @Test("a partial UTF-8 sequence is held until it completes; an invalid one is one U+FFFD per maximal subpart")
    func partialUTF8() throws {
        let t = try Self.bytesTokenizer()
        // Expected strings are Python's bytes.decode("utf-8", "replace"), which replaces as
        // Rust's from_utf8_lossy does.
        let cases: [([UInt8], String)] = [
            ([0xE2, 0x82, 0x41], "\u{FFFD}A"), ([0xF0, 0x9F], "\u{FFFD}"),
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xE0, 0x80, 0xAF], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"), ([0xF0, 0x9F, 0x98], "\u{FFFD}"), ([0x61, 0xF5, 0x62], "a\u{FFFD}b"),
            ([0xE2, 0x82, 0xAC, 0x80], "€\u{FFFD}"), (Array("é€😀".utf8), "é€😀")
        ]
        for (bytes, expected) in cases {
            let ids = bytes.map { Int32(t.byteIDs[Int($0)]) }
            #expect(t.decode(ids, skipSpecialTokens: false) == expected)
            var stream = BPETokenizer.StreamDecoder(t, skipSpecialTokens: false)
            var out: [String] = []
            for id in ids { out.append(stream.next(id)) }
            out.append(stream.finish())
            #expect(out.joined() == expected, "\(bytes)")
        }
        // "😀" arrives in four pieces: nothing comes out until the last.
        var stream = BPETokenizer.StreamDecoder(t, skipSpecialTokens: false)
        let pieces = Array("😀".utf8).map { stream.next(Int32(t.byteIDs[Int($0)])) }
        #expect(pieces == ["", "", "", "😀"])
        #expect(stream.finish() == "")
    }

    @Test("added tokens: lstrip and rstrip take the whitespace beside them, single_word only between words")
    func addedTokens() throws {
        let t = try Self.load("llama3")
        let bos = try #require(t.id("<|begin_of_text|>")), mask = try #require(t.id("<mask>"))
        let sep = try #require(t.id("<sep>")), word = try #require(t.id("[WORD]"))
        #expect(bos == 2500 && t.bosID == nil && t.prefixIDs == [bos])
        #expect(t.encode("a   <mask>b") == [bos, t.id("a")!, mask, t.id("b")!])
        #expect(t.encode("before   <sep>  after").contains(sep))
        #expect(t.encode("before   <sep>  after", addSpecialTokens: false).count == 7)
        #expect(t.encode("x [WORD] y") == [bos, t.id("x")!, t.id("Ġ")!, word, t.id("Ġy")!])
        #expect(!t.encode("x[WORD]y").contains(word))
        #expect(t.encode("nice niceties", addSpecialTokens: false).first == t.id("nice"))
        #expect(t.isSpecial(mask) && !t.isSpecial(word))
        // The space <mask> took is gone from the decoding, as in tokenizers.
        #expect(t.decode(t.encode("a <mask> b"), skipSpecialTokens: true) == "a b")
        #expect(t.decode(t.encode("a <mask> b"), skipSpecialTokens: false) == "<|begin_of_text|>a<mask> b")
    }

    @Test("NFC: composed and decomposed text give the same ids; normalized added tokens match either")
    func nfc() throws {
        let t = try Self.load("qwen2")
        let cafe = try #require(t.id("cafe\u{301}"))
        #expect(t.encode("un café") == t.encode("un cafe\u{301}"))
        #expect(t.encode("un café").last == cafe)
        #expect(t.token(cafe) == "café")  // decoding uses the normalized text, as tokenizers does
        #expect(t.pipeline.nfc)
        // Hangul jamo compose only within their ranges; a mark added after Unicode 9.0 does not reorder.
        var out: [UInt8] = [], scratch: [UInt32] = []
        let scalars = BPEScalars(nfc: true)
        func nfc(_ s: String) -> String {
            out.removeAll()
            var s = s
            let changed = s.withUTF8 { scalars.nfc($0.baseAddress!, $0.count, into: &out, scratch: &scratch) }
            return changed ? String(decoding: out, as: UTF8.self) : s
        }
        #expect(nfc("\u{1100}\u{1161}\u{11A8}").unicodeScalars.map(\.value) == [0xAC01])
        #expect(nfc("\u{1113}\u{1161}").unicodeScalars.map(\.value) == [0x1113, 0x1161])
        #expect(nfc("a\u{316}\u{301}").unicodeScalars.map(\.value) == [0xE1, 0x316])
        #expect(nfc("a\u{1DF6}\u{316}").unicodeScalars.map(\.value) == [0x61, 0x1DF6, 0x316])
        #expect(nfc("\u{0CC6}\u{0CC2}\u{0CD5}").unicodeScalars.map(\.value) == [0x0CCB])
        #expect(nfc("\u{11935}\u{11930}").unicodeScalars.map(\.value) == [0x11935, 0x11930])
        #expect(nfc("plain ascii") == "plain ascii")
    }

    @Test("built from GGUF-style parts, it encodes as the same tokenizer.json does")
    func fromParts() throws {
        let json = try Self.load("smollm2")
        let root = try #require(
            try JSONParser.parse(Sys.readFile("\(Self.fixtures)/smollm2/tokenizer.json")).objectValue)
        let model = try #require(root["model"]?.objectValue)
        let vocab = try #require(model["vocab"]?.objectValue)
        var tokens = [String](repeating: "", count: vocab.pairs.count)
        for (token, id) in vocab.pairs { tokens[Int(id.intValue!)] = token }
        let merges = try #require(model["merges"]?.arrayValue).map {
            $0.arrayValue!.map { $0.stringValue! }.joined(separator: " ")
        }
        var types = [Int32](repeating: 1, count: tokens.count)
        for t in root["added_tokens"]?.arrayValue ?? [] { types[Int(t.objectValue!["id"]!.intValue!)] = 3 }
        let gguf = try BPETokenizer(
            ggufTokens: tokens, merges: merges, tokenTypes: types, pre: "smollm", bosID: 1, eosID: 2, addBOS: true,
            addEOS: false, source: "smollm2.gguf")
        #expect(gguf.bosID == 1 && gguf.eosID == 2 && gguf.vocabularySize == json.vocabularySize)
        for c in try Self.golden("smollm2") {
            guard let text = c.text else { continue }
            #expect(gguf.encode(text) == [1] + json.encode(text), "\(text.debugDescription)")
        }
        #expect(throws: QuernError.self) {
            try BPETokenizer(
                ggufTokens: tokens, merges: merges, tokenTypes: types, pre: "falcon-7b", bosID: nil, eosID: nil,
                addBOS: false, addEOS: false, source: "x.gguf")
        }
        #expect(BPEPreset.ggufNames["llama-bpe"] == .llama3 && BPEPreset.ggufNames["qwen2"] == .qwen2)
    }

    @Test("ids, tokens, the vocabulary size, and BOS/EOS from tokenizer_config.json")
    func tokens() throws {
        let t = try Self.load("smollm2")
        #expect(t.vocabularySize == 3252)
        #expect(t.id("<|im_start|>") == 1 && t.token(1) == "<|im_start|>")
        #expect(t.token(-1) == nil && t.token(Int32(t.vocabularySize)) == nil && t.id("no such token") == nil)
        for id in Int32(0)..<Int32(t.vocabularySize) { #expect(t.id(t.token(id)!) == id) }
        let dir = try TempDir()
        defer { dir.remove() }
        _ = try dir.write("tokenizer.json", try Sys.readFile("\(Self.fixtures)/smollm2/tokenizer.json"))
        _ = try dir.write(
            "tokenizer_config.json", #"{"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}}"#)
        let configured = try BPETokenizer.load(directory: dir.path)
        #expect(configured.bosID == 1 && configured.eosID == 2)
        guard case .bpe = try ModelTokenizer.load(directory: dir.path) else {
            Issue.record("a BPE tokenizer.json loaded as WordPiece")
            return
        }
        guard case .wordPiece = try ModelTokenizer.load(directory: repoRoot + "/fixtures/text/tiny-bert") else {
            Issue.record("a WordPiece tokenizer.json loaded as BPE")
            return
        }
    }

    // MARK: refusals

    /// A small valid tokenizer.json, changed by `edit`, and the message loading it gives.
    static func refusal(_ edit: (inout JSONObject) -> Void) -> String? {
        let base: JSONValue = [
            "version": "1.0",
            "model": [
                "type": "BPE", "vocab": ["a": 0, "b": 1, "ab": 2, "Ġ": 3], "merges": ["a b"], "unk_token": .null
            ],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "decoder": ["type": "ByteLevel"]
        ]
        var root = base.objectValue!
        edit(&root)
        do {
            _ = try BPETokenizer(tokenizerJSON: JSONWriter.compact(.object(root)), source: "t.json")
            return nil
        } catch let e as QuernError {
            #expect(e.code == .modelInvalid && e.message.hasPrefix("t.json: "))
            return e.message
        } catch {
            return "not a QuernError: \(error)"
        }
    }

    /// Sets `path` ("model.merges", "decoder"...) to `value`.
    static func patch(_ path: String, _ value: JSONValue) -> (inout JSONObject) -> Void {
        { root in
            guard path.hasPrefix("model.") else {
                root[path] = value
                return
            }
            var m = root["model"]!.objectValue!
            m[String(path.dropFirst(6))] = value
            root["model"] = .object(m)
        }
    }

    @Test("the base of the refusal tests loads")
    func baseLoads() {
        #expect(Self.refusal { _ in } == nil)
    }

    static let byteLevelAfterUnknownRegex: JSONValue = [
        "type": "Sequence",
        "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": "\\w+"], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel"]
        ]
    ]

    @Test(
        "unsupported pieces are refused by name",
        arguments: [
            ("model type WordPiece", "model.type", "WordPiece"),
            ("byte_fallback", "model.byte_fallback", true),
            ("continuing_subword_prefix", "model.continuing_subword_prefix", "##"),
            ("end_of_word_suffix", "model.end_of_word_suffix", "</w>"),
            ("dropout", "model.dropout", 0.1),
            ("normalizer Lowercase", "normalizer", ["type": "Lowercase"]),
            ("pre_tokenizer Metaspace", "pre_tokenizer", ["type": "Metaspace"]),
            ("regex \"\\\\w+\"", "pre_tokenizer", byteLevelAfterUnknownRegex),
            ("end with one ByteLevel", "pre_tokenizer", ["type": "Digits"]),
            ("decoder Replace", "decoder", ["type": "Replace"]),
            ("decoder null", "decoder", .null),
            ("post_processor cls must be [token, id]", "post_processor", ["type": "RobertaProcessing"]),
            ("post_processor BertProcessing is not supported", "post_processor", ["type": "BertProcessing"]),
            ("version \"2.0\"", "version", "2.0")
        ] as [(String, String, JSONValue)])
    func refusesByName(_ name: String, _ path: String, _ value: JSONValue) {
        let message = Self.refusal(Self.patch(path, value))
        #expect(message?.contains(name) == true, "\(message ?? "loaded")")
    }

    static let templateOutside: JSONValue = [
        "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>"]], ["Sequence": ["id": "A"]]],
        "special_tokens": ["<s>": ["id": "<s>", "ids": [99]]]
    ]
    static let templateBOS: JSONValue = [
        "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>"]], ["Sequence": ["id": "A"]]],
        "special_tokens": ["<s>": ["id": "<s>", "ids": [3]]]
    ]
    static let twoTemplates: JSONValue = ["type": "Sequence", "processors": [templateBOS, templateBOS]]

    @Test("a template inside Sequences is found, whatever else the Sequences hold")
    func nestedTemplate() throws {
        let nested: JSONValue = [
            "type": "Sequence",
            "processors": [
                ["type": "ByteLevel"], Self.templateBOS, ["type": "Sequence", "processors": [["type": "ByteLevel"]]]
            ]
        ]
        #expect(Self.refusal(Self.patch("post_processor", nested)) == nil)
        var root = try #require(
            try JSONParser.parse(Sys.readFile("\(Self.fixtures)/smollm2/tokenizer.json")).objectValue)
        root["post_processor"] = nested
        let t = try BPETokenizer(tokenizerJSON: JSONWriter.compact(.object(root)))
        #expect(t.prefixIDs == [3] && t.suffixIDs.isEmpty && t.encode("a").first == 3)
    }

    static let templateWithoutIDs: JSONValue = [
        "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>"]], ["Sequence": ["id": "A"]]]
    ]

    @Test(
        "hostile tokenizer.json: clear errors, never a crash or a huge allocation",
        arguments: [
            ("id from 0 to", "model.vocab", ["a": .int(1 << 40)]),
            ("id from 0 to", "model.vocab", ["a": -1]),
            ("beyond what", "model.vocab", ["a": 0, "b": 2_000_000_000]),
            ("both have id 0", "model.vocab", ["a": 0, "b": 0]),
            ("\"c\", which is not in the vocabulary", "model.merges", ["a c"]),
            ("\"bb\", which is not in the vocabulary", "model.merges", ["b b"]),
            ("two tokens separated by one space", "model.merges", ["a  b"]),
            ("merge 0 must be", "model.merges", [7]),
            ("merge 0 must be", "model.merges", [["a", "b", "c"]]),
            ("model.merges must be an array", "model.merges", ["a": "b"]),
            ("model.vocab must be an object", "model.vocab", ["a", "b"]),
            ("vocabulary is empty", "model.vocab", [:]),
            ("model must be an object", "model", "BPE"),
            ("unk_token \"<unk>\"", "model.unk_token", "<unk>"),
            ("added_tokens entries", "added_tokens", [["id": 0]]),
            ("outside the 4-token vocabulary", "post_processor", templateOutside),
            ("has no ids", "post_processor", templateWithoutIDs),
            ("more than one template", "post_processor", twoTemplates)
        ] as [(String, String, JSONValue)])
    func hostile(_ name: String, _ path: String, _ value: JSONValue) {
        let message = Self.refusal(Self.patch(path, value))
        #expect(message?.contains(name) == true, "\(message ?? "loaded")")
    }

    @Test("bytes that are not JSON, or not an object, are refused")
    func notJSON() {
        for bytes in [Array("{".utf8), Array("[]".utf8), [0xFF, 0xFE]] {
            #expect(throws: QuernError.self) { try BPETokenizer(tokenizerJSON: bytes) }
        }
    }
}
