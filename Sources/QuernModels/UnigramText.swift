import Foundation
import QuernCore

/// tokenizer.json's `normalizer` for SentencePiece-style tokenizers, applied to each
/// stretch of text between special tokens, as `tokenizers` applies it.
enum TextNormalizer: @unchecked Sendable {
    /// SentencePiece's own rules, compiled into the model (`precompiled_charsmap`).
    case precompiled(PrecompiledCharsmap)
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)
    /// A literal or a regular expression (Swift's engine: the patterns tokenizer files
    /// use, `" {2,}"`, mean the same in Oniguruma's).
    case replace(literal: String?, regex: Regex<AnyRegexOutput>?, content: String)
    /// A regex that is one ASCII character repeated at least `minimum` times (`" {2,}"`,
    /// `" +"`): the converters' pattern, replaced without the regex engine.
    case replaceRun(byte: UInt8, minimum: Int, content: String)
    case prepend(String)
    case sequence([TextNormalizer])

    static func parse(_ v: JSONValue?, fail: (String) -> QuernError) throws -> TextNormalizer? {
        guard let v, v != .null else { return nil }
        guard let o = v.objectValue, let type = o["type"]?.stringValue else {
            throw fail("normalizer is not an object")
        }
        switch type {
        case "Sequence":
            return .sequence(try (o["normalizers"]?.arrayValue ?? []).compactMap { try parse($0, fail: fail) })
        case "Precompiled":
            guard let b64 = o["precompiled_charsmap"]?.stringValue else {
                // A converter writes null when the SentencePiece model has no rules.
                return .sequence([])
            }
            guard let data = Data(base64Encoded: b64) else { throw fail("precompiled_charsmap is not base64") }
            return .precompiled(try PrecompiledCharsmap(Array(data), fail: fail))
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Strip":
            return .strip(left: o["strip_left"]?.boolValue ?? true, right: o["strip_right"]?.boolValue ?? true)
        case "Prepend":
            guard let p = o["prepend"]?.stringValue else { throw fail("Prepend normalizer has no prepend string") }
            return .prepend(p)
        case "Replace":
            guard let content = o["content"]?.stringValue, let pattern = o["pattern"]?.objectValue else {
                throw fail("Replace normalizer needs pattern and content")
            }
            if let s = pattern["String"]?.stringValue { return .replace(literal: s, regex: nil, content: content) }
            guard let r = pattern["Regex"]?.stringValue else {
                throw fail("Replace pattern is neither String nor Regex")
            }
            if let (byte, minimum) = runPattern(r) {
                return .replaceRun(byte: byte, minimum: minimum, content: content)
            }
            do {
                return .replace(literal: nil, regex: try Regex(r), content: content)
            } catch {
                throw fail("Replace pattern /\(r)/ is not a regular expression Quern reads: \(error)")
            }
        default:
            throw fail(
                "normalizer \(type) is not supported (Sequence, Precompiled, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend)"
            )
        }
    }

    /// `X{n,}` or `X+` with X one ASCII character that is not a regex operator.
    static func runPattern(_ r: String) -> (UInt8, Int)? {
        let u = Array(r.utf8)
        guard u.count >= 2, u[0] < 0x80, !Array("\\^$.|?*+()[]{}".utf8).contains(u[0]) else { return nil }
        if u.count == 2 && u[1] == UInt8(ascii: "+") { return (u[0], 1) }
        guard u.count >= 4, u[1] == UInt8(ascii: "{"), u.last == UInt8(ascii: "}"),
            u[u.count - 2] == UInt8(ascii: ","),
            let n = Int(String(decoding: u[2..<(u.count - 2)], as: UTF8.self)), n >= 1
        else { return nil }
        return (u[0], n)
    }

    func apply(_ s: String) -> String {
        switch self {
        case .replaceRun(let byte, let minimum, let content):
            let u = Array(s.utf8), c = Array(content.utf8)
            guard u.contains(byte) else { return s }
            var out: [UInt8] = []
            out.reserveCapacity(u.count)
            var i = 0
            while i < u.count {
                guard u[i] == byte else {
                    out.append(u[i])
                    i += 1
                    continue
                }
                var j = i
                while j < u.count && u[j] == byte { j += 1 }
                if j - i >= minimum { out += c } else { out += u[i..<j] }
                i = j
            }
            return String(decoding: out, as: UTF8.self)
        case .precompiled(let map): return map.normalize(s)
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        // Foundation's NFKC leaves some pairs uncomposed that NFC composes (half-width
        // ｶﾞ → カ + U+3099 instead of ガ); NFKC's output is NFC by definition, so NFC
        // after it only completes it.
        case .nfkc: return s.precomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase:
            // Character by character, as `tokenizers` does (no final-sigma context).
            var out = ""
            for c in s.unicodeScalars { out += c.properties.lowercaseMapping }
            return out
        case .strip(let left, let right):
            let ends = (s.unicodeScalars.first, s.unicodeScalars.last)
            if ends.0?.properties.isWhitespace != true && ends.1?.properties.isWhitespace != true { return s }
            var scalars = Substring(s).unicodeScalars[...]
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .replace(let literal, let regex, let content):
            // Scalar by scalar, not Character by Character (see Metaspace).
            if let literal {
                if literal.isEmpty { return s }
                let pattern = Regex<Substring>(verbatim: literal).matchingSemantics(.unicodeScalar)
                return s.replacing(pattern, with: content)
            }
            return s.replacing(regex!.matchingSemantics(.unicodeScalar), with: content)
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .sequence(let steps): return steps.reduce(s) { $1.apply($0) }
        }
    }
}

/// SentencePiece's compiled normalization rules: a darts-clone double-array trie over
/// UTF-8 whose values point into a pool of NUL-terminated replacements. Read as
/// `tokenizers` reads it: each grapheme cluster shorter than 6 bytes is looked up whole
/// (the first, shortest, prefix that matches replaces the whole cluster), longer ones
/// and clusters with no match scalar by scalar.
struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let pool: [UInt8]

    init(_ bytes: [UInt8], fail: (String) -> QuernError) throws {
        guard bytes.count >= 4 else { throw fail("precompiled_charsmap is shorter than its header") }
        let trieBytes = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        guard trieBytes % 4 == 0, trieBytes >= 4, trieBytes <= bytes.count - 4 else {
            throw fail("precompiled_charsmap's trie size \(trieBytes) does not fit its \(bytes.count) bytes")
        }
        units = (0..<(trieBytes / 4)).map { i in
            let o = 4 + 4 * i
            return UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3])
                << 24
        }
        pool = Array(bytes[(4 + trieBytes)...])
    }

    /// The replacement for the first prefix of `key` the trie holds.
    func transform(_ key: UnsafeBufferPointer<UInt8>) -> ArraySlice<UInt8>? {
        func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        var node = offset(units[0])
        for c in key {
            if c == 0 { return nil }
            node ^= Int(c)
            guard node < units.count else { return nil }
            let u = units[node]
            guard u & ((1 << 31) | 0xFF) == UInt32(c) else { return nil }
            node ^= offset(u)
            guard node < units.count else { return nil }
            if (u >> 8) & 1 == 1 {
                let start = Int(units[node] & ((1 << 31) - 1))
                guard start < pool.count else { return nil }
                var end = start
                while end < pool.count && pool[end] != 0 { end += 1 }
                return pool[start..<end]
            }
        }
        return nil
    }

    func normalize(_ s: String) -> String {
        var text = s
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 8)
        let utf8 = text.utf8
        let clusters = text.indices.map { utf8.distance(from: utf8.startIndex, to: $0) } + [utf8.count]
        text.withUTF8 { u in
            let base = u.baseAddress!
            for k in 0..<(clusters.count - 1) {
                let start = clusters[k], n = clusters[k + 1] - start
                if n < 6, let r = transform(UnsafeBufferPointer(start: base + start, count: n)) {
                    out += r
                    continue
                }
                // Scalar by scalar: UTF-8 lead bytes give each scalar's length.
                var i = start
                while i < start + n {
                    let b = base[i]
                    let len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
                    let piece = UnsafeBufferPointer(start: base + i, count: min(len, start + n - i))
                    if let r = transform(piece) { out += r } else { out += piece }
                    i += len
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// tokenizer.json's `pre_tokenizer` for SentencePiece-style tokenizers: Metaspace
/// (spaces become `▁`, one prepended, words split before each `▁`) and WhitespaceSplit,
/// alone or in a Sequence.
enum MetaspacePreTokenizer: Sendable, Equatable {
    enum Prepend: String, Sendable { case always, first, never }
    case metaspace(replacement: Character, prepend: Prepend, split: Bool)
    case whitespaceSplit
    case sequence([MetaspacePreTokenizer])

    static func parse(_ v: JSONValue?, fail: (String) -> QuernError) throws -> MetaspacePreTokenizer {
        guard let v, v != .null else { return .sequence([]) }
        guard let o = v.objectValue, let type = o["type"]?.stringValue else {
            throw fail("pre_tokenizer is not an object")
        }
        switch type {
        case "Sequence":
            return .sequence(try (o["pretokenizers"]?.arrayValue ?? []).map { try parse($0, fail: fail) })
        case "WhitespaceSplit":
            return .whitespaceSplit
        case "Metaspace":
            let r = o["replacement"]?.stringValue ?? "▁"
            guard r.count == 1 else { throw fail("Metaspace replacement must be one character") }
            var prepend = Prepend.always
            if let p = o["prepend_scheme"]?.stringValue {
                guard let v = Prepend(rawValue: p) else { throw fail("Metaspace prepend_scheme \(p) is not known") }
                prepend = v
            } else if o["add_prefix_space"]?.boolValue == false {
                prepend = .never
            }
            return .metaspace(replacement: r.first!, prepend: prepend, split: o["split"]?.boolValue ?? true)
        default:
            throw fail("pre_tokenizer \(type) is not supported here (Metaspace, WhitespaceSplit, Sequence)")
        }
    }

    /// Pieces of UTF-8 text, each with whether it starts at the text's first byte
    /// (Metaspace's `first` scheme prepends only there). On bytes, not Characters: a
    /// space followed by a combining mark is one Character to Swift, but its space is
    /// still replaced and split on.
    func split(_ pieces: [([UInt8], Bool)]) -> [([UInt8], Bool)] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.split($0) }
        case .whitespaceSplit:
            return pieces.flatMap { (bytes, atStart) -> [([UInt8], Bool)] in
                var out: [([UInt8], Bool)] = []
                var start: Int?
                var i = 0
                let scalars = String(decoding: bytes, as: UTF8.self).unicodeScalars
                for c in scalars {
                    let n = UTF8.width(c)
                    if c.properties.isWhitespace {
                        if let s = start { out.append((Array(bytes[s..<i]), atStart && s == 0)) }
                        start = nil
                    } else if start == nil {
                        start = i
                    }
                    i += n
                }
                if let s = start { out.append((Array(bytes[s..<i]), atStart && s == 0)) }
                return out
            }
        case .metaspace(let rep, let prepend, let split):
            let r = Array(String(rep).utf8)
            return pieces.flatMap { (bytes, atStart) -> [([UInt8], Bool)] in
                var t: [UInt8] = []
                t.reserveCapacity(bytes.count + 3 * 8)
                let startsReplaced = bytes.first == 0x20 || bytes.starts(with: r)
                if !startsReplaced && (prepend == .always || (prepend == .first && atStart)) { t += r }
                for b in bytes {
                    if b == 0x20 { t += r } else { t.append(b) }
                }
                guard split else { return [(t, atStart)] }
                // Before each replacement character (UTF-8 is self-synchronizing: a match
                // of its bytes is always the character).
                var out: [([UInt8], Bool)] = []
                var start = 0, i = 1
                while i + r.count <= t.count {
                    if t[i] == r[0] && t[i..<(i + r.count)].elementsEqual(r) {
                        out.append((Array(t[start..<i]), atStart && start == 0))
                        start = i
                        i += r.count
                    } else {
                        i += 1
                    }
                }
                if start < t.count { out.append((Array(t[start...]), atStart && start == 0)) }
                return out
            }
        }
    }
}
