import Foundation

/// Python's string operations, by code point: what a template's `content.strip()`,
/// `split`, `replace`, slices and `|title` do in CPython.
enum PyStr {
    /// `str.isspace()` for one code point (also what `re`'s `\s` matches).
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            true
        default: false
        }
    }

    /// The byte offset of the first `needle` in `hay` at or after `from`.
    static func find(_ hay: [UInt8], _ needle: [UInt8], from: Int = 0) -> Int? {
        if needle.isEmpty { return from <= hay.count ? from : nil }
        guard hay.count >= needle.count else { return nil }
        let first = needle[0]
        var i = from
        while i <= hay.count - needle.count {
            if hay[i] == first {
                var k = 1
                while k < needle.count, hay[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    static func rfind(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.count - needle.count
        while i >= 0 {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// `str.strip(chars)`, `lstrip`, `rstrip`: whitespace when `chars` is nil.
    static func strip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let drop: (Unicode.Scalar) -> Bool = { c in set.map { $0.contains(c) } ?? isSpace(c) }
        let u = Array(s.unicodeScalars)
        var lo = 0, hi = u.count
        if leading { while lo < hi, drop(u[lo]) { lo += 1 } }
        if trailing { while hi > lo, drop(u[hi - 1]) { hi -= 1 } }
        if lo == 0 && hi == u.count { return s }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: u[lo..<hi])
        return String(out)
    }

    /// `str.split(sep, maxsplit)`; with no separator, runs of whitespace split and edges drop.
    static func split(_ s: String, _ sep: String?, _ maxSplit: Int) throws(JinjaError) -> [String] {
        guard let sep else {
            // CPython's split_whitespace: words between runs of whitespace; past maxsplit
            // the rest, less its leading whitespace, is one part.
            let u = Array(s.unicodeScalars)
            var parts: [String] = []
            var i = 0
            while true {
                while i < u.count, isSpace(u[i]) { i += 1 }
                if i == u.count { break }
                if maxSplit >= 0 && parts.count == maxSplit {
                    parts.append(String(String.UnicodeScalarView(u[i...])))
                    break
                }
                var j = i
                while j < u.count, !isSpace(u[j]) { j += 1 }
                parts.append(String(String.UnicodeScalarView(u[i..<j])))
                i = j
            }
            return parts
        }
        if sep.isEmpty { throw .runtime("empty separator") }
        let hay = Array(s.utf8), needle = Array(sep.utf8)
        var parts: [String] = []
        var start = 0
        while maxSplit < 0 || parts.count < maxSplit, let at = find(hay, needle, from: start) {
            parts.append(string(hay[start..<at]))
            start = at + needle.count
        }
        parts.append(string(hay[start...]))
        return parts
    }

    /// `str.rsplit(sep, maxsplit)` with a separator.
    static func rsplit(_ s: String, _ sep: String, _ maxSplit: Int) throws(JinjaError) -> [String] {
        if maxSplit < 0 { return try split(s, sep, -1) }
        if sep.isEmpty { throw .runtime("empty separator") }
        var hay = Array(s.utf8)
        let needle = Array(sep.utf8)
        var parts: [String] = []
        while parts.count < maxSplit, let at = rfind(hay, needle) {
            parts.append(string(hay[(at + needle.count)...]))
            hay.removeSubrange(at...)
        }
        parts.append(string(hay[...]))
        return parts.reversed()
    }

    /// `str.splitlines()` (without ends).
    static func splitLines(_ s: String) -> [String] {
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        var it = Array(s.unicodeScalars)[...]
        while let c = it.first {
            it = it.dropFirst()
            switch c.value {
            case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
                lines.append(String(current))
                current = String.UnicodeScalarView()
            case 0x0D:
                if it.first == "\n" { it = it.dropFirst() }
                lines.append(String(current))
                current = String.UnicodeScalarView()
            default: current.append(c)
            }
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }

    /// `str.replace(old, new, count)`, refused while it is built once past the output limit.
    static func replace(_ s: String, _ old: String, _ new: String, _ count: Int) throws(JinjaError) -> String {
        let hay = Array(s.utf8), needle = Array(old.utf8), with = Array(new.utf8)
        var out: [UInt8] = []
        var done = 0
        if needle.isEmpty {
            // Python inserts `new` before every code point and at the end.
            for c in s.unicodeScalars {
                if count < 0 || done < count {
                    out += with
                    done += 1
                }
                out += Array(String(c).utf8)
                if out.count > JinjaLimits.maxOutputBytes { throw .limit("a replaced string past the output limit") }
            }
            if count < 0 || done < count { out += with }
            return String(decoding: out, as: UTF8.self)
        }
        var start = 0
        while count < 0 || done < count, let at = find(hay, needle, from: start) {
            out += hay[start..<at]
            out += with
            start = at + needle.count
            done += 1
            if out.count > JinjaLimits.maxOutputBytes { throw .limit("a replaced string past the output limit") }
        }
        out += hay[start...]
        return String(decoding: out, as: UTF8.self)
    }

    static func hasPrefix(_ s: String, _ p: String) -> Bool { s.utf8.starts(with: p.utf8) }
    static func hasSuffix(_ s: String, _ p: String) -> Bool { s.utf8.reversed().starts(with: p.utf8.reversed()) }

    /// The number of non-overlapping `needle` in `s` (`str.count`).
    static func count(_ s: String, _ needle: String) -> Int {
        if needle.isEmpty { return s.unicodeScalars.count + 1 }
        let hay = Array(s.utf8), n = Array(needle.utf8)
        var c = 0, start = 0
        while let at = find(hay, n, from: start) {
            c += 1
            start = at + n.count
        }
        return c
    }

    /// The code-point index of a byte offset.
    static func scalarIndex(_ s: String, byteOffset: Int) -> Int {
        String(decoding: Array(s.utf8)[..<byteOffset], as: UTF8.self).unicodeScalars.count
    }

    static func upper(_ s: String) -> String { s.uppercased() }
    static func lower(_ s: String) -> String { s.lowercased() }

    static func titleCase(_ c: Unicode.Scalar) -> String { c.properties.titlecaseMapping }

    /// `str.capitalize()`: the first code point title-cased, the rest lower-cased.
    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return titleCase(first) + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
    }

    /// `str.title()`: a cased letter after an uncased one starts a word ("They'Re").
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            out += previousCased ? c.properties.lowercaseMapping : titleCase(c)
            previousCased = c.properties.isCased
        }
        return out
    }

    /// jinja2's `|title`: words begin after `-`, whitespace, `(`, `{`, `[` or `<`.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var word = String.UnicodeScalarView()
        func flush() {
            guard let f = word.first else { return }
            out += upper(String(f)) + lower(String(String.UnicodeScalarView(word.dropFirst())))
            word = String.UnicodeScalarView()
        }
        for c in s.unicodeScalars {
            if isSpace(c) || "-({[<".unicodeScalars.contains(c) {
                flush()
                out.unicodeScalars.append(c)
            } else {
                word.append(c)
            }
        }
        flush()
        return out
    }
}

/// Python's slice arithmetic (`x[1:]`, `x[::-1]`, `x[-2]`).
enum PySlice {
    /// The indices `[start:stop:step]` selects from a sequence of `count` items.
    static func indices(count: Int, _ start: Int64?, _ stop: Int64?, _ step: Int64?) throws(JinjaError) -> [Int] {
        let step = step ?? 1
        if step == 0 { throw .runtime("slice step cannot be zero") }
        let n = Int64(count)
        func clamp(_ v: Int64?, _ dflt: Int64, lo: Int64, hi: Int64) -> Int64 {
            guard var v else { return dflt }
            if v < 0 { v += n }
            return min(max(v, lo), hi)
        }
        var out: [Int] = []
        if step > 0 {
            let a = clamp(start, 0, lo: 0, hi: n), b = clamp(stop, n, lo: 0, hi: n)
            var i = a
            while i < b {
                out.append(Int(i))
                i += step
            }
        } else {
            let a = clamp(start, n - 1, lo: -1, hi: n - 1), b = clamp(stop, -1, lo: -1, hi: n - 1)
            var i = a
            while i > b {
                out.append(Int(i))
                i += step
            }
        }
        return out
    }

    /// A Python index into `count` items (negative counts from the end), or nil when out of range.
    static func index(_ i: Int64, count: Int) -> Int? {
        let j = i < 0 ? i + Int64(count) : i
        return j >= 0 && j < Int64(count) ? Int(j) : nil
    }
}

/// Python's text forms: `repr` of floats and strings, `json.dumps`, `datetime.strftime`.
enum PyFormat {
    /// `repr(float)`: the shortest digits that round-trip, fixed notation for exponents
    /// -4 through 15, else `1e+16` style.
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description gives the same shortest round-trip digits as CPython;
        // only the layout differs.
        let text = abs(d).description
        let parts = text.split(separator: "e", maxSplits: 1)
        let mantissa = parts[0]
        let exponent = parts.count > 1 ? Int(parts[1])! : 0
        var digits = Array(mantissa.filter { $0 != "." })
        var point =
            (mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) }
                ?? mantissa.count) + exponent
        while digits.first == "0" {
            digits.removeFirst()
            point -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        let sign = d < 0 ? "-" : ""
        if point > -4 && point <= 16 {
            if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + String(digits) }
            if point >= digits.count {
                return sign + String(digits) + String(repeating: "0", count: point - digits.count) + ".0"
            }
            return sign + String(digits[..<point]) + "." + String(digits[point...])
        }
        let e = point - 1
        let m = digits.count == 1 ? String(digits) : String(digits[0]) + "." + String(digits[1...])
        let ee = abs(e) < 10 ? "0\(abs(e))" : "\(abs(e))"
        return sign + m + "e" + (e < 0 ? "-" : "+") + ee
    }

    /// `str.isprintable()` for one code point.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x7F { return c.value >= 0x20 }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
            .spaceSeparator:
            return false
        default: return true
        }
    }

    /// `repr(str)`: single quotes unless the text has one and no double quote.
    static func stringRepr(_ s: String) -> String {
        let quote: Unicode.Scalar = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in s.unicodeScalars {
            switch c {
            case quote, "\\":
                out.append("\\")
                out.append(c)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default:
                if isPrintable(c) {
                    out.append(c)
                } else {
                    out.append(contentsOf: hexEscape(c).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    static func hexEscape(_ c: Unicode.Scalar) -> String {
        let h = String(c.value, radix: 16)
        if c.value <= 0xFF { return "\\x" + String(repeating: "0", count: 2 - h.count) + h }
        if c.value <= 0xFFFF { return "\\u" + String(repeating: "0", count: 4 - h.count) + h }
        return "\\U" + String(repeating: "0", count: 8 - h.count) + h
    }

    /// The options of transformers' `tojson` (`json.dumps(x, ensure_ascii=False, indent=None,
    /// separators=None, sort_keys=False)`).
    struct JSONOptions {
        var ensureASCII = false
        var indent: String?
        var itemSeparator = ", "
        var keySeparator = ": "
        var sortKeys = false
    }

    /// `json.dumps(value, ...)`.
    static func json(_ v: JinjaValue, _ o: JSONOptions) throws(JinjaError) -> String {
        var out = ""
        try json(v, o, level: 0, into: &out)
        return out
    }

    private static func json(_ v: JinjaValue, _ o: JSONOptions, level: Int, into out: inout String) throws(JinjaError) {
        func newline(_ l: Int) {
            guard let indent = o.indent else { return }
            out += "\n" + String(repeating: indent, count: l)
        }
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .float(let d): out += jsonFloat(d)
        case .string(let s): jsonString(s, ascii: o.ensureASCII, into: &out)
        case .list(let l), .tuple(let l):
            if l.items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, e) in l.items.enumerated() {
                if i > 0 { out += o.itemSeparator }
                newline(level + 1)
                try json(e, o, level: level + 1, into: &out)
            }
            newline(level)
            out += "]"
        case .dict(let d):
            if d.count == 0 {
                out += "{}"
                return
            }
            var pairs = Array(d.pairs)
            if o.sortKeys {
                var failure: JinjaError?
                pairs.sort { a, b in
                    do { return try a.0.less(b.0, "<") } catch let e as JinjaError {
                        failure = e
                        return false
                    } catch {
                        return false
                    }
                }
                if let failure { throw failure }
            }
            out += "{"
            for (i, (k, e)) in pairs.enumerated() {
                if i > 0 { out += o.itemSeparator }
                newline(level + 1)
                let key: String
                switch k {
                case .string(let s): key = s
                case .float(let f): key = jsonFloat(f)
                case .bool(let b): key = b ? "true" : "false"
                case .none: key = "null"
                case .int(let n): key = String(n)
                default: throw .runtime("keys must be str, int, float, bool or None, not \(k.typeName)")
                }
                jsonString(key, ascii: o.ensureASCII, into: &out)
                out += o.keySeparator
                try json(e, o, level: level + 1, into: &out)
            }
            newline(level)
            out += "}"
        default:
            throw .runtime("Object of type \(v.typeName) is not JSON serializable")
        }
        if out.utf8.count > JinjaLimits.maxOutputBytes {
            throw .limit("tojson output over \(JinjaLimits.maxOutputBytes) bytes")
        }
    }

    static func jsonFloat(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return floatRepr(d)
    }

    static func jsonString(_ s: String, ascii: Bool, into out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 || (ascii && c.value > 0x7E) {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += u4(0xD800 + (v >> 10)) + u4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += u4(c.value)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
    }

    private static func u4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }

    /// `datetime.strftime(format)` for a naive local date: `%f` is the microseconds, `%z`
    /// and `%Z` are empty, and every other directive is the C library's (in the "C" locale,
    /// as in CPython).
    static func strftime(_ format: String, _ date: ChatTemplateDate) throws(JinjaError) -> String {
        var pre = ""
        var it = format.unicodeScalars.makeIterator()
        while let c = it.next() {
            guard c == "%" else {
                pre.unicodeScalars.append(c)
                continue
            }
            guard let d = it.next() else {
                pre += "%"
                break
            }
            switch d {
            case "f": pre += String(format: "%06d", date.microsecond)
            case "z", "Z": break
            default:
                pre.unicodeScalars.append(c)
                pre.unicodeScalars.append(d)
            }
        }
        if pre.isEmpty { return "" }
        var t = tm()
        t.tm_year = Int32(date.year - 1900)
        t.tm_mon = Int32(date.month - 1)
        t.tm_mday = Int32(date.day)
        t.tm_hour = Int32(date.hour)
        t.tm_min = Int32(date.minute)
        t.tm_sec = Int32(date.second)
        t.tm_wday = Int32(date.weekday)
        t.tm_yday = Int32(date.dayOfYear - 1)
        t.tm_isdst = -1
        let capacity = 1024 + 64 * pre.utf8.count
        if capacity > JinjaLimits.maxOutputBytes { throw .limit("a strftime format of \(pre.utf8.count) bytes") }
        var buffer = [CChar](repeating: 0, count: capacity)
        let n = buffer.withUnsafeMutableBufferPointer { Glibc.strftime($0.baseAddress!, capacity, pre, &t) }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Python's `int(str, base)` and `float(str)`.
enum PyNumberParser {
    /// Digits with single underscores between them, as Python accepts in numbers.
    private static func cleanDigits(_ s: Substring) -> String? {
        if s.isEmpty || s.first == "_" || s.last == "_" || s.contains("__") { return nil }
        return s.replacingOccurrences(of: "_", with: "")
    }

    static func int(_ text: String, base: Int) throws(JinjaError) -> Int64? {
        var s = Substring(PyStr.strip(text, nil, leading: true, trailing: true))
        var negative = false
        if let c = s.first, c == "+" || c == "-" {
            negative = c == "-"
            s = s.dropFirst()
        }
        var radix = base
        let lower = s.lowercased()
        for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == 0 || base == r)
        {
            radix = r
            s = s.dropFirst(2)
            if s.first == "_" { s = s.dropFirst() }
            break
        }
        if radix == 0 {
            // Base 0 without a prefix: decimal, and no leading zeros unless all zeros.
            radix = 10
            if s.count > 1, s.first == "0", s.contains(where: { $0 != "0" && $0 != "_" }) { return nil }
        }
        guard let digits = cleanDigits(s), digits.allSatisfy({ $0.isASCII }) else { return nil }
        guard let magnitude = UInt64(digits, radix: radix) else {
            if digits.allSatisfy({ Int(String($0), radix: radix) != nil }) {
                throw .unsupported("an integer beyond 64 bits")
            }
            return nil
        }
        if negative {
            if magnitude > UInt64(Int64.max) + 1 { throw .unsupported("an integer beyond 64 bits") }
            return Int64(truncatingIfNeeded: 0 &- magnitude)
        }
        if magnitude > UInt64(Int64.max) { throw .unsupported("an integer beyond 64 bits") }
        return Int64(magnitude)
    }

    static func float(_ text: String) -> Double? {
        let s = PyStr.strip(text, nil, leading: true, trailing: true)
        var body = Substring(s)
        var sign = 1.0
        if let c = body.first, c == "+" || c == "-" {
            if c == "-" { sign = -1 }
            body = body.dropFirst()
        }
        switch body.lowercased() {
        case "inf", "infinity": return sign * .infinity
        case "nan": return .nan
        default: break
        }
        // [digits][.digits][e[+-]digits], digits possibly with single underscores.
        var mantissa = body
        var exponent: Substring = ""
        if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = body[..<e]
            exponent = body[body.index(after: e)...]
            if let c = exponent.first, c == "+" || c == "-" { exponent = exponent.dropFirst() }
            guard cleanDigits(exponent) != nil else { return nil }
        }
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.contains(where: { !$0.isEmpty }) else { return nil }
        for p in parts where !p.isEmpty {
            guard let d = cleanDigits(p), d.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        }
        guard exponent.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "_") }) else { return nil }
        return Double(s.replacingOccurrences(of: "_", with: "")).map { abs($0) * sign }
    }
}

extension PyFormat {
    /// `format % args` (printf-style): `%s %r %d %i %f %e %g %x %o %c %%`, with flags,
    /// width, precision and `%(name)s` keys.
    static func percent(_ format: String, _ args: JinjaValue) throws(JinjaError) -> String {
        var positional: [JinjaValue]
        var mapping: JinjaDict?
        switch args {
        case .tuple(let t): positional = t.items
        case .dict(let d):
            mapping = d
            positional = [args]
        default: positional = [args]
        }
        var next = 0
        var out = ""
        let u = Array(format.unicodeScalars)
        var i = 0
        func take() throws(JinjaError) -> JinjaValue {
            guard next < positional.count else { throw .runtime("not enough arguments for format string") }
            next += 1
            return positional[next - 1]
        }
        while i < u.count {
            guard u[i] == "%" else {
                out.unicodeScalars.append(u[i])
                i += 1
                continue
            }
            i += 1
            var value: JinjaValue?
            if i < u.count, u[i] == "(" {
                guard let mapping else { throw .runtime("format requires a mapping") }
                var k = i + 1
                while k < u.count, u[k] != ")" { k += 1 }
                guard k < u.count else { throw .runtime("incomplete format key") }
                let key = String(String.UnicodeScalarView(u[(i + 1)..<k]))
                guard let v = mapping[string: key] else { throw .runtime("KeyError: '\(key)'") }
                value = v
                i = k + 1
            }
            var spec = "%"
            while i < u.count, "-+ #0".unicodeScalars.contains(u[i]) {
                spec.unicodeScalars.append(u[i])
                i += 1
            }
            while i < u.count, ("0"..."9").contains(u[i]) || u[i] == "." {
                spec.unicodeScalars.append(u[i])
                i += 1
            }
            while i < u.count, "hlL".unicodeScalars.contains(u[i]) { i += 1 }
            guard i < u.count else { throw .runtime("incomplete format") }
            let conversion = u[i]
            i += 1
            if conversion == "%" {
                out += "%"
                continue
            }
            if value == nil { value = try take() }
            out += try percentOne(spec, conversion, value!)
            if out.utf8.count > JinjaLimits.maxOutputBytes { throw .limit("a formatted string past the output limit") }
        }
        if mapping == nil && next < positional.count {
            throw .runtime("not all arguments converted during string formatting")
        }
        return out
    }

    private static func percentOne(_ spec: String, _ conversion: Unicode.Scalar, _ v: JinjaValue) throws(JinjaError)
        -> String
    {
        for number in spec.split(whereSeparator: { !$0.isNumber }) where (Int(number) ?? Int.max) > 4096 {
            throw .limit("a printf width or precision over 4096")
        }
        switch conversion {
        case "s", "r", "a":
            let text = conversion == "s" ? try v.str() : try v.repr()
            var body = spec.dropFirst()
            let left = body.contains("-")
            body = body.drop { "-+ #0".contains($0) }
            let pieces = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            var s = text
            if pieces.count == 2, let p = Int(pieces[1]) {
                s = String(String.UnicodeScalarView(s.unicodeScalars.prefix(p)))
            }
            let width = Int(pieces.first ?? "") ?? 0
            let pad = String(repeating: " ", count: max(0, width - s.unicodeScalars.count))
            return left ? s + pad : pad + s
        case "d", "i", "u", "x", "X", "o", "c":
            let n: Int64
            switch v {
            case .int(let i): n = i
            case .bool(let b): n = b ? 1 : 0
            case .float(let d) where "diu".unicodeScalars.contains(conversion) && d.isFinite:
                guard let i = Int64(exactly: d.rounded(.towardZero)) else {
                    throw .unsupported("an integer beyond 64 bits")
                }
                n = i
            default:
                throw .runtime("%\(conversion) format: a real number is required, not \(v.typeName)")
            }
            if conversion == "c" {
                guard let c = Unicode.Scalar(UInt32(clamping: n)) else { throw .runtime("%c arg not in range") }
                return String(c)
            }
            let c = conversion == "i" || conversion == "u" ? "d" : String(conversion)
            return String(format: spec + "ll" + c, n)
        case "f", "F", "e", "E", "g", "G":
            guard let n = v.numeric else {
                throw .runtime("must be real number, not \(v.typeName)")
            }
            return String(format: spec + String(conversion), n.double)
        default:
            throw .unsupported("the printf-style conversion '%\(conversion)'")
        }
    }

    /// `str.format(*args, **kwargs)`: `{}`, `{0}`, `{name}`, `!r`/`!s`, `{{` and `}}`.
    /// Format specs, attribute and index fields are refused.
    static func format(_ s: String, _ a: JinjaCallArguments) throws(JinjaError) -> String {
        var out = ""
        let u = Array(s.unicodeScalars)
        var i = 0
        var auto = 0
        while i < u.count {
            let c = u[i]
            if c == "}" {
                guard i + 1 < u.count, u[i + 1] == "}" else {
                    throw .runtime("Single '}' encountered in format string")
                }
                out += "}"
                i += 2
                continue
            }
            guard c == "{" else {
                out.unicodeScalars.append(c)
                i += 1
                continue
            }
            if i + 1 < u.count, u[i + 1] == "{" {
                out += "{"
                i += 2
                continue
            }
            var k = i + 1
            while k < u.count, u[k] != "}" { k += 1 }
            guard k < u.count else { throw .runtime("Single '{' encountered in format string") }
            var field = String(String.UnicodeScalarView(u[(i + 1)..<k]))
            i = k + 1
            var conversion: Character?
            if let colon = field.firstIndex(of: ":") {
                if field.index(after: colon) != field.endIndex {
                    throw .unsupported("format specs in str.format ('{\(field)}')")
                }
                field = String(field[..<colon])
            }
            if let bang = field.firstIndex(of: "!") {
                conversion = field[field.index(after: bang)...].first
                field = String(field[..<bang])
            }
            if field.contains(".") || field.contains("[") {
                throw .unsupported("attribute and index fields in str.format ('{\(field)}')")
            }
            let value: JinjaValue
            if field.isEmpty {
                guard auto < a.positional.count else { throw .runtime("Replacement index \(auto) out of range") }
                value = a.positional[auto]
                auto += 1
            } else if let n = Int(field) {
                guard n < a.positional.count else { throw .runtime("Replacement index \(n) out of range") }
                value = a.positional[n]
            } else {
                guard let v = a.keywords.first(where: { $0.0 == field })?.1 else {
                    throw .runtime("KeyError: '\(field)'")
                }
                value = v
            }
            out += conversion == "r" || conversion == "a" ? try value.repr() : try value.str()
            if out.utf8.count > JinjaLimits.maxOutputBytes { throw .limit("a formatted string past the output limit") }
        }
        return out
    }
}
