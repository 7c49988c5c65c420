import Foundation

/// The character facts the byte-level BPE pipeline needs, each as Hugging Face
/// `tokenizers` 0.23 has them. That library takes them from three places of different
/// Unicode versions, and `scripts/check-bpe-tokenizer.py` found each by comparing every
/// code point with it; Swift's own tables (Unicode 17) are cut back to those versions by
/// a scalar's age, so a scalar assigned later is unassigned here, as it is there.
enum BPEUnicode {
    /// Oniguruma's `\p{L}` and `\p{N}` (the Split and ByteLevel regexes) and the `regex`
    /// crate's `\w` (added tokens' `single_word`): Unicode 16.0.
    static let regexVersion = (major: 16, minor: 0)
    /// Rust's `char::is_numeric` (the Digits pre-tokenizer): Unicode 17.0.
    static let numericVersion = (major: 17, minor: 0)
    /// The NFC normalizer (the `unicode-normalization-alignments` crate): Unicode 9.0, so
    /// a mark assigned since has combining class 0 and composes with nothing.
    static let normalizationVersion = (major: 9, minor: 0)

    /// `\p{L}`: a letter.
    static let letter: UInt8 = 0x01
    /// `\p{N}`: a number.
    static let number: UInt8 = 0x02
    /// `\s`, in Oniguruma and in the `regex` crate alike: White_Space (25 scalars).
    static let space: UInt8 = 0x04
    /// Numeric to the Digits pre-tokenizer.
    static let numeric: UInt8 = 0x08
    /// `\w` of the `regex` crate: alphabetic, a mark, a decimal digit, a connector or a
    /// join control.
    static let word: UInt8 = 0x10
    /// Something NFC may change: it decomposes, has a nonzero combining class, or can be
    /// the second of a composition (set only for tokenizers that normalize).
    static let nfcActive: UInt8 = 0x20
    /// Marks a computed entry, so a zero byte means "not looked up yet".
    static let known: UInt8 = 0x80

    static func assigned(_ s: Unicode.Scalar, by version: (major: Int, minor: Int)) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major < version.major || (age.major == version.major && age.minor <= version.minor)
    }

    /// The flags of one scalar (`nfc`: also work out `nfcActive`, which costs a lookup
    /// of its decomposition).
    static func flags(_ v: UInt32, nfc: Bool) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return known }
        var f = known
        let p = s.properties
        if p.isWhitespace { f |= space }
        if assigned(s, by: regexVersion) {
            switch p.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: f |= letter
            case .decimalNumber, .letterNumber, .otherNumber: f |= number
            default: break
            }
            switch p.generalCategory {
            case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: f |= word
            default: if p.isAlphabetic || p.isJoinControl { f |= word }
            }
        }
        if assigned(s, by: numericVersion) {
            switch p.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: f |= numeric
            default: break
            }
        }
        if nfc && v >= 0x80 && assigned(s, by: normalizationVersion) {
            if p.canonicalCombiningClass.rawValue != 0 || compositionSeconds.contains(v)
                || (0x1161...0x1175).contains(v)
                || (0x11A8...0x11C2).contains(v) || decomposition(v) != nil
            {
                f |= nfcActive
            }
        }
        return f
    }

    /// Starters (class 0) that compose with the starter before them, besides Hangul
    /// vowels and trailing consonants: the class-0 seconds of Unicode 9.0's primary
    /// composites (NFC_Quick_Check=Maybe), mostly Indic two-part vowel signs.
    static let compositionSeconds: Set<UInt32> = [
        0x09BE, 0x09D7, 0x0B3E, 0x0B56, 0x0B57, 0x0BBE, 0x0BD7, 0x0CC2, 0x0CD5, 0x0CD6, 0x0D3E, 0x0D57, 0x0DCF,
        0x0DDF, 0x102E, 0x1B35, 0x11127, 0x1133E, 0x11357, 0x114B0, 0x114BA, 0x114BD, 0x115AF
    ]

    /// The full canonical decomposition of a scalar of Unicode 9.0, or nil when it has
    /// none. Hangul syllables decompose by arithmetic; the rest as Foundation has it
    /// (decompositions never change once assigned).
    static func decomposition(_ v: UInt32) -> [UInt32]? {
        if (0xAC00...0xD7A3).contains(v) {
            let s = v - 0xAC00
            let l = 0x1100 + s / 588, vowel = 0x1161 + (s % 588) / 28, t = s % 28
            return t == 0 ? [l, vowel] : [l, vowel, 0x11A7 + t]
        }
        guard let s = Unicode.Scalar(v), assigned(s, by: normalizationVersion) else { return nil }
        let d = String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars.map(\.value)
        return d == [v] ? nil : d
    }

    /// The canonical combining class under Unicode 9.0 (0 for a scalar assigned since).
    static func combiningClass(_ v: UInt32) -> UInt8 {
        guard v >= 0x300, let s = Unicode.Scalar(v), assigned(s, by: normalizationVersion) else { return 0 }
        return s.properties.canonicalCombiningClass.rawValue
    }

    /// The primary composite of a starter and the scalar after it, or nil. Hangul by
    /// arithmetic; the rest by asking the standard library to compose the pair (its
    /// `_nfcCodeUnits`: Foundation's `precomposedStringWithCanonicalMapping` composes
    /// out-of-range Hangul jamo, misses LV + T and U+0CCA + U+0CD5), kept only when all
    /// three scalars are of Unicode 9.0.
    static func compose(_ a: UInt32, _ b: UInt32) -> UInt32? {
        if (0x1100...0x11FF).contains(b) || (0x1100...0x11FF).contains(a) || (0xAC00...0xD7A3).contains(a) {
            if (0x1100...0x1112).contains(a) && (0x1161...0x1175).contains(b) {
                return 0xAC00 + ((a - 0x1100) * 21 + (b - 0x1161)) * 28
            }
            if (0xAC00...0xD7A3).contains(a) && (a - 0xAC00) % 28 == 0 && (0x11A8...0x11C2).contains(b) {
                return a + (b - 0x11A7)
            }
            return nil
        }
        guard let x = Unicode.Scalar(a), let y = Unicode.Scalar(b), assigned(x, by: normalizationVersion),
            assigned(y, by: normalizationVersion)
        else { return nil }
        var pair = String.UnicodeScalarView()
        pair.append(x)
        pair.append(y)
        let composed = String(decoding: String(pair)._nfcCodeUnits, as: UTF8.self).unicodeScalars
        guard composed.count == 1, let c = composed.first, assigned(c, by: normalizationVersion) else { return nil }
        return c.value
    }
}

/// Per-session facts about scalars, looked up once each: 256 scalars at a time, in blocks
/// filled when text first lands in them (a session costs a few kilobytes until then),
/// plus the decompositions and compositions NFC has needed.
final class BPEScalars {
    let nfc: Bool
    private let ascii: [UInt8]
    /// Block (scalar >> 8) → its place in `filled` + 1, or 0 when not looked up yet.
    private var blockSlots = [UInt16](repeating: 0, count: 0x1100)
    private var filled: [UInt8] = []
    private var decompositions: [UInt32: [UInt32]] = [:]
    private var compositions: [UInt64: UInt32] = [:]

    init(nfc: Bool) {
        self.nfc = nfc
        ascii = (0..<128).map { BPEUnicode.flags(UInt32($0), nfc: false) }
    }

    /// The flags of scalar `v` (`BPEUnicode.letter`...).
    @inline(__always) func flags(_ v: UInt32) -> UInt8 {
        if v < 0x80 { return ascii[Int(v)] }
        let slot = Int(blockSlots[Int(v >> 8)])
        return slot != 0 ? filled[(slot - 1) << 8 | Int(v & 0xFF)] : fill(v)
    }

    private func fill(_ v: UInt32) -> UInt8 {
        let base = v & ~0xFF
        filled += (base..<(base + 256)).map { BPEUnicode.flags($0, nfc: nfc) }
        blockSlots[Int(v >> 8)] = UInt16(filled.count >> 8)
        return flags(v)
    }

    func decomposition(_ v: UInt32) -> [UInt32]? {
        if let d = decompositions[v] { return d.isEmpty ? nil : d }
        let d = BPEUnicode.decomposition(v)
        decompositions[v] = d ?? []
        return d
    }

    func compose(_ a: UInt32, _ b: UInt32) -> UInt32? {
        let key = UInt64(a) << 21 | UInt64(b)
        if let c = compositions[key] { return c == 0 ? nil : c }
        let c = BPEUnicode.compose(a, b)
        compositions[key] = c ?? 0
        return c
    }

    // MARK: NFC

    /// Appends the NFC form of `n` bytes of UTF-8 at `p` to `out`, or returns false
    /// (leaving `out` alone) when they are already in NFC, which is the common case:
    /// ASCII, and text with nothing NFC could change, are recognised in one pass.
    func nfc(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt8], scratch: inout [UInt32]) -> Bool {
        var i = 0
        var previous = -1  // the scalar before the first one NFC may change: it may compose with it
        var first = -1
        while i < n {
            if p[i] < 0x80 {
                previous = i
                i += 1
                continue
            }
            let (v, length) = UTF8Scalars.decode(p, i)
            if flags(v) & BPEUnicode.nfcActive != 0 {
                first = previous >= 0 ? previous : i
                break
            }
            previous = i
            i += length
        }
        guard first >= 0 else { return false }
        out.append(contentsOf: UnsafeBufferPointer(start: p, count: first))
        scratch.removeAll(keepingCapacity: true)
        // Decompose.
        i = first
        while i < n {
            let (v, length) = UTF8Scalars.decode(p, i)
            i += length
            if v >= 0x80 && flags(v) & BPEUnicode.nfcActive != 0, let d = decomposition(v) {
                scratch += d
            } else {
                scratch.append(v)
            }
        }
        // Put each run of marks in canonical order: a stable sort by combining class.
        var k = 0
        while k < scratch.count {
            guard BPEUnicode.combiningClass(scratch[k]) != 0 else {
                k += 1
                continue
            }
            var end = k + 1
            while end < scratch.count && BPEUnicode.combiningClass(scratch[end]) != 0 { end += 1 }
            if end - k > 1 {
                let run = scratch[k..<end].enumerated().map { (BPEUnicode.combiningClass($1), $0, $1) }
                let sorted = run.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
                for (j, r) in sorted.enumerated() { scratch[k + j] = r.2 }
            }
            k = end
        }
        // Compose (the reference algorithm of UAX #15).
        var starter = -1
        var lastClass: Int = 256
        var w = 0
        for r in 0..<scratch.count {
            let v = scratch[r]
            let c = Int(BPEUnicode.combiningClass(v))
            if starter >= 0 && (lastClass < c || lastClass == 0) && v >= 0x300
                && flags(v) & BPEUnicode.nfcActive != 0, let composite = compose(scratch[starter], v)
            {
                scratch[starter] = composite
                continue
            }
            if c == 0 {
                starter = w
                lastClass = 0
            } else {
                lastClass = c
            }
            scratch[w] = v
            w += 1
        }
        for r in 0..<w { UTF8Scalars.append(scratch[r], to: &out) }
        return true
    }
}

/// UTF-8 at the byte level: scalars of valid text, and where lossy decoding may cut.
enum UTF8Scalars {
    /// The scalar starting at `p[i]` of valid UTF-8, and its length in bytes.
    @inline(__always) static func decode(_ p: UnsafePointer<UInt8>, _ i: Int) -> (UInt32, Int) {
        let b = p[i]
        if b < 0x80 { return (UInt32(b), 1) }
        if b < 0xE0 { return (UInt32(b & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
        if b < 0xF0 {
            return (UInt32(b & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
        }
        return (
            UInt32(b & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
                | UInt32(p[i + 3] & 0x3F), 4
        )
    }

    static func append(_ v: UInt32, to out: inout [UInt8]) {
        switch v {
        case 0..<0x80: out.append(UInt8(v))
        case 0x80..<0x800: out += [UInt8(0xC0 | v >> 6), UInt8(0x80 | v & 0x3F)]
        case 0x800..<0x10000: out += [UInt8(0xE0 | v >> 12), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        default:
            out += [
                UInt8(0xF0 | v >> 18), UInt8(0x80 | v >> 12 & 0x3F), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)
            ]
        }
    }

    /// Where a stream of bytes may be cut so that decoding the part before the cut now,
    /// and the rest once more bytes arrive, gives what decoding it all at once would: before
    /// a trailing sequence that is a proper prefix of a valid one (Unicode table 3-7),
    /// else at the end. Lossy decoding (Rust's `from_utf8_lossy`, Swift's
    /// `String(decoding:as:)`) replaces each maximal invalid subpart, and a lead byte
    /// always starts one, so nothing before such a cut depends on bytes after it.
    static func completePrefix(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var start = n - 1
        while start >= 0 && start >= n - 3 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0 else { return n }
        let lead = bytes[start]
        let need: Int
        switch lead {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return n
        }
        let have = n - start
        guard have < need else { return n }
        if have >= 2 {
            let second = bytes[start + 1]
            let range: ClosedRange<UInt8> =
                switch lead {
                case 0xE0: 0xA0...0xBF
                case 0xED: 0x80...0x9F
                case 0xF0: 0x90...0xBF
                case 0xF4: 0x80...0x8F
                default: 0x80...0xBF
                }
            guard range.contains(second) else { return n }
        }
        return start
    }
}
