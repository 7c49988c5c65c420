/// One token of a template, with the source line it starts on.
struct JinjaToken {
    enum Kind: Equatable {
        /// Template text, already trimmed by whitespace control.
        case data(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int64)
        case float(Double)
        /// An operator or punctuation: `+`, `//`, `==`, `(`, `|`, ...
        case op(String)
        case eof
    }

    var kind: Kind
    var line: Int
}

/// Splits a template into tokens exactly as jinja2's lexer does in transformers'
/// environment (`trim_blocks=True`, `lstrip_blocks=True`, `keep_trailing_newline=False`):
///
/// - `{%- `, `{{-`, `{#-` remove all whitespace before the tag; `-%}`, `-}}`, `-#}` all
///   whitespace after it.
/// - trim_blocks: the first newline after `%}` or `#}` goes (not after `}}`); `+%}` keeps it.
/// - lstrip_blocks: spaces and tabs from the start of a line up to `{%` or `{#` go (not
///   before `{{`); `{%+` keeps them. "Start of a line" includes the position right after
///   a tag that itself ended a line.
/// - `\r\n` and `\r` become `\n`, and one final newline of the source is dropped.
/// - `{% raw %}...{% endraw %}` is text; comments vanish.
struct JinjaLexer {
    private let s: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    private var tokens: [JinjaToken] = []
    /// jinja2's `line_starting`: the last match ended with a newline (or nothing came yet).
    private var lineStarting = true

    static func tokenize(_ source: String) throws(JinjaError) -> [JinjaToken] {
        var lexer = JinjaLexer(source)
        try lexer.run()
        return lexer.tokens
    }

    private init(_ source: String) {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                out.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                out.append(c)
            }
        }
        if out.last == "\n" { out.removeLast() }
        s = out
    }

    private func at(_ i: Int) -> Unicode.Scalar? { i < s.count ? s[i] : nil }

    private func matches(_ text: String, at i: Int) -> Bool {
        var k = i
        for c in text.unicodeScalars {
            guard k < s.count, s[k] == c else { return false }
            k += 1
        }
        return true
    }

    private func skipSpace(from i: Int) -> Int {
        var k = i
        while k < s.count, PyStr.isSpace(s[k]) { k += 1 }
        return k
    }

    private func newlines(_ from: Int, _ to: Int) -> Int {
        var n = 0
        for i in from..<to where s[i] == "\n" { n += 1 }
        return n
    }

    private mutating func emit(_ kind: JinjaToken.Kind, line: Int) { tokens.append(JinjaToken(kind: kind, line: line)) }

    /// Emits the text before a tag, stripped as the tag's sign and lstrip_blocks say.
    private mutating func emitText(_ from: Int, _ to: Int, sign: Unicode.Scalar?, lstrip: Bool) {
        var end = to
        if sign == "-" {
            while end > from, PyStr.isSpace(s[end - 1]) { end -= 1 }
        } else if sign != "+" && lstrip {
            var lineStart = to
            while lineStart > from, s[lineStart - 1] != "\n" { lineStart -= 1 }
            if lineStart > from || lineStarting {
                if lineStart < to && (lineStart..<to).allSatisfy({ PyStr.isSpace(s[$0]) }) { end = lineStart }
            }
        }
        if end > from {
            var text = String.UnicodeScalarView()
            text.append(contentsOf: s[from..<end])
            emit(.data(String(text)), line: line)
        }
        line += newlines(from, to)
    }

    private mutating func run() throws(JinjaError) {
        while pos < s.count {
            // The next `{%`, `{{` or `{#`.
            var t = pos
            while t + 1 < s.count, !(s[t] == "{" && (s[t + 1] == "%" || s[t + 1] == "{" || s[t + 1] == "#")) {
                t += 1
            }
            if t + 1 >= s.count {
                emitText(pos, s.count, sign: nil, lstrip: false)
                pos = s.count
                break
            }
            let kind = s[t + 1]
            let sign: Unicode.Scalar? = at(t + 2) == "-" || at(t + 2) == "+" ? s[t + 2] : nil
            let afterOpen = t + 2 + (sign == nil ? 0 : 1)
            if kind == "%", let rawEnd = rawBegin(afterOpen) {
                emitText(pos, t, sign: sign, lstrip: true)
                line += newlines(t, rawEnd)
                lineStarting = s[rawEnd - 1] == "\n"
                try raw(from: rawEnd)
                continue
            }
            emitText(pos, t, sign: sign, lstrip: kind != "{")
            lineStarting = false
            switch kind {
            case "#": try comment(from: afterOpen)
            case "%":
                emit(.blockBegin, line: line)
                pos = afterOpen
                try tag(block: true)
            default:
                emit(.variableBegin, line: line)
                pos = afterOpen
                try tag(block: false)
            }
        }
        emit(.eof, line: line)
    }

    /// Where `{% raw %}` ends, when the tag opening at `i` is one.
    private func rawBegin(_ i: Int) -> Int? {
        var k = skipSpace(from: i)
        guard matches("raw", at: k) else { return nil }
        k = skipSpace(from: k + 3)
        if matches("-%}", at: k) { return skipSpace(from: k + 3) }
        if matches("%}", at: k) { return k + 2 }
        return nil
    }

    private mutating func raw(from start: Int) throws(JinjaError) {
        var k = start
        while k + 1 < s.count {
            if s[k] == "{" && s[k + 1] == "%" {
                let sign: Unicode.Scalar? = at(k + 2) == "-" || at(k + 2) == "+" ? s[k + 2] : nil
                var j = skipSpace(from: k + 2 + (sign == nil ? 0 : 1))
                if matches("endraw", at: j) {
                    j = skipSpace(from: j + 6)
                    if let end = tagEnd(j, close: "%}", trim: true) {
                        emitText(start, k, sign: sign, lstrip: true)
                        line += newlines(k, end)
                        lineStarting = s[end - 1] == "\n"
                        pos = end
                        return
                    }
                }
            }
            k += 1
        }
        throw .syntax("Missing end of raw directive", line: line)
    }

    /// The end of a closing tag (`+%}`, `-%}` and the whitespace after it, or `%}` and
    /// trim_blocks' newline) starting at `i`.
    private func tagEnd(_ i: Int, close: String, trim: Bool) -> Int? {
        if trim && at(i) == "+" && matches(close, at: i + 1) { return i + 1 + close.unicodeScalars.count }
        if at(i) == "-" && matches(close, at: i + 1) { return skipSpace(from: i + 1 + close.unicodeScalars.count) }
        if matches(close, at: i) {
            let end = i + close.unicodeScalars.count
            return trim && at(end) == "\n" ? end + 1 : end
        }
        return nil
    }

    private mutating func comment(from start: Int) throws(JinjaError) {
        var k = start
        while k < s.count {
            if let end = tagEnd(k, close: "#}", trim: true) {
                line += newlines(start, end)
                lineStarting = s[end - 1] == "\n"
                pos = end
                return
            }
            k += 1
        }
        throw .syntax("Missing end of comment tag", line: line)
    }

    /// The inside of `{% ... %}` or `{{ ... }}`: expression tokens up to the closing tag,
    /// which only counts when brackets are balanced (`{{ {'a': {'b': 1}}}}`).
    private mutating func tag(block: Bool) throws(JinjaError) {
        var balance: [Unicode.Scalar] = []
        while true {
            guard pos < s.count else {
                throw .syntax("unexpected end of template, expected '\(block ? "%}" : "}}")'", line: line)
            }
            if balance.isEmpty, let end = tagEnd(pos, close: block ? "%}" : "}}", trim: block) {
                emit(block ? .blockEnd : .variableEnd, line: line)
                line += newlines(pos, end)
                lineStarting = s[end - 1] == "\n"
                pos = end
                return
            }
            let c = s[pos]
            if PyStr.isSpace(c) {
                let end = skipSpace(from: pos)
                line += newlines(pos, end)
                pos = end
                continue
            }
            let startLine = line
            var literal = try number()
            if literal == nil { literal = name() }
            if literal == nil { literal = try string() }
            if let (kind, end) = literal {
                emit(kind, line: startLine)
                line += newlines(pos, end)
                pos = end
                continue
            }
            guard let op = op() else {
                throw .syntax("unexpected char \(PyFormat.stringRepr(String(c))) at \(pos)", line: line)
            }
            switch op {
            case "{": balance.append("}")
            case "(": balance.append(")")
            case "[": balance.append("]")
            case "}", ")", "]":
                guard let expected = balance.popLast() else { throw .syntax("unexpected '\(op)'", line: line) }
                if String(expected) != op { throw .syntax("unexpected '\(op)', expected '\(expected)'", line: line) }
            default: break
            }
            emit(.op(op), line: line)
            pos += op.unicodeScalars.count
        }
    }

    private static let operators = [
        "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=",
        ".", ":", "|", ",", ";"
    ]

    private func op() -> String? { Self.operators.first { matches($0, at: pos) } }

    private func isDigit(_ i: Int) -> Bool { at(i).map { $0.value >= 0x30 && $0.value <= 0x39 } ?? false }

    /// `(\d+_)*\d+` from `i`: where it ends, or nil.
    private func digits(_ i: Int) -> Int? {
        guard isDigit(i) else { return nil }
        var k = i
        while true {
            while isDigit(k) { k += 1 }
            if at(k) == "_" && isDigit(k + 1) { k += 1 } else { return k }
        }
    }

    /// A float (`1.5`, `2e10`, `1_000.5`) or an integer (`42`, `0x1F`, `0b101`, `1_000`).
    private func number() throws(JinjaError) -> (JinjaToken.Kind, Int)? {
        guard isDigit(pos) else { return nil }
        // jinja2's float rule does not start right after a '.' (`x.0.1`).
        if pos == 0 || s[pos - 1] != ".", let intEnd = digits(pos) {
            var end: Int?
            if at(intEnd) == ".", let frac = digits(intEnd + 1) {
                end = exponent(frac) ?? frac
            } else {
                end = exponent(intEnd)
            }
            if let end {
                let text = String(String.UnicodeScalarView(s[pos..<end])).replacingOccurrences(of: "_", with: "")
                guard let d = Double(text) else { throw .syntax("invalid float literal \(text)", line: line) }
                return (.float(d), end)
            }
        }
        // Integers: 0b / 0o / 0x prefixes, else decimal.
        let lower = at(pos + 1).map { Character(Unicode.Scalar(UInt8(truncatingIfNeeded: $0.value | 0x20))) }
        if s[pos] == "0", let p = lower, let radix = ["b": 2, "o": 8, "x": 16][p] {
            var k = pos + 2
            var text = ""
            while true {
                let underscore = at(k) == "_"
                let j = underscore ? k + 1 : k
                guard let c = at(j), let digit = Int(String(c), radix: 16), digit < radix else { break }
                text.unicodeScalars.append(c)
                k = j + 1
            }
            if !text.isEmpty {
                guard let v = Int64(text, radix: radix) else {
                    throw .unsupported("integer literal 0\(p)\(text) is beyond 64 bits", line: line)
                }
                return (.integer(v), k)
            }
        }
        var end = pos + 1
        if s[pos] == "0" {
            while (at(end) == "_" && at(end + 1) == "0") || at(end) == "0" { end += at(end) == "_" ? 2 : 1 }
        } else {
            end = digits(pos) ?? pos + 1
        }
        let text = String(String.UnicodeScalarView(s[pos..<end])).replacingOccurrences(of: "_", with: "")
        guard let v = Int64(text) else { throw .unsupported("integer literal \(text) is beyond 64 bits", line: line) }
        return (.integer(v), end)
    }

    /// `e[+-]?digits` from `i`: where it ends, or nil.
    private func exponent(_ i: Int) -> Int? {
        guard at(i) == "e" || at(i) == "E" else { return nil }
        let k = at(i + 1) == "+" || at(i + 1) == "-" ? i + 2 : i + 1
        return digits(k)
    }

    private func name() -> (JinjaToken.Kind, Int)? {
        let c = s[pos]
        guard c == "_" || c.properties.isXIDStart else { return nil }
        var k = pos + 1
        while k < s.count, s[k] == "_" || s[k].properties.isXIDContinue { k += 1 }
        return (.name(String(String.UnicodeScalarView(s[pos..<k]))), k)
    }

    private func string() throws(JinjaError) -> (JinjaToken.Kind, Int)? {
        let q = s[pos]
        guard q == "'" || q == "\"" else { return nil }
        var k = pos + 1
        while k < s.count, s[k] != q { k += s[k] == "\\" ? 2 : 1 }
        guard k < s.count else { return nil }
        return (.string(try Self.unescape(s[(pos + 1)..<k], line: line)), k + 1)
    }

    /// Python's `unicode-escape` decoding, as jinja2 applies it to string literals (after
    /// turning every non-ASCII character into a `\x`/`\u`/`\U` escape, so a backslash
    /// before one keeps both as text).
    static func unescape(_ body: ArraySlice<Unicode.Scalar>, line: Int) throws(JinjaError) -> String {
        var out = String.UnicodeScalarView()
        var i = body.startIndex
        func hex(_ n: Int) throws(JinjaError) -> Unicode.Scalar {
            guard i + n <= body.endIndex else { throw .syntax("truncated escape in a string literal", line: line) }
            var v: UInt32 = 0
            for k in i..<(i + n) {
                guard let d = Int(String(body[k]), radix: 16) else {
                    throw .syntax("truncated escape in a string literal", line: line)
                }
                v = v << 4 | UInt32(d)
            }
            i += n
            guard let scalar = Unicode.Scalar(v) else {
                throw .unsupported("a string literal escapes a lone surrogate or a value past U+10FFFF", line: line)
            }
            return scalar
        }
        while i < body.endIndex {
            let c = body[i]
            i += 1
            guard c == "\\" else {
                out.append(c)
                continue
            }
            guard i < body.endIndex else { throw .syntax("\\ at end of string", line: line) }
            let e = body[i]
            i += 1
            switch e {
            case "\n": break
            case "\\", "'", "\"": out.append(e)
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x": out.append(try hex(2))
            case "u": out.append(try hex(4))
            case "U": out.append(try hex(8))
            case "0"..."7":
                var v = e.value - 0x30
                var n = 1
                while n < 3, i < body.endIndex, ("0"..."7").contains(body[i]) {
                    v = v * 8 + body[i].value - 0x30
                    i += 1
                    n += 1
                }
                out.append(Unicode.Scalar(v)!)
            case "N": throw .unsupported("\\N{...} escapes in string literals", line: line)
            default:
                out.append("\\")
                if e.isASCII {
                    out.append(e)
                } else {
                    // Python first made "é" the text `\xe9`, so this backslash escaped a backslash.
                    out.append(contentsOf: PyFormat.hexEscape(e).unicodeScalars.dropFirst())
                }
            }
        }
        return String(out)
    }
}
