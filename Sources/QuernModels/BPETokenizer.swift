import QuernCore

/// A byte-level BPE tokenizer (GPT-2, SmolLM2, Llama 3, Qwen2...) read from Hugging Face's
/// `tokenizer.json`, or built from parts (a GGUF file's vocabulary and merges), giving the
/// same ids as the `tokenizers` library (0.23): added tokens matched in the raw text
/// (`single_word`, `lstrip`, `rstrip`, `normalized`), NFC, the pre-tokenizer steps of
/// `BPEPipeline`, merges by rank (with `ignore_merges`), and a `TemplateProcessing` post
/// processor. Decoding is ByteLevel's: token bytes joined, invalid UTF-8 replaced by U+FFFD
/// the way Rust's `from_utf8_lossy` does; `StreamDecoder` does the same one id at a time.
///
/// Anything else a tokenizer.json may hold (another model, normalizer, pre-tokenizer,
/// regex, post-processor or decoder, byte fallback, subword prefixes, dropout,
/// truncation, padding) is refused by name rather than tokenized differently.
///
/// Encoding works on UTF-8 bytes: vocabulary tokens are kept as the bytes they stand
/// for, words are cut by hand-written matchers, and each session caches the ids of the
/// words it has merged.
public struct BPETokenizer: Sendable {
    /// Model vocabulary: the bytes a token stands for → its id (tokens whose characters are
    /// not all byte-level ones cannot come out of merges and are not here).
    let pieces: PieceTable
    /// The id of each single byte, or -1 when the vocabulary lacks it.
    let byteIDs: [Int32]
    let merges: BPEMergeTable
    let ignoreMerges: Bool
    let unknownID: Int32?
    let fuseUnknown: Bool
    public let pipeline: BPEPipeline
    /// Added tokens matched in the raw text (`normalized: false`) and in normalized text.
    let addedRaw: BPEAddedTokens
    let addedNormalized: BPEAddedTokens
    /// What the post-processor puts before and after the text's ids.
    public let prefixIDs: [Int32]
    public let suffixIDs: [Int32]
    /// Per id: the token's text (`names[nameOffsets[id]..<nameOffsets[id + 1]]`), whether
    /// there is one, whether it is special, and the bytes ByteLevel decodes it to.
    let names: [UInt8]
    let nameOffsets: [Int32]
    let hasToken: [Bool]
    let special: [Bool]
    let bytes: [UInt8]
    let byteOffsets: [Int32]
    /// Token text → id, for `id(_:)`: the added tokens, then the model's.
    let addedIDs: [String: Int32]
    let modelIDs: PieceTable
    /// One past the largest id.
    public let vocabularySize: Int
    public let bosID: Int32?
    public let eosID: Int32?
    /// As a text encoder's tokenizer (RoBERTa): the post-processor's template for one text
    /// and for pairs, and the truncation tokenizer.json asks for.
    public internal(set) var template: EncoderTemplate
    public internal(set) var defaultMaxLength: Int?

    /// A token added to the vocabulary, matched in the text before the model sees it.
    public struct AddedToken: Sendable, Equatable {
        public var content: String
        public var special: Bool
        public var singleWord: Bool
        public var lstrip: Bool
        public var rstrip: Bool
        /// Matched in normalized text (true) or in the raw text.
        public var normalized: Bool

        public init(
            _ content: String, special: Bool, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
            normalized: Bool? = nil
        ) {
            self.content = content
            self.special = special
            self.singleWord = singleWord
            self.lstrip = lstrip
            self.rstrip = rstrip
            self.normalized = normalized ?? !special
        }
    }

    /// Ids beyond this many times the number of tokens (plus a little) are refused before
    /// the id tables are sized by them.
    static let idSlack = (factor: 2, plus: 1024)

    /// From parts, as a GGUF file holds them: `vocabulary[id]` is token `id` (in the
    /// byte-level alphabet, `Ġ` for a space), `merges` by rank. Added tokens are matched
    /// in the text first; `prefixIDs`/`suffixIDs` go around every encoding that asks for
    /// special tokens (a BOS, say).
    public init(
        vocabulary: [String], merges: [(String, String)], addedTokens: [AddedToken] = [], pipeline: BPEPipeline,
        ignoreMerges: Bool = false, unknownToken: String? = nil, prefixIDs: [Int32] = [], suffixIDs: [Int32] = [],
        bosID: Int32? = nil, eosID: Int32? = nil, source: String
    ) throws {
        guard vocabulary.count <= Int(Int32.max) else {
            throw QuernError(.modelInvalid, "\(source): \(vocabulary.count) tokens is too many", field: "model")
        }
        try self.init(
            vocabulary: vocabulary.enumerated().map { ($1, Int32($0)) }, merges: merges, addedTokens: addedTokens,
            pipeline: pipeline, ignoreMerges: ignoreMerges, unknownToken: unknownToken, fuseUnknown: false,
            prefixIDs: prefixIDs, suffixIDs: suffixIDs, bosID: bosID, eosID: eosID, source: source)
    }

    /// From a GGUF file's tokenizer metadata: `tokenizer.ggml.tokens`, `.merges` ("a b"),
    /// `.token_type` (3 control → a special added token, 4 user-defined → a non-special
    /// one, both matched in the raw text), `.pre` (a `BPEPreset` name), the BOS/EOS ids and
    /// whether encoding adds them (`add_bos_token`, `add_eos_token`).
    public init(
        ggufTokens tokens: [String], merges: [String], tokenTypes: [Int32]?, pre: String, bosID: Int32?,
        eosID: Int32?, addBOS: Bool, addEOS: Bool, source: String
    ) throws {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        let preset = try BPEPreset(ggufPre: pre, source: source)
        if let tokenTypes, tokenTypes.count != tokens.count {
            throw fail("tokenizer.ggml.token_type has \(tokenTypes.count) entries for \(tokens.count) tokens")
        }
        let pairs = try merges.enumerated().map { (rank, s) -> (String, String) in
            let parts = s.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw fail("tokenizer.ggml.merges[\(rank)] \(s.debugDescription) is not two tokens and one space")
            }
            return (String(parts[0]), String(parts[1]))
        }
        var added: [AddedToken] = []
        for (i, type) in (tokenTypes ?? []).enumerated() where type == 3 || type == 4 {
            added.append(AddedToken(tokens[i], special: type == 3, normalized: false))
        }
        for (name, id) in [("BOS", bosID), ("EOS", eosID)] {
            if let id, id < 0 || Int(id) >= tokens.count {
                throw fail("the \(name) id \(id) is outside the \(tokens.count)-token vocabulary")
            }
        }
        try self.init(
            vocabulary: tokens, merges: pairs, addedTokens: added, pipeline: preset.pipeline,
            ignoreMerges: preset.ignoresMerges, prefixIDs: addBOS ? bosID.map { [$0] } ?? [] : [],
            suffixIDs: addEOS ? eosID.map { [$0] } ?? [] : [], bosID: bosID, eosID: eosID, source: source)
    }

    /// The designated initializer: every way in ends here, and every size is checked
    /// before a table is sized by it.
    init(
        vocabulary: [(String, Int32)], merges: [(String, String)], addedTokens: [AddedToken], pipeline: BPEPipeline,
        ignoreMerges: Bool, unknownToken: String?, fuseUnknown: Bool, prefixIDs: [Int32], suffixIDs: [Int32],
        bos: String? = nil, eos: String? = nil, bosID: Int32? = nil, eosID: Int32? = nil, source: String
    ) throws {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        guard !vocabulary.isEmpty else { throw fail("the vocabulary is empty") }
        let limit = (vocabulary.count + addedTokens.count) * Self.idSlack.factor + Self.idSlack.plus
        var maxID: Int32 = 0
        for (token, id) in vocabulary {
            guard Int(id) < limit else {
                throw fail(
                    "token \(token.debugDescription) has id \(id), beyond what \(vocabulary.count) tokens need "
                        + "(ids up to \(limit - 1) are accepted)")
            }
            maxID = max(maxID, id)
        }
        // Token text → id over the model's vocabulary; each token and each id once.
        var modelNames: [([UInt8], Int32)] = []
        modelNames.reserveCapacity(vocabulary.count)
        var owner = [Int32](repeating: -1, count: Int(maxID) + 1)
        for (index, (token, id)) in vocabulary.enumerated() {
            if owner[Int(id)] >= 0 {
                throw fail(
                    "tokens \(vocabulary[Int(owner[Int(id)])].0.debugDescription) and \(token.debugDescription) "
                        + "both have id \(id)")
            }
            owner[Int(id)] = Int32(index)
            modelNames.append((Array(token.utf8), id))
        }
        let modelIDs = PieceTable(modelNames)
        func modelID(_ token: String) -> Int32? {
            var t = token
            return t.withUTF8 { u in
                let id = u.baseAddress.map { modelIDs.lookup($0, u.count) } ?? -1
                return id >= 0 ? id : nil
            }
        }
        for (token, id) in vocabulary where modelID(token) != id {
            throw fail("token \(token.debugDescription) appears twice in the vocabulary")
        }

        // The model sees bytes: keep each token as the bytes its byte-level characters stand for.
        var byteTokens: [([UInt8], Int32)] = []
        var byteIDs = [Int32](repeating: -1, count: 256)
        for (token, id) in vocabulary {
            guard let b = ByteLevelAlphabet.bytes(token) else { continue }
            byteTokens.append((b, id))
            if b.count == 1 { byteIDs[Int(b[0])] = id }
        }

        var table = BPEMergeTable(count: merges.count)
        var newIDs: [Int32] = []
        newIDs.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            func id(_ t: String) throws -> Int32 {
                guard let i = modelID(t) else {
                    throw fail(
                        "merge \(rank) \"\(a) \(b)\" names \(t.debugDescription), which is not in the vocabulary")
                }
                return i
            }
            let left = try id(a), right = try id(b), merged = try id(a + b)
            table.insert(left, right, rank: Int32(rank))
            newIDs.append(merged)
        }
        table.newIDs = newIDs

        var unknown: Int32?
        if let unknownToken {
            unknown = modelID(unknownToken)
            if unknown == nil && byteIDs.contains(-1) {
                throw fail("unk_token \(unknownToken.debugDescription) is not in the vocabulary")
            }
        }

        // Added tokens, with ids as tokenizers gives them: a token already in the vocabulary
        // keeps its id, the others follow the vocabulary in order (the file's ids are not used).
        var addedIDs: [String: Int32] = [:]
        var addedByID: [Int32: (token: AddedToken, text: String)] = [:]
        var specials = Set<String>()
        var nextID = Int32(vocabulary.count)
        let normalizing = pipeline.nfc ? BPEScalars(nfc: true) : nil
        for token in addedTokens where !token.content.isEmpty {
            if let id = addedIDs[token.content], addedByID[id]?.token == token { continue }
            let id: Int32
            if let known = addedIDs[token.content] ?? modelID(token.content) {
                id = known
            } else {
                id = nextID
                nextID += 1
            }
            var text = token.content
            if token.normalized, let normalizing {
                var out: [UInt8] = [], scratch: [UInt32] = []
                var content = token.content
                let changed = content.withUTF8 { u in
                    u.baseAddress.map { normalizing.nfc($0, u.count, into: &out, scratch: &scratch) } ?? false
                }
                if changed { text = String(decoding: out, as: UTF8.self) }
            }
            addedIDs[token.content] = id
            if token.special { specials.insert(token.content) }
            addedByID[id] = (token, text)
            maxID = max(maxID, id)
        }
        let byID = addedByID.sorted { $0.key < $1.key }
        let addedRaw = BPEAddedTokens(
            byID.filter { !$0.value.token.normalized }.map { ($0.value.text, $0.key, $0.value.token) })
        let addedNormalized = BPEAddedTokens(
            byID.filter { $0.value.token.normalized }.map { ($0.value.text, $0.key, $0.value.token) })

        // Per id: text, specialness and the bytes decoding gives.
        let size = Int(maxID) + 1
        var names: [UInt8] = [], nameOffsets = [Int32](repeating: 0, count: size + 1)
        var hasToken = [Bool](repeating: false, count: size), special = hasToken
        var decoded: [UInt8] = [], byteOffsets = [Int32](repeating: 0, count: size + 1)
        for id in 0..<size {
            var text = addedByID[Int32(id)]?.text
            if text == nil && id < owner.count && owner[id] >= 0 { text = vocabulary[Int(owner[id])].0 }
            if let text {
                hasToken[id] = true
                names += Array(text.utf8)
                special[id] = specials.contains(text)
                decoded += ByteLevelAlphabet.bytes(text) ?? Array(text.utf8)
            }
            nameOffsets[id + 1] = Int32(names.count)
            byteOffsets[id + 1] = Int32(decoded.count)
        }

        for (what, ids) in [("before", prefixIDs), ("after", suffixIDs)] {
            for id in ids where id < 0 || Int(id) >= size {
                throw fail("the post-processor adds id \(id) \(what) the text, outside the \(size)-token vocabulary")
            }
        }
        self.pieces = PieceTable(byteTokens)
        self.byteIDs = byteIDs
        self.merges = table
        self.ignoreMerges = ignoreMerges
        self.unknownID = unknown
        self.fuseUnknown = fuseUnknown
        self.pipeline = pipeline
        self.addedRaw = addedRaw
        self.addedNormalized = addedNormalized
        self.prefixIDs = prefixIDs
        self.suffixIDs = suffixIDs
        self.names = names
        self.nameOffsets = nameOffsets
        self.hasToken = hasToken
        self.special = special
        self.bytes = decoded
        self.byteOffsets = byteOffsets
        self.addedIDs = addedIDs
        self.modelIDs = modelIDs
        self.vocabularySize = size
        func named(_ name: String?, _ what: String) throws -> Int32? {
            guard let name else { return nil }
            guard let id = addedIDs[name] ?? modelID(name) else {
                throw fail("the \(what) token \(name.debugDescription) is not in the vocabulary")
            }
            return id
        }
        self.bosID = try bosID ?? named(bos, "BOS")
        self.eosID = try eosID ?? named(eos, "EOS")
        template = EncoderTemplate(
            single: [.special(prefixIDs, type: 0), .first(type: 0), .special(suffixIDs, type: 0)],
            pair: [
                .special(prefixIDs, type: 0), .first(type: 0), .special(suffixIDs, type: 0), .second(type: 0),
                .special(suffixIDs, type: 0)
            ])
    }

    // MARK: tokens

    /// The id of a token (written as in tokenizer.json: `Ġ` for a space), added tokens first.
    public func id(_ token: String) -> Int32? {
        if let id = addedIDs[token] { return id }
        var t = token
        let id = t.withUTF8 { u in u.baseAddress.map { modelIDs.lookup($0, u.count) } ?? -1 }
        return id >= 0 ? id : nil
    }

    /// The text of token `id` (as in tokenizer.json), or nil for an id with no token.
    public func token(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < vocabularySize, hasToken[Int(id)] else { return nil }
        return String(decoding: names[Int(nameOffsets[Int(id)])..<Int(nameOffsets[Int(id) + 1])], as: UTF8.self)
    }

    /// The id of the token for a single byte, or nil when the vocabulary has none (then
    /// the byte is dropped from text, or becomes `unk_token`).
    public func id(byte: UInt8) -> Int32? { byteIDs[Int(byte)] >= 0 ? byteIDs[Int(byte)] : nil }

    /// Whether `id` is a special added token (what `skipSpecialTokens` drops).
    public func isSpecial(_ id: Int32) -> Bool { id >= 0 && Int(id) < vocabularySize && special[Int(id)] }

    // MARK: encoding and decoding

    /// The ids of `text`, with the post-processor's special tokens when `addSpecialTokens`.
    /// (A `Session` keeps its caches across texts; this makes a new one.)
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        Session(self).encode(text, addSpecialTokens: addSpecialTokens)
    }

    /// Appends the bytes of token `id` as ByteLevel decodes it; an id with no token, and a
    /// special one when `skipSpecialTokens`, add nothing (as in `tokenizers`).
    func appendBytes(_ id: Int32, skipSpecialTokens: Bool, to out: inout [UInt8]) {
        guard id >= 0, Int(id) < vocabularySize, hasToken[Int(id)] else { return }
        if skipSpecialTokens && special[Int(id)] { return }
        out += bytes[Int(byteOffsets[Int(id)])..<Int(byteOffsets[Int(id) + 1])]
    }

    /// The text of `ids`: their bytes joined, each invalid UTF-8 sequence one U+FFFD.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids { appendBytes(id, skipSpecialTokens: skipSpecialTokens, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decoding while generating: `next(id)` returns the text that id completes and holds
    /// back the start of a UTF-8 sequence the next ids may finish; `finish()` returns what
    /// is held (U+FFFD when it never completed). Everything returned, joined, is exactly
    /// `decode(ids)`.
    public struct StreamDecoder: Sendable {
        public let tokenizer: BPETokenizer
        public let skipSpecialTokens: Bool
        var pending: [UInt8] = []

        public init(_ tokenizer: BPETokenizer, skipSpecialTokens: Bool) {
            self.tokenizer = tokenizer
            self.skipSpecialTokens = skipSpecialTokens
        }

        public mutating func next(_ id: Int32) -> String {
            tokenizer.appendBytes(id, skipSpecialTokens: skipSpecialTokens, to: &pending)
            let cut = UTF8Scalars.completePrefix(pending)
            guard cut > 0 else { return "" }
            let text = String(decoding: pending[..<cut], as: UTF8.self)
            pending.removeFirst(cut)
            return text
        }

        public mutating func finish() -> String {
            defer { pending.removeAll() }
            return String(decoding: pending, as: UTF8.self)
        }
    }
}

/// GPT-2's byte ↔ character table: printable Latin-1 bytes stand for themselves, the other
/// 68 for U+0100 onwards (so a space is `Ġ`, U+0120).
enum ByteLevelAlphabet {
    /// Character (below U+0144) → byte, -1 for characters outside the alphabet.
    static let byteOf: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        var next = 0x100
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Int16(b)
            } else {
                table[next] = Int16(b)
                next += 1
            }
        }
        return table
    }()

    /// The bytes `token`'s characters stand for, or nil when one is not in the alphabet.
    static func bytes(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            guard s.value < 0x144, byteOf[Int(s.value)] >= 0 else { return nil }
            out.append(UInt8(byteOf[Int(s.value)]))
        }
        return out
    }
}

/// A byte-level BPE tokenizer also serves encoders (RoBERTa): text → ids without
/// specials, the template adding them.
extension BPETokenizer: EncoderTokenizer {
    public func makeSession() -> any EncoderTokenizerSession { Session(self) }
}

extension BPETokenizer.Session: EncoderTokenizerSession {
    public func tokens(_ text: String) -> [Int32] { encode(text, addSpecialTokens: false) }
}
