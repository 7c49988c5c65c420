import Foundation

/// The character rules of Hugging Face's BertNormalizer and BertPreTokenizer, applied one
/// Unicode scalar at a time: what a scalar becomes after cleaning (controls dropped,
/// whitespace to a space), CJK isolation, accent stripping (NFD, nonspacing marks
/// dropped) and lowercasing, and how the pre-tokenizer then treats each resulting scalar
/// (a word break, a word of its own, or part of the current word).
///
/// Done per scalar rather than on the whole string, so the ASCII fast path in
/// `WordPieceTokenizer` never builds a normalized copy of the text; the one difference
/// from normalizing the whole string, canonical reordering of combining marks, cannot
/// change ids once nonspacing marks are stripped, and is checked against `tokenizers`
/// on every code point by `scripts/check-tokenizer.py`.
public struct BertTextRules: Sendable, Equatable {
    public var cleanText = true
    public var handleChineseChars = true
    public var stripAccents = true
    public var lowercase = true

    public init(
        cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool = true, lowercase: Bool = true
    ) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// What one input scalar contributes to the pre-tokenized text.
    public enum Piece: Equatable, Sendable {
        /// A word break (whitespace).
        case space
        /// A word of its own (punctuation, a CJK ideograph), as UTF-8.
        case isolated([UInt8])
        /// Text that continues the current word, as UTF-8.
        case text([UInt8])
    }

    /// The pieces a non-ASCII scalar turns into; empty when cleaning drops it.
    public func pieces(_ c: Unicode.Scalar) -> [Piece] {
        if cleanText {
            if c.value == 0 || c.value == 0xFFFD || Self.isControl(c) { return [] }
            if Self.isWhitespace(c) { return [.space] }
        }
        if handleChineseChars && Self.isChinese(c.value) {
            return [.isolated(Array(transform(c).utf8))]
        }
        var out: [Piece] = []
        var word: [UInt8] = []
        for s in transform(c).unicodeScalars {
            if Self.isWhitespace(s) {
                if !word.isEmpty { out.append(.text(word)); word = [] }
                out.append(.space)
            } else if Self.isPunctuation(s) {
                if !word.isEmpty { out.append(.text(word)); word = [] }
                out.append(.isolated(Array(String(s).utf8)))
            } else {
                word += Array(String(s).utf8)
            }
        }
        if !word.isEmpty { out.append(.text(word)) }
        return out
    }

    /// Accent stripping and lowercasing of one scalar, in the normalizer's order.
    func transform(_ c: Unicode.Scalar) -> String {
        var s = String(c)
        if stripAccents {
            s = String(
                String.UnicodeScalarView(
                    s.decomposedStringWithCanonicalMapping.unicodeScalars.filter {
                        Self.category($0) != .nonspacingMark
                    }))
        }
        if lowercase {
            s = s.unicodeScalars.map { $0.properties.lowercaseMapping }.joined()
        }
        return s
    }

    /// White_Space, as Rust's `char::is_whitespace` (tab, newline and return included).
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }

    /// `tokenizers` takes the categories it tests for control, punctuation and
    /// nonspacing marks from tables of Unicode 8.0 (the `unicode_categories` crate), so a
    /// scalar assigned later is none of these to it (a mark added in 2021 is kept, not
    /// stripped), and the seven scalars whose category has changed since count with their
    /// 8.0 one. (`scripts/check-tokenizer.py` found all of this by comparing every code
    /// point with `tokenizers`.)
    static func category(_ c: Unicode.Scalar) -> Unicode.GeneralCategory? {
        if let old = categoryChangedSince8[c.value] { return old }
        guard let age = c.properties.age, age.major < 8 || (age.major == 8 && age.minor == 0) else { return nil }
        return c.properties.generalCategory
    }

    static let categoryChangedSince8: [UInt32: Unicode.GeneralCategory] = [
        0x1885: .otherLetter, 0x1886: .otherLetter,  // Mongolian Ali Gali baluda: Lo then, Mn now
        0x166D: .otherPunctuation,  // Canadian syllabics chi sign: Po then, So now
        0x1734: .nonspacingMark,  // Hanunoo pamudpod: Mn then, Mc now
        0xA9BD: .spacingMark,  // Javanese keret: Mc then, Mn now
        0x111C9: .otherPunctuation,  // Sharada sandhi mark: Po then, Mn now
        0x1171E: .nonspacingMark  // Ahom consonant sign medial ra: Mn then, Mc now
    ]

    /// Control, format, private use or surrogate (Cc, Cf, Co, Cs), except tab, newline
    /// and return, which count as whitespace. Unassigned scalars (Cn) are kept, as
    /// `tokenizers` keeps them (they become `[UNK]`).
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09, 0x0A, 0x0D: return false
        default:
            switch category(c) {
            case .control?, .format?, .privateUse?, .surrogate?: return true
            default: return false
            }
        }
    }

    /// ASCII punctuation, or any scalar of a Unicode punctuation category (P*).
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return asciiPunctuation(UInt8(c.value)) }
        switch category(c) {
        case .connectorPunctuation?, .dashPunctuation?, .openPunctuation?, .closePunctuation?,
            .initialPunctuation?, .finalPunctuation?, .otherPunctuation?:
            return true
        default: return false
        }
    }

    static func asciiPunctuation(_ b: UInt8) -> Bool {
        (0x21...0x2F).contains(b) || (0x3A...0x40).contains(b) || (0x5B...0x60).contains(b) || (0x7B...0x7E).contains(b)
    }

    /// The CJK ideograph blocks BERT's tokenizer surrounds with spaces (as `tokenizers`
    /// has them: extension E from U+2B920, not U+2B820 where the block starts).
    static func isChinese(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }

    /// What each ASCII byte is to the rules: 0 part of a word (lowercased when the rules
    /// say so), 1 word break, 2 dropped, 3 a word of its own.
    static func asciiClasses(_ rules: BertTextRules) -> [UInt8] {
        (0..<128).map { (b: Int) -> UInt8 in
            let byte = UInt8(b)
            if rules.cleanText {
                if byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x20 { return 1 }
                if byte < 0x20 || byte == 0x7F { return 2 }
            } else if byte == 0x20 || (0x09...0x0D).contains(byte) {
                return 1
            }
            return asciiPunctuation(byte) ? 3 : 0
        }
    }
}
