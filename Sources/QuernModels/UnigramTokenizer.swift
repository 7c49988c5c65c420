import QuernCore

/// A SentencePiece **Unigram** tokenizer read from Hugging Face's `tokenizer.json` (the
/// tokenizer of XLM-RoBERTa, multilingual-e5, bge-m3, paraphrase-multilingual), giving
/// the ids the `tokenizers` library gives: added tokens matched in the raw text (with
/// `lstrip` / `rstrip`), each stretch between them normalized (`TextNormalizer`:
/// SentencePiece's precompiled rules, NFKC, Strip, Replace…) and pre-tokenized
/// (`MetaspacePreTokenizer`), each word segmented by Viterbi over the pieces' log
/// probabilities (unknown characters scored `min − 10` and runs of them fused into one
/// unknown token, or spelled as `<0xXX>` byte pieces with `byte_fallback`), then the
/// post-processor's template.
public struct UnigramTokenizer: EncoderTokenizer {
    let normalizer: TextNormalizer?
    let preTokenizer: MetaspacePreTokenizer
    let trie: PieceTrie
    let scores: [Double]
    let unknownID: Int32
    let unknownScore: Double
    /// `<0xXX>` piece ids by byte, when `byte_fallback` (nil entries: that byte has none).
    let byteIDs: [Int32?]?
    /// Matched verbatim in the raw text, as the BPE tokenizer matches its own (both are
    /// `tokenizers`' AddedVocabulary: leftmost, longest first, `lstrip`/`rstrip`).
    let added: BPEAddedTokens
    public let template: EncoderTemplate
    public let defaultMaxLength: Int?
    public let vocabularySize: Int

    /// From `tokenizer.json` bytes whose `model.type` is Unigram.
    public init(tokenizerJSON bytes: [UInt8], source: String = "tokenizer.json") throws {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        let root: JSONObject
        do {
            guard let o = try JSONParser.parse(bytes).objectValue else { throw fail("not a JSON object") }
            root = o
        } catch let e as JSONSyntaxError {
            throw fail("not valid JSON: \(e)")
        }
        try self.init(root: root, fail: fail)
    }

    init(root: JSONObject, fail: (String) -> QuernError) throws {
        guard let model = root["model"]?.objectValue, model["type"]?.stringValue == "Unigram" else {
            throw fail("model type \(root["model"]?.objectValue?["type"]?.stringValue ?? "?") is not Unigram")
        }
        guard let vocab = model["vocab"]?.arrayValue, !vocab.isEmpty else {
            throw fail("model.vocab must be a non-empty list of [piece, score]")
        }
        guard vocab.count < Int(Int32.max) else { throw fail("model.vocab has too many pieces") }
        var pieces: [[UInt8]] = [], scores: [Double] = []
        pieces.reserveCapacity(vocab.count)
        scores.reserveCapacity(vocab.count)
        for (i, entry) in vocab.enumerated() {
            guard let pair = entry.arrayValue, pair.count == 2, let piece = pair[0].stringValue,
                let score = pair[1].doubleValue, score.isFinite
            else { throw fail("model.vocab[\(i)] is not [piece, finite score]") }
            pieces.append(Array(piece.utf8))
            scores.append(score)
        }
        // As `tokenizers` builds its map: a repeated piece resolves to its last id.
        var byPiece: [[UInt8]: Int32] = [:]
        for (i, p) in pieces.enumerated() { byPiece[p] = Int32(i) }
        func id(_ v: JSONValue?, _ what: String) throws -> Int32 {
            guard let i = v?.intValue, let id = Int32(exactly: i), id >= 0 else {
                throw fail("\(what) must be an integer id from 0 to \(Int32.max)")
            }
            return id
        }
        guard let unk = model["unk_id"], unk != .null else {
            throw fail("model.unk_id is null: a Unigram model without an unknown piece cannot encode every text")
        }
        unknownID = try id(unk, "model.unk_id")
        guard Int(unknownID) < pieces.count else { throw fail("model.unk_id \(unknownID) is not a piece") }
        self.scores = scores
        unknownScore = (scores.min() ?? 0) - 10
        trie = PieceTrie(pieces.indices.map { (pieces[$0], byPiece[pieces[$0]]!) })
        if model["byte_fallback"]?.boolValue == true {
            byteIDs = (0..<256).map { b in
                let hex = Array("0123456789ABCDEF".utf8)
                return byPiece[Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]]
            }
        } else {
            byteIDs = nil
        }

        var added: [(text: String, id: Int32, token: BPETokenizer.AddedToken)] = []
        var emitted = pieces.count
        for t in root["added_tokens"]?.arrayValue ?? [] {
            guard let o = t.objectValue, let content = o["content"]?.stringValue, !content.isEmpty else { continue }
            let i = try id(o["id"], "added token \(content)")
            if o["single_word"]?.boolValue == true {
                throw fail("added token \(content) has single_word, which Quern does not support")
            }
            if o["normalized"]?.boolValue == true && o["special"]?.boolValue != true {
                throw fail("added token \(content) is normalized, which Quern does not support")
            }
            let tokenID = byPiece[Array(content.utf8)] ?? i
            emitted = max(emitted, Int(tokenID) + 1)
            let token = BPETokenizer.AddedToken(
                content, special: o["special"]?.boolValue ?? false, lstrip: o["lstrip"]?.boolValue ?? false,
                rstrip: o["rstrip"]?.boolValue ?? false, normalized: false)
            added.append((content, tokenID, token))
        }
        self.added = BPEAddedTokens(added)
        normalizer = try TextNormalizer.parse(root["normalizer"], fail: fail)
        preTokenizer = try MetaspacePreTokenizer.parse(root["pre_tokenizer"], fail: fail)
        template = try EncoderTemplate.parse(root["post_processor"]?.objectValue, id: id, fail: fail)
        for item in template.single + template.pair {
            if case .special(let ids, _) = item { emitted = max(emitted, Int(ids.max() ?? 0) + 1) }
        }
        vocabularySize = emitted
        defaultMaxLength = root["truncation"]?.objectValue?["max_length"]?.intValue.map(Int.init)
    }

    public func makeSession() -> any EncoderTokenizerSession { Session(self) }

    /// Per-thread state: a cache of words already segmented (texts repeat words), and the
    /// scalar tables the added tokens' `lstrip`/`rstrip` consult.
    public final class Session: EncoderTokenizerSession {
        let tokenizer: UnigramTokenizer
        /// Keyed by bytes: Swift's String equality is canonical equivalence, and a
        /// decomposed word must not share a precomposed one's pieces.
        var cache: [[UInt8]: [Int32]] = [:]
        static let cacheLimit = 1 << 16
        let scalars = BPEScalars(nfc: false)
        var splits: [(Int, Int, Int32)] = []

        public init(_ tokenizer: UnigramTokenizer) { self.tokenizer = tokenizer }

        public func tokens(_ text: String) -> [Int32] {
            var out: [Int32] = []
            var text = text
            text.withUTF8 { u in
                guard let base = u.baseAddress else { return }
                guard !tokenizer.added.isEmpty else { return words(base, u.count, startsAtZero: true, into: &out) }
                tokenizer.added.split(base, u.count, scalars: scalars, into: &splits)
                for (start, end, id) in splits {
                    if id >= 0 {
                        out.append(id)
                    } else {
                        words(base + start, end - start, startsAtZero: start == 0, into: &out)
                    }
                }
            }
            return out
        }

        /// One stretch of raw text between added tokens: normalized, pre-tokenized, and
        /// each word segmented.
        func words(_ p: UnsafePointer<UInt8>, _ n: Int, startsAtZero: Bool, into out: inout [Int32]) {
            let t = tokenizer
            let raw = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
            let normalized = t.normalizer?.apply(raw) ?? raw
            if normalized.isEmpty { return }
            for (word, _) in t.preTokenizer.split([(Array(normalized.utf8), startsAtZero)]) where !word.isEmpty {
                if let ids = cache[word] {
                    out += ids
                    continue
                }
                let ids = word.withUnsafeBufferPointer { t.segment($0) }
                // Short words only: a text with no spaces (CJK, a URL) is one long word.
                guard word.count < 256 else {
                    out += ids
                    continue
                }
                if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
                cache[word] = ids
                out += ids
            }
        }
    }

    /// One word's pieces: the best-scoring segmentation (Viterbi), ties to the earlier
    /// found (shorter) piece, as `tokenizers`' optimized encoder.
    func segment(_ u: UnsafeBufferPointer<UInt8>) -> [Int32] {
        do {
            let n = u.count
            guard n > 0 else { return [] }
            var best = [Double](repeating: 0, count: n + 1)
            var from = [Int](repeating: -1, count: n + 1)
            var ids = [Int32](repeating: -1, count: n + 1)
            var start = 0
            while start < n {
                let lead = u[start]
                let charLength = min(n - start, lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4)
                let here = best[start]
                var single = false
                trie.prefixes(u, from: start) { length, id in
                    let end = start + length, score = here + scores[Int(id)]
                    if from[end] < 0 || score > best[end] {
                        best[end] = score
                        from[end] = start
                        ids[end] = id
                    }
                    if length == charLength { single = true }
                }
                if !single {
                    let end = start + charLength, score = here + unknownScore
                    if from[end] < 0 || score > best[end] {
                        best[end] = score
                        from[end] = start
                        ids[end] = unknownID
                    }
                }
                start += charLength
            }
            // Back from the end; a run of unknown characters becomes one unknown token
            // (or, with byte_fallback, its bytes' pieces when every byte has one).
            var out: [Int32] = []
            var end = n, runEnd = -1, runStart = 0
            func emitRun() {
                if let byteIDs {
                    let spelled = (runStart..<runEnd).compactMap { byteIDs[Int(u[$0])] }
                    if spelled.count == runEnd - runStart {
                        out += spelled.reversed()
                        runEnd = -1
                        return
                    }
                }
                out.append(unknownID)
                runEnd = -1
            }
            while end > 0 {
                let s = from[end]
                if ids[end] == unknownID {
                    if runEnd < 0 { runEnd = end }
                    runStart = s
                } else {
                    if runEnd >= 0 { emitRun() }
                    out.append(ids[end])
                }
                end = s
            }
            if runEnd >= 0 { emitRun() }
            return out.reversed()
        }
    }
}

/// Byte trie over the pieces, for the common-prefix searches of the Viterbi pass: the
/// root's children in a 256-entry table, deeper ones in sorted edge lists.
struct PieceTrie: Sendable {
    private var rootChild = [Int32](repeating: -1, count: 256)
    private var edgeStart: [Int32] = []
    private var edgeCount: [Int32] = []
    private var edgeBytes: [UInt8] = []
    private var edgeTarget: [Int32] = []
    private var value: [Int32] = []

    init(_ entries: [([UInt8], Int32)]) {
        var children: [[UInt8: Int32]] = [[:]]
        var values: [Int32] = [-1]
        for (key, id) in entries where !key.isEmpty {
            var node = 0
            for b in key {
                if let next = children[node][b] {
                    node = Int(next)
                } else {
                    children.append([:])
                    values.append(-1)
                    children[node][b] = Int32(children.count - 1)
                    node = children.count - 1
                }
            }
            values[node] = id
        }
        value = values
        for (b, c) in children[0] { rootChild[Int(b)] = c }
        for c in children {
            edgeStart.append(Int32(edgeBytes.count))
            edgeCount.append(Int32(c.count))
            for (b, t) in c.sorted(by: { $0.key < $1.key }) {
                edgeBytes.append(b)
                edgeTarget.append(t)
            }
        }
    }

    private func child(_ node: Int, _ b: UInt8) -> Int {
        if node == 0 { return Int(rootChild[Int(b)]) }
        var lo = Int(edgeStart[node]), hi = lo + Int(edgeCount[node])
        while lo < hi {
            let mid = (lo + hi) / 2
            if edgeBytes[mid] < b { lo = mid + 1 } else { hi = mid }
        }
        return lo < Int(edgeStart[node]) + Int(edgeCount[node]) && edgeBytes[lo] == b ? Int(edgeTarget[lo]) : -1
    }

    /// Every piece that starts `u` at `start`, shortest first: (length in bytes, id).
    func prefixes(_ u: UnsafeBufferPointer<UInt8>, from start: Int, _ body: (Int, Int32) -> Void) {
        var node = 0, i = start
        while i < u.count {
            node = child(node, u[i])
            if node < 0 { return }
            i += 1
            if value[node] >= 0 { body(i - start, value[node]) }
        }
    }
}
