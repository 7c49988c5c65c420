import QuernCore

/// A text encoder's tokenizer, whatever its model (WordPiece, Unigram): text → ids with
/// no specials, plus the template that adds them. The families that run encoders
/// (`Bert`, `Roberta`) take any of them.
public protocol EncoderTokenizer: Sendable {
    /// Every id it can emit is below this (checked against the model's embeddings).
    var vocabularySize: Int { get }
    /// The truncation tokenizer.json asks for, if any (specials included).
    var defaultMaxLength: Int? { get }
    var template: EncoderTemplate { get }
    /// Per-thread state (caches, scratch buffers): each worker makes its own.
    func makeSession() -> any EncoderTokenizerSession
}

public protocol EncoderTokenizerSession: AnyObject {
    /// The ids of `text` alone: no specials, no truncation.
    func tokens(_ text: String) -> [Int32]
}

/// The post-processor: where the special tokens go around one sequence and around a
/// pair, and the token type of each part, as tokenizer.json's `TemplateProcessing`
/// (or `BertProcessing` / `RobertaProcessing`) says. Truncation keeps room for them.
public struct EncoderTemplate: Sendable, Equatable {
    public enum Item: Sendable, Equatable {
        case special([Int32], type: Int32)
        case first(type: Int32)
        case second(type: Int32)
    }

    public let single: [Item]
    public let pair: [Item]

    public init(single: [Item], pair: [Item]) {
        self.single = single
        self.pair = pair
    }

    /// BERT's `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, B's part of type `pairType`.
    public static func bert(cls: Int32?, sep: Int32?, pairType: Int32 = 1) -> EncoderTemplate {
        let c = cls.map { [Item.special([$0], type: 0)] } ?? [], s = sep.map { [Item.special([$0], type: 0)] } ?? []
        let s2 = sep.map { [Item.special([$0], type: pairType)] } ?? []
        return EncoderTemplate(
            single: c + [.first(type: 0)] + s, pair: c + [.first(type: 0)] + s + [.second(type: pairType)] + s2)
    }

    static func added(_ items: [Item]) -> Int {
        items.reduce(0) {
            if case .special(let ids, _) = $1 { return $0 + ids.count }
            return $0
        }
    }

    /// Special tokens around one sequence, and around a pair.
    public var addedSingle: Int { Self.added(single) }
    public var addedPair: Int { Self.added(pair) }

    /// The largest token type the single-text template gives (a model needs that many
    /// type embeddings; a pair's second type may exceed a one-type model's, as in
    /// `transformers`, where such a model cannot take pairs).
    public var maxTypeID: Int32 {
        single.map { item -> Int32 in
            switch item {
            case .special(_, let t), .first(let t), .second(let t): t
            }
        }.max() ?? 0
    }

    /// Every id the template adds.
    public var specialIDs: [Int32] {
        (single + pair).flatMap { item -> [Int32] in
            if case .special(let ids, _) = item { return ids }
            return []
        }
    }

    /// Where each window of `chunks` starts and ends among `count` text tokens, for
    /// windows of `width` text tokens overlapping by `overlap`.
    public static func windows(count: Int, width: Int, overlap: Int) -> [Range<Int>] {
        let stride = max(1, width - overlap)
        var out: [Range<Int>] = []
        var start = 0
        while true {
            out.append(start..<min(count, start + width))
            if start + width >= count { return out }
            start += stride
        }
    }

    func build(_ items: [Item], _ a: ArraySlice<Int32>, _ b: ArraySlice<Int32>) -> TokenSequence {
        var ids: [Int32] = [], types: [Int32] = []
        ids.reserveCapacity(a.count + b.count + 4)
        types.reserveCapacity(a.count + b.count + 4)
        for item in items {
            switch item {
            case .special(let s, let t):
                ids += s
                types += [Int32](repeating: t, count: s.count)
            case .first(let t):
                ids += a
                types += [Int32](repeating: t, count: a.count)
            case .second(let t):
                ids += b
                types += [Int32](repeating: t, count: b.count)
            }
        }
        return TokenSequence(ids: ids, typeIDs: types)
    }

    /// One text's ids with the specials, cut to `maxLength` tokens in all when given.
    public func encode(_ ids: [Int32], maxLength: Int? = nil) -> TokenSequence {
        var keep = ids.count
        if let maxLength { keep = min(keep, max(0, maxLength - addedSingle)) }
        var s = build(single, ids[0..<keep], [])
        s.truncated = ids.count - keep
        return s
    }

    /// A pair (cross-encoders), cut longest-first as `tokenizers` does.
    public func encode(_ a: [Int32], _ b: [Int32], maxLength: Int? = nil) -> TokenSequence {
        var (keepA, keepB) = (a.count, b.count)
        if let maxLength {
            (keepA, keepB) = Self.longestFirst(a.count, b.count, budget: max(0, maxLength - addedPair))
        }
        var s = build(pair, a[0..<keepA], b[0..<keepB])
        s.truncated = a.count + b.count - keepA - keepB
        return s
    }

    /// The ids in windows of `tokens` (specials and `prefix` included) that overlap by
    /// `overlap` text tokens, each with the range of `ids` it holds; one window (perhaps
    /// empty of text) for a short text.
    public func chunks(_ ids: [Int32], prefix: [Int32] = [], tokens: Int, overlap: Int) -> [(
        TokenSequence, Range<Int>
    )] {
        let width = max(1, tokens - addedSingle - prefix.count)
        return Self.windows(count: ids.count, width: width, overlap: overlap).map { r in
            (build(single, ArraySlice(prefix + ids[r]), []), r)
        }
    }

    /// How many tokens of each sequence a pair keeps within `budget`, as `tokenizers`'
    /// LongestFirst: a sequence no longer than half the budget is kept whole and the other
    /// gets the rest; otherwise the longer gets the larger half (the second on a tie).
    static func longestFirst(_ a: Int, _ b: Int, budget: Int) -> (Int, Int) {
        guard a + b > budget else { return (a, b) }
        let half = budget / 2, larger = budget - half
        if a > b { return b <= half ? (budget - b, b) : (larger, half) }
        return a <= half ? (a, budget - a) : (half, larger)
    }

    /// tokenizer.json's `post_processor` (nil: none, so no specials). `id` turns a token
    /// or a JSON id into the vocabulary's id; `fail` explains what is wrong.
    static func parse(
        _ p: JSONObject?, id: (JSONValue?, String) throws -> Int32, fail: (String) -> QuernError
    ) throws -> EncoderTemplate {
        guard let p else {
            return EncoderTemplate(single: [.first(type: 0)], pair: [.first(type: 0), .second(type: 0)])
        }
        func pairID(_ key: String) throws -> Int32 {
            guard let a = p[key]?.arrayValue, a.count == 2 else {
                throw fail("post_processor \(key) must be [token, id]")
            }
            return try id(a[1], "post_processor \(key)")
        }
        func typeID(_ o: JSONObject) throws -> Int32 {
            let v = o["type_id"]?.intValue ?? 0
            guard v >= 0, v < 1 << 16 else { throw fail("post_processor template type_id \(v) is not a token type") }
            return Int32(v)
        }
        switch p["type"]?.stringValue {
        case "TemplateProcessing":
            func items(_ key: String) throws -> [Item] {
                try (p[key]?.arrayValue ?? []).map { item in
                    if let s = item.objectValue?["SpecialToken"]?.objectValue {
                        guard let name = s["id"]?.stringValue,
                            let ids = p["special_tokens"]?.objectValue?[name]?.objectValue?["ids"]?.arrayValue,
                            !ids.isEmpty
                        else { throw fail("template special token \(s["id"]?.stringValue ?? "?") has no ids") }
                        return .special(
                            try ids.map { try id($0, "template special token \(name)") }, type: try typeID(s))
                    }
                    if let s = item.objectValue?["Sequence"]?.objectValue {
                        let t = try typeID(s)
                        switch s["id"]?.stringValue {
                        case "A": return .first(type: t)
                        case "B": return .second(type: t)
                        default: throw fail("template sequence \(s["id"]?.stringValue ?? "?") is neither A nor B")
                        }
                    }
                    throw fail("post_processor template \(key) has an item that is neither SpecialToken nor Sequence")
                }
            }
            let single = try items("single"), pair = try items("pair")
            guard
                single.filter({ $0 == .first(type: 0) || { if case .first = $0 { true } else { false } }($0) }).count
                    == 1,
                pair.contains(where: { if case .second = $0 { true } else { false } })
            else { throw fail("post_processor template must place $A once in single and $B in pair") }
            return EncoderTemplate(single: single, pair: pair)
        case "BertProcessing":
            return .bert(cls: try pairID("cls"), sep: try pairID("sep"))
        case "RobertaProcessing":
            // <s> A </s> and <s> A </s></s> B </s>; RoBERTa has no token types.
            let cls = try pairID("cls"), sep = try pairID("sep")
            return EncoderTemplate(
                single: [.special([cls], type: 0), .first(type: 0), .special([sep], type: 0)],
                pair: [
                    .special([cls], type: 0), .first(type: 0), .special([sep, sep], type: 0), .second(type: 0),
                    .special([sep], type: 0)
                ])
        case let t:
            throw fail(
                "post_processor \(t ?? "?") is not supported (TemplateProcessing, BertProcessing, RobertaProcessing)")
        }
    }
}

extension EncoderTokenizerSession {
    func encode(_ text: String, _ template: EncoderTemplate, maxLength: Int?) -> TokenSequence {
        template.encode(tokens(text), maxLength: maxLength)
    }
}

extension EncoderTokenizerSession {
    /// For each token of `text` (as `tokens` gives them, `ids`, or as they follow a prompt
    /// that ends in a space), the space-separated word it comes from, in Unicode scalars;
    /// nil when tokenizing word by word (each with the spaces before it, which Metaspace
    /// turns into its `▁`) does not give `ids`.
    public func wordSpans(_ text: String, _ ids: [Int32]) -> [Range<Int>]? {
        let scalars = Array(text.unicodeScalars)
        var spans: [Range<Int>] = []
        spans.reserveCapacity(ids.count)
        var i = 0
        while i < scalars.count {
            let lead = i
            while i < scalars.count && scalars[i] == " " { i += 1 }
            let word = i
            while i < scalars.count && scalars[i] != " " { i += 1 }
            let piece = String(String.UnicodeScalarView(scalars[lead..<i]))
            func fits(_ t: [Int32]) -> Bool {
                spans.count + t.count <= ids.count && ids[spans.count..<(spans.count + t.count)].elementsEqual(t)
            }
            var t = tokens(piece)
            // After a prompt ending in a space, the first word is tokenized as one that
            // follows a space (ByteLevel's `Ġword`).
            if !fits(t) && spans.isEmpty && lead == word { t = tokens(" " + piece) }
            guard fits(t) else { return nil }
            spans += repeatElement(word..<i, count: t.count)
        }
        return spans.count == ids.count ? spans : nil
    }
}
