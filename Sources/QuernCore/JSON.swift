#if canImport(Glibc)
    import Glibc
#endif

/// A strict JSON reader and a deterministic writer.
///
/// One parser serves both manifests (whole tree, with line numbers in errors) and
/// records (only the wanted top-level fields are built; the rest is validated and
/// skipped), so a JSONL stream parses at archive speed. Strings must be valid UTF-8,
/// duplicate keys are refused, nesting is bounded.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int: "integer"
        case .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var intValue: Int64? { if case .int(let i) = self { i } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
}

/// A JSON object that keeps its keys in document order, so rewritten files stay diffable.
public struct JSONObject: Equatable, Sendable {
    public private(set) var keys: [String] = []
    private var values: [String: JSONValue] = [:]

    public init() {}

    public init(_ pairs: [(String, JSONValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public subscript(key: String) -> JSONValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }

    public var pairs: [(String, JSONValue)] { keys.map { ($0, values[$0]!) } }
}

public struct JSONSyntaxError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let offset: Int
    public var line: Int = 1
    public var column: Int = 1
    public var description: String { "\(message) at line \(line), column \(column)" }
}

public struct JSONParser {
    let base: UnsafePointer<UInt8>
    let end: Int
    var pos = 0
    var depth = 0
    static let maxDepth = 256

    public init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!
        end = buffer.count
    }

    /// Parses one complete document (trailing whitespace allowed).
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBytes { raw in
            var p = JSONParser(raw)
            do {
                p.skipSpace()
                let v = try p.parseValue()
                p.skipSpace()
                if p.pos != p.end { throw p.error("unexpected data after the JSON value") }
                return v
            } catch var e as JSONSyntaxError {
                (e.line, e.column) = lineColumn(raw, e.offset)
                throw e
            }
        }
    }

    public static func parse(_ text: String) throws -> JSONValue { try parse(Array(text.utf8)) }

    /// Parses a JSON object and builds only the values of `wanted` keys (by position in
    /// the result); every other value is validated and skipped.
    public static func fields(of raw: UnsafeRawBufferPointer, wanted: [[UInt8]]) throws -> [JSONValue?] {
        var p = JSONParser(raw)
        var out = [JSONValue?](repeating: nil, count: wanted.count)
        p.skipSpace()
        guard p.peek() == UInt8(ascii: "{") else { throw p.error("a record must be a JSON object") }
        p.pos += 1
        p.skipSpace()
        if p.peek() == UInt8(ascii: "}") {
            p.pos += 1
        } else {
            while true {
                p.skipSpace()
                let (keyStart, keyEnd, escaped) = try p.scanString()
                var slot = -1
                if !escaped {
                    let len = keyEnd - keyStart
                    for (i, w) in wanted.enumerated() where w.count == len {
                        if w.withUnsafeBufferPointer({ memcmp($0.baseAddress!, p.base + keyStart, len) == 0 }) {
                            slot = i
                            break
                        }
                    }
                } else {
                    let key = try p.decodeString(keyStart, keyEnd, escaped: true)
                    slot = wanted.firstIndex(of: Array(key.utf8)) ?? -1
                }
                p.skipSpace()
                try p.expect(UInt8(ascii: ":"))
                p.skipSpace()
                if slot >= 0 {
                    if out[slot] != nil { throw p.error("duplicate key") }
                    out[slot] = try p.parseValue()
                } else {
                    try p.skipValue()
                }
                p.skipSpace()
                let c = p.peek()
                p.pos += 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "}") { break }
                p.pos -= 1
                throw p.error("expected ',' or '}' in object")
            }
        }
        p.skipSpace()
        if p.pos != p.end { throw p.error("unexpected data after the JSON object") }
        return out
    }

    static func lineColumn(_ raw: UnsafeRawBufferPointer, _ offset: Int) -> (Int, Int) {
        var line = 1, col = 1
        for i in 0..<min(offset, raw.count) {
            if raw[i] == UInt8(ascii: "\n") { line += 1; col = 1 } else { col += 1 }
        }
        return (line, col)
    }

    func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(message: message, offset: pos) }

    @inline(__always) func peek() -> UInt8 { pos < end ? base[pos] : 0 }

    @inline(__always) mutating func skipSpace() {
        while pos < end {
            let c = base[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    mutating func expect(_ c: UInt8) throws {
        guard peek() == c, pos < end else { throw error("expected '\(Character(Unicode.Scalar(c)))'") }
        pos += 1
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard end - pos >= n, memcmp(base + pos, word.utf8Start, n) == 0 else { throw error("invalid literal") }
        pos += n
    }

    public mutating func parseValue() throws -> JSONValue {
        switch peek() {
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
            pos += 1
            var obj = JSONObject()
            skipSpace()
            if peek() == UInt8(ascii: "}") { pos += 1; return .object(obj) }
            while true {
                skipSpace()
                let keyOffset = pos
                let (s, e, esc) = try scanString()
                let key = try decodeString(s, e, escaped: esc)
                if obj[key] != nil { throw JSONSyntaxError(message: "duplicate key \"\(key)\"", offset: keyOffset) }
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                obj[key] = try parseValue()
                skipSpace()
                let c = peek()
                if c == UInt8(ascii: ",") { pos += 1; continue }
                if c == UInt8(ascii: "}") { pos += 1; return .object(obj) }
                throw error("expected ',' or '}' in object")
            }
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
            pos += 1
            var arr: [JSONValue] = []
            skipSpace()
            if peek() == UInt8(ascii: "]") { pos += 1; return .array(arr) }
            while true {
                skipSpace()
                arr.append(try parseValue())
                skipSpace()
                let c = peek()
                if c == UInt8(ascii: ",") { pos += 1; continue }
                if c == UInt8(ascii: "]") { pos += 1; return .array(arr) }
                throw error("expected ',' or ']' in array")
            }
        case UInt8(ascii: "\""):
            let (s, e, esc) = try scanString()
            return .string(try decodeString(s, e, escaped: esc))
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        default:
            if pos >= end { throw error("unexpected end of input") }
            throw error("unexpected character")
        }
    }

    /// Validates and skips one value without building it.
    public mutating func skipValue() throws {
        switch peek() {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close: UInt8 = peek() == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = close == UInt8(ascii: "}")
            depth += 1
            defer { depth -= 1 }
            if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
            pos += 1
            skipSpace()
            if peek() == close { pos += 1; return }
            while true {
                skipSpace()
                if isObject {
                    _ = try scanString()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                }
                try skipValue()
                skipSpace()
                let c = peek()
                if c == UInt8(ascii: ",") { pos += 1; continue }
                if c == close { pos += 1; return }
                throw error("expected ',' or '\(Character(Unicode.Scalar(close)))'")
            }
        case UInt8(ascii: "\""): _ = try scanString()
        default: _ = try parseValue()
        }
    }

    /// Scans a string starting at `"`; returns the content range and whether it has escapes.
    /// Validates UTF-8 and control characters on the way.
    mutating func scanString() throws -> (Int, Int, Bool) {
        guard peek() == UInt8(ascii: "\""), pos < end else { throw error("expected a string") }
        pos += 1
        let start = pos
        var escaped = false
        var ascii = true
        while pos < end {
            // Eight bytes at a time while none is a quote, a backslash, a control
            // character or non-ASCII: most of a text field goes by here.
            while pos + 8 <= end {
                let w = UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self)
                let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
                let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5C)
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | (w &- ones &* 0x20) | w
                if special & highs != 0 { break }
                pos += 8
            }
            guard pos < end else { break }
            let c = base[pos]
            if c == UInt8(ascii: "\"") {
                if !ascii && !UTF8Check.isValid(base + start, pos - start) {
                    throw JSONSyntaxError(message: "invalid UTF-8 in string", offset: start)
                }
                // Escapes are checked here too, so a skipped value is held to the same
                // rules as a parsed one (rare: most strings have none).
                if escaped { _ = try decodeString(start, pos, escaped: true) }
                pos += 1
                return (start, pos - 1, escaped)
            }
            if c == UInt8(ascii: "\\") {
                escaped = true
                if pos + 1 < end, base[pos + 1] >= 0x80 { throw error("bad escape") }
                pos += 2
                continue
            }
            if c < 0x20 { throw error("control character in string (escape it as \\u00XX)") }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        throw error("unterminated string")
    }

    func decodeString(_ start: Int, _ stop: Int, escaped: Bool) throws -> String {
        let raw = UnsafeBufferPointer(start: base + start, count: stop - start)
        if !escaped { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            let c = raw[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < raw.count else { throw JSONSyntaxError(message: "bad escape", offset: start + i) }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                func hex4(_ at: Int) throws -> UInt32 {
                    guard at + 4 <= raw.count else {
                        throw JSONSyntaxError(message: "bad \\u escape", offset: start + at)
                    }
                    var v: UInt32 = 0
                    for k in 0..<4 {
                        let h = raw[at + k]
                        let d: UInt32
                        switch h {
                        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(h - 48)
                        case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(h - 87)
                        case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(h - 55)
                        default: throw JSONSyntaxError(message: "bad \\u escape", offset: start + at)
                        }
                        v = v << 4 | d
                    }
                    return v
                }
                var scalar = try hex4(i)
                i += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") else {
                        throw JSONSyntaxError(message: "unpaired surrogate in \\u escape", offset: start + i)
                    }
                    let low = try hex4(i + 2)
                    guard (0xDC00..<0xE000).contains(low) else {
                        throw JSONSyntaxError(message: "unpaired surrogate in \\u escape", offset: start + i)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw JSONSyntaxError(message: "unpaired surrogate in \\u escape", offset: start + i)
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
            default:
                throw JSONSyntaxError(message: "bad escape", offset: start + i - 1)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func parseNumber() throws -> JSONValue {
        let start = pos
        var negative = false
        if peek() == UInt8(ascii: "-") { negative = true; pos += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        let intStart = pos
        while pos < end, base[pos] &- 48 < 10 {
            if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(base[pos] - 48) }
            digits += 1
            pos += 1
        }
        if pos == intStart { throw error("invalid number") }
        if base[intStart] == UInt8(ascii: "0") && pos - intStart > 1 { throw error("leading zero in number") }
        var isInteger = true
        var fracDigits = 0
        if peek() == UInt8(ascii: "."), pos < end {
            isInteger = false
            pos += 1
            let fs = pos
            while pos < end, base[pos] &- 48 < 10 {
                if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(base[pos] - 48); fracDigits += 1 }
                digits += 1
                pos += 1
            }
            if pos == fs { throw error("invalid number: digits must follow '.'") }
        }
        var exponent = 0
        if pos < end, peek() | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            pos += 1
            var expNeg = false
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") {
                expNeg = peek() == UInt8(ascii: "-"); pos += 1
            }
            let es = pos
            while pos < end, base[pos] &- 48 < 10 {
                if exponent < 100_000 { exponent = exponent * 10 + Int(base[pos] - 48) }
                pos += 1
            }
            if pos == es { throw error("invalid number: digits must follow the exponent") }
            if expNeg { exponent = -exponent }
        }
        // Up to 19 digits the mantissa is exact in a UInt64; keep it an integer while it
        // fits Int64 (19-digit snowflake ids are common).
        if isInteger && digits <= 19 {
            if !negative && mantissa <= UInt64(Int64.max) { return .int(Int64(mantissa)) }
            if negative && mantissa <= UInt64(Int64.max) + 1 { return .int(Int64(truncatingIfNeeded: 0 &- mantissa)) }
        }
        // Exact fast path (Clinger): mantissa and power of ten both exact in a Double.
        let e10 = exponent - fracDigits
        if digits <= 15 && e10 >= -22 && e10 <= 22 {
            var v = Double(mantissa)
            v = e10 < 0 ? v / pow10[-e10] : v * pow10[e10]
            return .double(negative ? -v : v)
        }
        let text = String(decoding: UnsafeBufferPointer(start: base + start, count: pos - start), as: UTF8.self)
        guard let v = Double(text) else { throw JSONSyntaxError(message: "invalid number", offset: start) }
        // JSON has no infinity: a number past a double's range could not be written back.
        guard v.isFinite else {
            throw JSONSyntaxError(message: "number \(text) is out of range (beyond ±1.8e308)", offset: start)
        }
        return .double(v)
    }
}

private let pow10: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { acc, _ in acc * 10 } }

/// UTF-8 validation (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
public enum UTF8Check {
    public static func isValid(_ p: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        var i = 0
        while i < count {
            // ASCII fast path: eight bytes at a time.
            if i + 8 <= count {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                if w & 0x8080_8080_8080_8080 == 0 { i += 8; continue }
            }
            let c = p[i]
            if c < 0x80 { i += 1; continue }
            var need = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return false
            }
            if i + need >= count { return false }
            let b1 = p[i + 1]
            if b1 < lo || b1 > hi { return false }
            var k = 2
            while k <= need {
                if p[i + k] & 0xC0 != 0x80 { return false }
                k += 1
            }
            i += need + 1
        }
        return true
    }
}

/// Appends compact JSON to a byte buffer. Keys are written in the order given, numbers
/// in their shortest round-trip form, non-finite floats as `null` (JSON has no NaN).
public struct JSONWriter {
    public var bytes: [UInt8] = []
    public init() {}

    public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            var runStart = 0
            for i in 0..<u.count {
                let c = u[i]
                if c >= 0x20 && c != 0x22 && c != 0x5C { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart..<i]))
                switch c {
                case 0x22: raw("\\\"")
                case 0x5C: raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    raw("\\u00")
                    bytes.append(hex[Int(c >> 4)])
                    bytes.append(hex[Int(c & 15)])
                }
                runStart = i + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart..<u.count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func key(_ k: String) {
        string(k)
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func int<I: BinaryInteger>(_ v: I) { bytes.append(contentsOf: Array(String(v).utf8)) }

    public mutating func float(_ v: Float) {
        // A float's description is a small (inline) string: no allocation on the way.
        if v.isFinite { bytes.append(contentsOf: v.description.utf8) } else { raw("null") }
    }

    public mutating func double(_ v: Double) {
        if !v.isFinite { raw("null"); return }
        if v == v.rounded(), abs(v) < 1e15 { int(Int64(v)); return }
        bytes.append(contentsOf: Array(v.description.utf8))
    }

    public mutating func value(_ v: JSONValue, indent: Int? = nil, level: Int = 0) {
        func newline(_ l: Int) {
            guard let indent else { return }
            bytes.append(0x0A)
            bytes.append(contentsOf: [UInt8](repeating: 0x20, count: indent * l))
        }
        switch v {
        case .null: raw("null")
        case .bool(let b): if b { raw("true") } else { raw("false") }
        case .int(let i): int(i)
        case .double(let d): double(d)
        case .string(let s): string(s)
        case .array(let a):
            bytes.append(UInt8(ascii: "["))
            // Arrays of numbers stay on one line: confusion matrices and vectors read better.
            let flat = a.allSatisfy { if case .array = $0 { false } else if case .object = $0 { false } else { true } }
            for (i, e) in a.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")); if flat && indent != nil { bytes.append(0x20) } }
                if !flat { newline(level + 1) }
                value(e, indent: indent, level: level + 1)
            }
            if !flat && !a.isEmpty { newline(level) }
            bytes.append(UInt8(ascii: "]"))
        case .object(let o):
            bytes.append(UInt8(ascii: "{"))
            for (i, (k, e)) in o.pairs.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                newline(level + 1)
                key(k)
                if indent != nil { bytes.append(0x20) }
                value(e, indent: indent, level: level + 1)
            }
            if !o.keys.isEmpty { newline(level) }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// A whole document, pretty-printed with two spaces and a final newline.
    public static func pretty(_ v: JSONValue) -> [UInt8] {
        var w = JSONWriter()
        w.value(v, indent: 2)
        w.bytes.append(0x0A)
        return w.bytes
    }

    public static func compact(_ v: JSONValue) -> [UInt8] {
        var w = JSONWriter()
        w.value(v)
        return w.bytes
    }
}

/// Builds JSON objects tersely: `["code": "x", "line": 3]`.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral s: String) { self = .string(s) }
    public init(integerLiteral i: Int64) { self = .int(i) }
    public init(booleanLiteral b: Bool) { self = .bool(b) }
    public init(floatLiteral d: Double) { self = .double(d) }
    public init(arrayLiteral a: JSONValue...) { self = .array(a) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral pairs: (String, JSONValue)...) { self = .object(JSONObject(pairs)) }
}
