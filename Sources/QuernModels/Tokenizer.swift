import QuernCore

/// A BERT WordPiece tokenizer read from Hugging Face's `tokenizer.json` (or a bare
/// `vocab.txt` with BERT's defaults), giving the same ids as the `tokenizers` library:
/// special tokens matched in the raw text, BertNormalizer + BertPreTokenizer rules
/// (`BertTextRules`), greedy longest-match WordPiece with the `##` prefix and the
/// 100-character word limit, then truncation and the `[CLS] A [SEP] (B [SEP])` template.
///
/// It works on UTF-8 bytes: ASCII goes through a 128-entry class table, other scalars
/// through `BertTextRules` once each (cached per `Session`), and vocabulary lookups hash
/// byte ranges in place, so no String is built per word or per candidate piece.
public struct WordPieceTokenizer: EncoderTokenizer {
    public let rules: BertTextRules
    let whole: PieceTable
    let continuing: PieceTable
    let continuingPrefix: [UInt8]
    public let unknownID: Int32
    let maxInputCharsPerWord: Int
    /// Tokens matched verbatim in the raw text before normalization (`normalized: false`).
    let specials: [(bytes: [UInt8], id: Int32)]
    let specialFirstBytes: [Bool]
    /// Template: ids before A, between A and B, after B (pairs), after A (single).
    public let clsID: Int32?
    public let sepID: Int32?
    let pairSecondTypeID: Int32
    /// The truncation tokenizer.json asks for, if any (total length including specials).
    public let defaultMaxLength: Int?
    public let padID: Int32
    public let vocabularySize: Int

    // MARK: loading

    /// Reads `tokenizer.json` from a model directory, or `vocab.txt` when there is none.
    public static func load(directory: String) throws -> WordPieceTokenizer {
        let json = Path.join(directory, "tokenizer.json"), vocab = Path.join(directory, "vocab.txt")
        if Sys.isRegularFile(json) { return try WordPieceTokenizer(tokenizerJSON: Sys.readFile(json), source: json) }
        if Sys.isRegularFile(vocab) { return try WordPieceTokenizer(vocabTXT: Sys.readFile(vocab), source: vocab) }
        throw QuernError(.modelInvalid, "\(directory) has neither tokenizer.json nor vocab.txt", field: "model")
    }

    /// From a `vocab.txt` (one token per line, id = line number) with the defaults of
    /// BERT uncased: lowercase, strip accents, `[UNK]`, `[CLS]`, `[SEP]`, `[PAD]`.
    public init(vocabTXT bytes: [UInt8], source: String = "vocab.txt", rules: BertTextRules = BertTextRules()) throws {
        var tokens: [([UInt8], Int32)] = []
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x0A {
            var end = i
            if end > start && bytes[end - 1] == 0x0D { end -= 1 }
            if i < bytes.count || end > start { tokens.append((Array(bytes[start..<end]), Int32(tokens.count))) }
            start = i + 1
        }
        let byToken = Self.ids(tokens)
        func id(_ t: String) throws -> Int32 {
            guard let v = byToken[t] else {
                throw QuernError(.modelInvalid, "\(source) has no \(t) token", field: "model")
            }
            return v
        }
        let specials = try ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { t in
            byToken[t] == nil ? nil : (t, try id(t))
        }
        try self.init(
            vocab: tokens, rules: rules, unk: id("[UNK]"), prefix: "##", maxChars: 100,
            specials: specials, cls: id("[CLS]"), sep: id("[SEP]"), pairType: 1, maxLength: nil,
            pad: byToken["[PAD]"] ?? 0)
    }

    /// From `tokenizer.json`. Only the BERT pipeline is accepted (BertNormalizer,
    /// BertPreTokenizer, WordPiece, TemplateProcessing or BertProcessing); anything else
    /// is refused by name rather than tokenized differently.
    public init(tokenizerJSON bytes: [UInt8], source: String = "tokenizer.json") throws {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        /// A token id as the file gives it: an integer in [0, 2^31).
        func id(_ v: JSONValue?, _ what: String) throws -> Int32 {
            guard let i = v?.intValue, let id = Int32(exactly: i), id >= 0 else {
                throw fail(
                    "\(what) must be an integer id from 0 to \(Int32.max), not \(v.map { "\($0)" } ?? "missing")")
            }
            return id
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(bytes)
        } catch let e as JSONSyntaxError {
            throw fail("not valid JSON: \(e)")
        }
        guard let root = parsed.objectValue else { throw fail("not a JSON object") }
        guard let model = root["model"]?.objectValue, model["type"]?.stringValue == "WordPiece" else {
            throw fail(
                "model type \(root["model"]?.objectValue?["type"]?.stringValue ?? "?") is not supported (WordPiece only)"
            )
        }
        guard let vocab = model["vocab"]?.objectValue else {
            throw fail(
                "model.vocab must be an object of token → id, not \(model["vocab"]?.typeName ?? "missing")")
        }
        var rules = BertTextRules()
        switch root["normalizer"] {
        case .object(let n)? where n["type"]?.stringValue == "BertNormalizer":
            rules.cleanText = n["clean_text"]?.boolValue ?? true
            rules.handleChineseChars = n["handle_chinese_chars"]?.boolValue ?? true
            rules.lowercase = n["lowercase"]?.boolValue ?? true
            rules.stripAccents = n["strip_accents"]?.boolValue ?? rules.lowercase  // null follows lowercase
        case let other:
            throw fail(
                "normalizer \(other?.objectValue?["type"]?.stringValue ?? "none") is not supported (BertNormalizer only)"
            )
        }
        guard root["pre_tokenizer"]?.objectValue?["type"]?.stringValue == "BertPreTokenizer" else {
            throw fail(
                "pre_tokenizer \(root["pre_tokenizer"]?.objectValue?["type"]?.stringValue ?? "none") is not supported (BertPreTokenizer only)"
            )
        }
        let tokens = try vocab.pairs.map { (k, v) -> ([UInt8], Int32) in (Array(k.utf8), try id(v, "vocab entry \(k)"))
        }
        let byToken = Self.ids(tokens)
        let unkName = model["unk_token"]?.stringValue ?? "[UNK]"
        guard let unk = byToken[unkName] else { throw fail("unk_token \(unkName) is not in the vocabulary") }

        var specials: [(String, Int32)] = []
        for t in root["added_tokens"]?.arrayValue ?? [] {
            guard let o = t.objectValue, let content = o["content"]?.stringValue, o["id"] != nil else { continue }
            let i = try id(o["id"], "added token \(content)")
            for flag in ["single_word", "lstrip", "rstrip"] where o[flag]?.boolValue == true {
                throw fail("added token \(content) has \(flag), which Quern does not support")
            }
            if o["normalized"]?.boolValue == true {
                throw fail("added token \(content) is normalized, which Quern does not support")
            }
            // As `tokenizers` loads an added token: the vocabulary's id for its text wins
            // over the one the entry states (it warns "was expected to have ID").
            specials.append((content, byToken[content] ?? i))
        }

        var cls: Int32?, sep: Int32?, pairType: Int32 = 1
        switch root["post_processor"]?.objectValue {
        case let p? where p["type"]?.stringValue == "TemplateProcessing":
            // Accept exactly BERT's template: [CLS]:0 $A:0 [SEP]:0 ($B:t [SEP]:t).
            func items(_ key: String) -> [(special: String?, type: Int32)] {
                (p[key]?.arrayValue ?? []).compactMap { item in
                    if let s = item.objectValue?["SpecialToken"]?.objectValue {
                        return (s["id"]?.stringValue, Int32(clamping: s["type_id"]?.intValue ?? 0))
                    }
                    if let s = item.objectValue?["Sequence"]?.objectValue {
                        return (nil, Int32(clamping: s["type_id"]?.intValue ?? 0))
                    }
                    return nil
                }
            }
            let single = items("single"), pair = items("pair")
            func specialID(_ name: String?) throws -> Int32 {
                guard let name, let ids = p["special_tokens"]?.objectValue?[name]?.objectValue?["ids"]?.arrayValue,
                    ids.count == 1
                else { throw fail("template special token \(name ?? "?") has no single id") }
                return try id(ids[0], "template special token \(name)")
            }
            guard single.count == 3, single[0].special != nil, single[1].special == nil, single[2].special != nil,
                pair.count == 5, pair[3].special == nil, pair[4].special != nil
            else {
                throw fail("post_processor template is not BERT's [CLS] $A [SEP] $B [SEP]")
            }
            cls = try specialID(single[0].special)
            sep = try specialID(single[2].special)
            pairType = pair[3].type
        case let p? where p["type"]?.stringValue == "BertProcessing":
            // ["[CLS]", 101]: the token and its id.
            func pairID(_ key: String) throws -> Int32 {
                guard let a = p[key]?.arrayValue, a.count == 2 else {
                    throw fail("post_processor \(key) must be [token, id]")
                }
                return try id(a[1], "post_processor \(key)")
            }
            cls = try pairID("cls")
            sep = try pairID("sep")
        case nil:
            break
        case let p?:
            throw fail("post_processor \(p["type"]?.stringValue ?? "?") is not supported")
        }
        let maxLength = root["truncation"]?.objectValue?["max_length"]?.intValue.map(Int.init)
        let padding = root["padding"]?.objectValue?["pad_id"]
        let pad = try padding.map { try id($0, "padding.pad_id") } ?? byToken["[PAD]"] ?? 0
        try self.init(
            vocab: tokens, rules: rules, unk: unk, prefix: model["continuing_subword_prefix"]?.stringValue ?? "##",
            maxChars: Int(model["max_input_chars_per_word"]?.intValue ?? 100), specials: specials,
            cls: cls, sep: sep, pairType: pairType, maxLength: maxLength, pad: pad)
    }

    /// Token text → id, for finding the special tokens at load (the first of a repeated token wins).
    static func ids(_ tokens: [([UInt8], Int32)]) -> [String: Int32] {
        Dictionary(tokens.map { (String(decoding: $0.0, as: UTF8.self), $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    init(
        vocab: [([UInt8], Int32)], rules: BertTextRules, unk: Int32, prefix: String, maxChars: Int,
        specials: [(String, Int32)], cls: Int32?, sep: Int32?, pairType: Int32, maxLength: Int?, pad: Int32
    ) throws {
        self.rules = rules
        let p = Array(prefix.utf8)
        var wholeKeys: [([UInt8], Int32)] = [], continuingKeys: [([UInt8], Int32)] = []
        for (key, id) in vocab {
            if !p.isEmpty && key.count > p.count && Array(key[0..<p.count]) == p {
                continuingKeys.append((Array(key[p.count...]), id))
            } else {
                wholeKeys.append((key, id))
            }
        }
        whole = PieceTable(wholeKeys)
        continuing = PieceTable(continuingKeys)
        continuingPrefix = p
        unknownID = unk
        maxInputCharsPerWord = maxChars
        // Longest first, so "[MASK]x" never matches a shorter special that is its prefix.
        self.specials = specials.map { (Array($0.0.utf8), $0.1) }.filter { !$0.0.isEmpty }.sorted {
            $0.0.count > $1.0.count
        }
        var first = [Bool](repeating: false, count: 256)
        for s in self.specials { first[Int(s.bytes[0])] = true }
        specialFirstBytes = first
        clsID = cls
        sepID = sep
        pairSecondTypeID = pairType
        defaultMaxLength = maxLength
        padID = pad
        // Every id the tokenizer can emit, so a model can check its embeddings cover them.
        let emitted = vocab.map { Int($0.1) } + specials.map { Int($0.1) } + [cls, sep].compactMap { $0.map(Int.init) }
        vocabularySize = (emitted.max() ?? -1) + 1
    }

    // MARK: encoding

    /// `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` (B's part of the pair's second type).
    public var template: EncoderTemplate { .bert(cls: clsID, sep: sepID, pairType: pairSecondTypeID) }

    public func makeSession() -> any EncoderTokenizerSession { Session(self) }

    /// Per-thread state: the cache of non-ASCII scalars and scratch buffers. Encoding is
    /// pure; a session only makes it faster, so each worker thread keeps its own.
    public final class Session: EncoderTokenizerSession {
        let tokenizer: WordPieceTokenizer
        let template: EncoderTemplate
        var scalars: [UInt32: [BertTextRules.Piece]] = [:]
        var word: [UInt8] = []
        var wordChars = 0
        let classes: [UInt8]

        public init(_ tokenizer: WordPieceTokenizer) {
            self.tokenizer = tokenizer
            template = tokenizer.template
            classes = BertTextRules.asciiClasses(tokenizer.rules)
            word.reserveCapacity(256)
        }

        /// The ids of `text` with the template's special tokens, truncated to `maxLength`
        /// tokens in all (specials included) when given.
        public func encode(_ text: String, maxLength: Int? = nil) -> TokenSequence {
            template.encode(tokens(text), maxLength: maxLength)
        }

        /// A sentence pair as cross-encoders take it: `[CLS] a [SEP] b [SEP]`, type ids 0
        /// then 1, truncated longest-first as `tokenizers` does.
        public func encode(_ a: String, _ b: String, maxLength: Int? = nil) -> TokenSequence {
            template.encode(tokens(a), tokens(b), maxLength: maxLength)
        }

        /// The ids of `text` alone: no specials added, no truncation.
        public func tokens(_ text: String) -> [Int32] {
            var out: [Int32] = []
            out.reserveCapacity(text.utf8.count / 3 + 4)
            var t = text
            t.withUTF8 { buffer in
                guard let base = buffer.baseAddress else { return }
                let n = buffer.count
                var segment = 0, i = 0
                let t = tokenizer
                if !t.specials.isEmpty {
                    while i < n {
                        if t.specialFirstBytes[Int(base[i])], let (length, id) = t.special(at: base + i, limit: n - i) {
                            words(base + segment, i - segment, into: &out)
                            out.append(id)
                            i += length
                            segment = i
                        } else {
                            i += 1
                        }
                    }
                }
                words(base + segment, n - segment, into: &out)
            }
            return out
        }

        /// Normalizes and pre-tokenizes `count` bytes of UTF-8, appending each word's pieces.
        func words(_ p: UnsafePointer<UInt8>, _ count: Int, into out: inout [Int32]) {
            word.removeAll(keepingCapacity: true)
            wordChars = 0
            var i = 0
            while i < count {
                let b = p[i]
                if b < 0x80 {
                    switch classes[Int(b)] {
                    case 0:
                        word.append(tokenizer.rules.lowercase && b &- 0x41 < 26 ? b | 0x20 : b)
                        wordChars += 1
                    case 1: flush(into: &out)
                    case 3:
                        flush(into: &out)
                        word.append(b)
                        wordChars = 1
                        flush(into: &out)
                    default: break
                    }
                    i += 1
                    continue
                }
                // A multi-byte scalar (the String is valid UTF-8).
                var v: UInt32, length: Int
                if b < 0xE0 {
                    v = UInt32(b & 0x1F); length = 2
                } else if b < 0xF0 {
                    v = UInt32(b & 0x0F); length = 3
                } else {
                    v = UInt32(b & 0x07); length = 4
                }
                for j in 1..<length { v = v << 6 | UInt32(p[i + j] & 0x3F) }
                i += length
                let pieces: [BertTextRules.Piece]
                if let cached = scalars[v] {
                    pieces = cached
                } else {
                    pieces = tokenizer.rules.pieces(Unicode.Scalar(v)!)
                    scalars[v] = pieces
                }
                for piece in pieces {
                    switch piece {
                    case .space: flush(into: &out)
                    case .isolated(let bytes):
                        flush(into: &out)
                        append(bytes)
                        flush(into: &out)
                    case .text(let bytes): append(bytes)
                    }
                }
            }
            flush(into: &out)
        }

        func append(_ bytes: [UInt8]) {
            word += bytes
            for b in bytes where b & 0xC0 != 0x80 { wordChars += 1 }
        }

        /// WordPiece on the current word: greedy longest match from the left, pieces after
        /// the first looked up with the `##` prefix; a word over the character limit, or
        /// with a remainder no piece matches, becomes one `[UNK]`.
        func flush(into out: inout [Int32]) {
            guard !word.isEmpty else { return }
            defer { word.removeAll(keepingCapacity: true); wordChars = 0 }
            let t = tokenizer
            if wordChars > t.maxInputCharsPerWord {
                out.append(t.unknownID)
                return
            }
            let mark = out.count
            word.withUnsafeBufferPointer { w in
                let base = w.baseAddress!, n = w.count
                var start = 0
                while start < n {
                    let table = start == 0 ? t.whole : t.continuing
                    var end = min(n, start + table.maxLength)
                    var found: Int32 = -1
                    while end > start {
                        // Only end on a scalar boundary.
                        if end < n && base[end] & 0xC0 == 0x80 { end -= 1; continue }
                        found = table.lookup(base + start, end - start)
                        if found >= 0 { break }
                        end -= 1
                    }
                    if found < 0 {
                        out.removeLast(out.count - mark)
                        out.append(t.unknownID)
                        return
                    }
                    out.append(found)
                    start = end
                }
            }
        }
    }

    /// A one-off encoding (a `Session` amortizes the scalar cache over many texts).
    func encode(_ text: String, maxLength: Int? = nil) -> TokenSequence {
        Session(self).encode(text, maxLength: maxLength)
    }

    /// The special token starting at `p`, if any (longest first).
    func special(at p: UnsafePointer<UInt8>, limit: Int) -> (Int, Int32)? {
        for s in specials where s.bytes.count <= limit {
            var same = true
            for j in 0..<s.bytes.count where p[j] != s.bytes[j] { same = false; break }
            if same { return (s.bytes.count, s.id) }
        }
        return nil
    }
}

/// Byte string → id, open addressing with linear probing. Keys live back to back in one
/// array; a lookup hashes the candidate bytes where they lie.
struct PieceTable: Sendable {
    private var keys: [UInt8] = []
    private var offsets: [Int32] = []
    private var lengths: [Int32] = []
    private var ids: [Int32] = []
    private var slots: [Int32]
    private let mask: Int
    /// The longest key, in bytes: no candidate longer than this is looked up.
    let maxLength: Int

    init(_ entries: [([UInt8], Int32)]) {
        var capacity = 16
        while capacity < entries.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = [Int32](repeating: -1, count: capacity)
        var longest = 0
        for (key, id) in entries {
            longest = max(longest, key.count)
            var h = key.withUnsafeBufferPointer { Self.hash($0.baseAddress!, $0.count) } & mask
            var duplicate = false
            while slots[h] >= 0 {
                let e = Int(slots[h])
                if Int(lengths[e]) == key.count && Array(keys[Int(offsets[e])..<(Int(offsets[e]) + key.count)]) == key {
                    duplicate = true
                    break
                }
                h = (h + 1) & mask
            }
            if duplicate { continue }  // the first id of a repeated token wins, as in a dictionary built in order
            slots[h] = Int32(ids.count)
            offsets.append(Int32(keys.count))
            lengths.append(Int32(key.count))
            ids.append(id)
            keys += key
        }
        maxLength = longest
    }

    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<n { h = (h ^ UInt64(p[i])) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The id of the `n` bytes at `p`, or -1.
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        var h = Self.hash(p, n) & mask
        return keys.withUnsafeBufferPointer { k in
            while true {
                let e = Int(slots[h])
                if e < 0 { return -1 }
                if Int(lengths[e]) == n {
                    let o = Int(offsets[e])
                    var same = true
                    for j in 0..<n where k[o + j] != p[j] { same = false; break }
                    if same { return ids[e] }
                }
                h = (h + 1) & mask
            }
        }
    }
}

/// A tokenized text: token ids, specials included, and the segment (token type) of
/// each for sentence pairs (empty for a single text).
public struct TokenSequence: Equatable, Sendable {
    public var ids: [Int32]
    public var typeIDs: [Int32]
    /// Tokens the text had beyond the length limit (0: nothing was cut).
    public var truncated = 0

    public init(ids: [Int32], typeIDs: [Int32]) {
        self.ids = ids
        self.typeIDs = typeIDs
    }
}
