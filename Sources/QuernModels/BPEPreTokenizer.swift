import QuernCore

/// What happens to text between the added-token split and the BPE model, as in a
/// byte-level `tokenizer.json`: an optional NFC normalizer, then pre-tokenizer steps that
/// cut it into words, the last of them `ByteLevel` (each word's UTF-8 bytes are what the
/// model merges).
public struct BPEPipeline: Sendable, Equatable {
    /// Normalize each stretch of text between added tokens to NFC first (Qwen2).
    public var nfc: Bool
    public var steps: [Step]

    public init(nfc: Bool = false, steps: [Step]) {
        self.nfc = nfc
        self.steps = steps
    }

    /// One pre-tokenizer, as `tokenizers` names it.
    public enum Step: Sendable, Equatable {
        /// `Split`: cut where a pattern matches, keeping or dropping the matches as
        /// `behavior` says (`invert`: cut where it does not match).
        case split(SplitPattern, SplitBehavior, invert: Bool)
        /// `Digits`: numbers apart, one digit each (`individual`) or one run each.
        case digits(individual: Bool)
        /// `ByteLevel`: a space before each piece that lacks one (`addPrefixSpace`), then
        /// GPT-2's pattern (`useRegex`); the pieces are the model's words.
        case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    }

    /// A Split pattern Quern has a matcher for. Regexes are recognised by their exact
    /// text and matched by hand-written code over UTF-8 (no regex engine), so an unknown
    /// regex is refused rather than guessed at.
    public enum SplitPattern: Sendable, Equatable {
        /// GPT-2's pattern (also what `ByteLevel` applies with `use_regex`).
        case gpt2
        /// Llama 3's (`\p{N}{1,3}`, OpenAI's cl100k) and Qwen2's (`\p{N}`): contractions
        /// in any case, a letter run with one leading non-letter, numbers in runs of at most
        /// `maxDigits`, punctuation with trailing newlines, then whitespace.
        case cl100k(maxDigits: Int)
        /// A `String` pattern: these bytes, literally.
        case literal([UInt8])

        static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        static let llama3Regex =
            #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        static let qwen2Regex =
            #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

        /// Every regex Quern matches, by its text in tokenizer.json.
        static let regexes: [String: SplitPattern] = [
            gpt2Regex: .gpt2, llama3Regex: .cl100k(maxDigits: 3), qwen2Regex: .cl100k(maxDigits: 1)
        ]
    }

    /// What a Split does with the matches (`SplitDelimiterBehavior`).
    public enum SplitBehavior: String, Sendable, Equatable, CaseIterable {
        case removed = "Removed"
        case isolated = "Isolated"
        case mergedWithPrevious = "MergedWithPrevious"
        case mergedWithNext = "MergedWithNext"
        case contiguous = "Contiguous"
    }

    // MARK: reading tokenizer.json

    /// The pipeline of a tokenizer.json's `normalizer` and `pre_tokenizer`; anything Quern
    /// does not implement is refused by name.
    static func decode(normalizer: JSONValue?, preTokenizer: JSONValue?, fail: (String) -> QuernError) throws
        -> BPEPipeline
    {
        var nfc = false
        func normalizers(_ v: JSONValue) throws {
            guard let o = v.objectValue, let type = o["type"]?.stringValue else {
                throw fail("normalizer must be an object with a type, not \(v.typeName)")
            }
            switch type {
            case "NFC": nfc = true
            case "Sequence":
                guard let list = o["normalizers"]?.arrayValue else { throw fail("normalizer Sequence has no list") }
                for n in list { try normalizers(n) }
            default:
                throw fail("normalizer \(type) is not supported (byte-level BPE: none or NFC)")
            }
        }
        if let normalizer, normalizer != .null { try normalizers(normalizer) }

        var steps: [Step] = []
        func preTokenizers(_ v: JSONValue) throws {
            guard let o = v.objectValue, let type = o["type"]?.stringValue else {
                throw fail("pre_tokenizer must be an object with a type, not \(v.typeName)")
            }
            switch type {
            case "Sequence":
                guard let list = o["pretokenizers"]?.arrayValue else {
                    throw fail("pre_tokenizer Sequence has no list")
                }
                for p in list { try preTokenizers(p) }
            case "ByteLevel":
                steps.append(
                    .byteLevel(
                        addPrefixSpace: o["add_prefix_space"]?.boolValue ?? true,
                        useRegex: o["use_regex"]?.boolValue ?? true))
            case "Digits":
                steps.append(.digits(individual: o["individual_digits"]?.boolValue ?? false))
            case "Split":
                let pattern: SplitPattern
                if let regex = o["pattern"]?.objectValue?["Regex"]?.stringValue {
                    guard let known = SplitPattern.regexes[regex] else {
                        throw fail(
                            "pre_tokenizer Split regex \(regex.debugDescription) is not one Quern matches "
                                + "(GPT-2's, Llama 3's or Qwen2's)")
                    }
                    pattern = known
                } else if let literal = o["pattern"]?.objectValue?["String"]?.stringValue {
                    guard !literal.isEmpty else { throw fail("pre_tokenizer Split has an empty String pattern") }
                    pattern = .literal(Array(literal.utf8))
                } else {
                    throw fail("pre_tokenizer Split pattern must be {\"Regex\": ...} or {\"String\": ...}")
                }
                let name = o["behavior"]?.stringValue ?? "?"
                guard let behavior = SplitBehavior(rawValue: name) else {
                    throw fail("pre_tokenizer Split behavior \(name) is not one of tokenizers' five")
                }
                steps.append(.split(pattern, behavior, invert: o["invert"]?.boolValue ?? false))
            default:
                throw fail(
                    "pre_tokenizer \(type) is not supported (byte-level BPE: ByteLevel, Split, Digits, Sequence)")
            }
        }
        if let preTokenizer, preTokenizer != .null { try preTokenizers(preTokenizer) }
        let byteLevels = steps.filter { if case .byteLevel = $0 { true } else { false } }.count
        guard byteLevels == 1, case .byteLevel = steps.last else {
            throw fail(
                "pre_tokenizer must end with one ByteLevel (Quern's BPE is byte-level only); this one has "
                    + "\(byteLevels) ByteLevel step\(byteLevels == 1 ? "" : "s")\(byteLevels == 1 ? ", not last" : "")")
        }
        return BPEPipeline(nfc: nfc, steps: steps)
    }
}

/// The pre-tokenizers of the model families Quern knows, for tokenizers built from parts
/// (a GGUF file's `tokenizer.ggml.pre` names one): each is exactly what the family's
/// tokenizer.json holds.
public enum BPEPreset: String, Sendable, CaseIterable {
    /// GPT-2, SmolLM/SmolLM2, GPT-NeoX and its descendants: ByteLevel with GPT-2's regex.
    case gpt2
    /// Llama 3: Split with the cl100k regex (digits in threes), ByteLevel, and
    /// `ignore_merges` (a word already in the vocabulary is one token).
    case llama3
    /// Qwen2 / Qwen2.5: NFC, Split with the cl100k regex one digit at a time, ByteLevel.
    case qwen2
    /// StarCoder: every digit apart, then ByteLevel with GPT-2's regex.
    case starcoder

    public var pipeline: BPEPipeline {
        switch self {
        case .gpt2: BPEPipeline(steps: [.byteLevel(addPrefixSpace: false, useRegex: true)])
        case .llama3:
            BPEPipeline(steps: [
                .split(.cl100k(maxDigits: 3), .isolated, invert: false),
                .byteLevel(addPrefixSpace: false, useRegex: false)
            ])
        case .qwen2:
            BPEPipeline(
                nfc: true,
                steps: [
                    .split(.cl100k(maxDigits: 1), .isolated, invert: false),
                    .byteLevel(addPrefixSpace: false, useRegex: false)
                ])
        case .starcoder:
            BPEPipeline(steps: [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
        }
    }

    /// Whether the model skips merging a word that is a token already.
    public var ignoresMerges: Bool { self == .llama3 }

    /// `tokenizer.ggml.pre` names (as llama.cpp's converter writes them) → presets. Only
    /// names whose Hugging Face tokenizer.json is known to be one of the presets are here.
    /// "smollm" is GPT-2's pipeline, which is what SmolLM2's tokenizer.json holds; llama.cpp
    /// cuts digits apart first for it, which differs on a few texts (" ²", two spaces
    /// before a number), and Quern follows tokenizer.json.
    public static let ggufNames: [String: BPEPreset] = [
        "gpt-2": .gpt2, "phi-2": .gpt2, "mpt": .gpt2, "olmo": .gpt2, "smollm": .gpt2,
        "llama3": .llama3, "llama-v3": .llama3, "llama-bpe": .llama3,
        "qwen2": .qwen2, "deepseek-r1-qwen": .qwen2,
        "starcoder": .starcoder
    ]

    /// The preset a GGUF file's `tokenizer.ggml.pre` names, or an error naming it.
    public init(ggufPre name: String, source: String) throws {
        guard let preset = Self.ggufNames[name] else {
            throw QuernError(
                .modelInvalid,
                "\(source): tokenizer.ggml.pre \(name.debugDescription) is not a pre-tokenizer Quern knows ("
                    + Self.ggufNames.keys.sorted().joined(separator: ", ") + ")", field: "model")
        }
        self = preset
    }
}

/// Runs a pipeline's pre-tokenizer steps over UTF-8 in a session's arena: pieces are
/// byte ranges (start, end) of `arena`; a step replaces the list of pieces.
struct BPEPreTokenizing {
    let scalars: BPEScalars

    /// The flags and byte length of the scalar at `p[i]`.
    @inline(__always) func scalar(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt8, Int) {
        let b = p[i]
        if b < 0x80 { return (scalars.flags(UInt32(b)), 1) }
        let (v, n) = UTF8Scalars.decode(p, i)
        return (scalars.flags(v), n)
    }

    /// The end of the run of scalars from `i` whose flags meet `test`.
    @inline(__always) func run(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, _ test: (UInt8) -> Bool) -> Int {
        var k = i
        while k < end {
            let (f, n) = scalar(p, k)
            if !test(f) { break }
            k += n
        }
        return k
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which holds an apostrophe); in any case for the
    /// cl100k patterns, where Oniguruma's case folding also lets U+017F (long s) be an s.
    func contraction(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, anyCase: Bool) -> Int? {
        guard i + 1 < end else { return nil }
        let fold: (UInt8) -> UInt8 = anyCase ? { $0 | 0x20 } : { $0 }
        let a = p[i + 1]
        switch fold(a) {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            if anyCase || a >= 0x61 { return i + 2 }
        case UInt8(ascii: "r"), UInt8(ascii: "v"), UInt8(ascii: "l"):
            guard i + 2 < end, anyCase || a >= 0x61 else { return nil }
            let b = fold(p[i + 2])
            if (fold(a) == UInt8(ascii: "l") && b == UInt8(ascii: "l")) || (fold(a) != UInt8(ascii: "l") && b == 0x65) {
                return i + 3
            }
        default:
            if anyCase && a == 0xC5 && i + 2 < end && p[i + 2] == 0xBF { return i + 3 }
        }
        return nil
    }

    /// The end of `\s+(?!\S)|\s+` at `i`: a whitespace run, less its last scalar when
    /// something follows it (that one goes with the next word), unless it is alone.
    func whitespace(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        var k = i, last = i
        while k < end {
            let (f, n) = scalar(p, k)
            if f & BPEUnicode.space == 0 { break }
            last = k
            k += n
        }
        return k == end || last == i ? k : last
    }

    /// The end of GPT-2's match at `i`; the pattern matches at every position.
    func gpt2(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let b = p[i]
        if b == 0x27, let e = contraction(p, i, end, anyCase: false) { return e }
        var j = i
        if b == 0x20 && i + 1 < end {
            let (next, _) = scalar(p, i + 1)
            if next & BPEUnicode.space == 0 { j = i + 1 }  // ` ?` before letters, numbers or other
        }
        let (f, _) = scalar(p, j)
        if f & BPEUnicode.letter != 0 { return run(p, j, end) { $0 & BPEUnicode.letter != 0 } }
        if f & BPEUnicode.number != 0 { return run(p, j, end) { $0 & BPEUnicode.number != 0 } }
        let wordish = BPEUnicode.space | BPEUnicode.letter | BPEUnicode.number
        if f & wordish == 0 { return run(p, j, end) { $0 & wordish == 0 } }
        return whitespace(p, i, end)
    }

    /// The end of the cl100k pattern's match at `i` (Llama 3 with `maxDigits` 3, Qwen2
    /// with 1); it too matches at every position.
    func cl100k(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int, maxDigits: Int) -> Int {
        let b = p[i]
        if b == 0x27, let e = contraction(p, i, end, anyCase: true) { return e }
        let letters: (UInt8) -> Bool = { $0 & BPEUnicode.letter != 0 }
        let (f, n) = scalar(p, i)
        if f & BPEUnicode.letter != 0 { return run(p, i, end, letters) }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if f & BPEUnicode.number == 0 && b != 0x0D && b != 0x0A && i + n < end {
            let (next, _) = scalar(p, i + n)
            if next & BPEUnicode.letter != 0 { return run(p, i + n, end, letters) }
        }
        // \p{N}{1,maxDigits}
        if f & BPEUnicode.number != 0 {
            var k = i, count = 0
            while k < end && count < maxDigits {
                let (g, m) = scalar(p, k)
                if g & BPEUnicode.number == 0 { break }
                k += m
                count += 1
            }
            return k
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let wordish = BPEUnicode.space | BPEUnicode.letter | BPEUnicode.number
        var j = i
        if b == 0x20 && i + 1 < end && scalar(p, i + 1).0 & wordish == 0 { j = i + 1 }
        if scalar(p, j).0 & wordish == 0 {
            var k = run(p, j, end) { $0 & wordish == 0 }
            while k < end && (p[k] == 0x0D || p[k] == 0x0A) { k += 1 }
            return k
        }
        // `\s*[\r\n]+`: whitespace up to its last newline; else `\s+(?!\S)|\s+`.
        var k = i, newline = -1
        while k < end {
            let (g, m) = scalar(p, k)
            if g & BPEUnicode.space == 0 { break }
            if p[k] == 0x0D || p[k] == 0x0A { newline = k }
            k += m
        }
        return newline >= 0 ? newline + 1 : whitespace(p, i, end)
    }

    /// The next match of `pattern` in `[from, end)` of the piece `[start, end)`.
    func nextMatch(_ pattern: BPEPipeline.SplitPattern, _ p: UnsafePointer<UInt8>, from: Int, end: Int)
        -> (Int, Int)?
    {
        guard from < end else { return nil }
        switch pattern {
        case .gpt2: return (from, gpt2(p, from, end))
        case .cl100k(let maxDigits): return (from, cl100k(p, from, end, maxDigits: maxDigits))
        case .literal(let bytes):
            var i = from
            while i + bytes.count <= end {
                var same = true
                for j in 0..<bytes.count where p[i + j] != bytes[j] {
                    same = false
                    break
                }
                if same { return (i, i + bytes.count) }
                i += 1
            }
            return nil
        }
    }

    /// Applies one step to every piece, appending the new pieces to `out`. `arena` may
    /// grow (ByteLevel's prefix space), so pieces are offsets, never pointers.
    func apply(
        _ step: BPEPipeline.Step, _ pieces: [(Int, Int)], arena: inout [UInt8], into out: inout [(Int, Int)],
        events: inout [(Int, Int, Bool)]
    ) {
        switch step {
        case .byteLevel(let addPrefixSpace, let useRegex):
            for var (start, end) in pieces {
                if addPrefixSpace && arena[start] != 0x20 {
                    let copy = arena.count
                    arena.append(0x20)
                    arena.append(contentsOf: arena[start..<end])
                    (start, end) = (copy, arena.count)
                }
                if useRegex {
                    split(.gpt2, .isolated, invert: false, start, end, arena, into: &out, events: &events)
                } else {
                    out.append((start, end))
                }
            }
        case .split(let pattern, let behavior, let invert):
            for (start, end) in pieces {
                split(pattern, behavior, invert: invert, start, end, arena, into: &out, events: &events)
            }
        case .digits(let individual):
            for (start, end) in pieces {
                events.removeAll(keepingCapacity: true)
                arena.withUnsafeBufferPointer { a in
                    let p = a.baseAddress!
                    var i = start, gap = start
                    while i < end {
                        let (f, n) = scalar(p, i)
                        if f & BPEUnicode.numeric != 0 {
                            if gap < i { events.append((gap, i, false)) }
                            events.append((i, i + n, true))
                            gap = i + n
                        }
                        i += n
                    }
                    if gap < end { events.append((gap, end, false)) }
                }
                Self.resolve(&events, individual ? .isolated : .contiguous, into: &out)
            }
        }
    }

    /// Cuts one piece at the matches of `pattern`.
    func split(
        _ pattern: BPEPipeline.SplitPattern, _ behavior: BPEPipeline.SplitBehavior, invert: Bool, _ start: Int,
        _ end: Int, _ arena: [UInt8], into out: inout [(Int, Int)], events: inout [(Int, Int, Bool)]
    ) {
        events.removeAll(keepingCapacity: true)
        arena.withUnsafeBufferPointer { a in
            let p = a.baseAddress!
            var i = start, previous = start
            while let (s, e) = nextMatch(pattern, p, from: i, end: end) {
                if previous != s { events.append((previous, s, invert)) }
                events.append((s, e, !invert))
                previous = e
                i = e > s ? e : e + 1
            }
            if previous != end { events.append((previous, end, invert)) }
        }
        if behavior == .isolated {
            for (s, e, _) in events { out.append((s, e)) }
        } else {
            Self.resolve(&events, behavior, into: &out)
        }
    }

    /// Turns (range, is a match) events into pieces as `SplitDelimiterBehavior` says.
    static func resolve(
        _ events: inout [(Int, Int, Bool)], _ behavior: BPEPipeline.SplitBehavior, into out: inout [(Int, Int)]
    ) {
        let mark = out.count
        var previousMatch = false
        switch behavior {
        case .isolated:
            for (s, e, _) in events { out.append((s, e)) }
        case .removed:
            for (s, e, match) in events where !match { out.append((s, e)) }
        case .contiguous:
            for (s, e, match) in events {
                if match == previousMatch && out.count > mark { out[out.count - 1].1 = e } else { out.append((s, e)) }
                previousMatch = match
            }
        case .mergedWithPrevious:
            for (s, e, match) in events {
                if match && !previousMatch && out.count > mark { out[out.count - 1].1 = e } else { out.append((s, e)) }
                previousMatch = match
            }
        case .mergedWithNext:
            for (s, e, match) in events.reversed() {
                if match && !previousMatch && out.count > mark { out[out.count - 1].0 = s } else { out.append((s, e)) }
                previousMatch = match
            }
            out[mark...].reverse()
        }
    }
}
