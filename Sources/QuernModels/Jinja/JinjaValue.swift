import Foundation
import QuernCore

/// A value inside a chat template, with Python's semantics: templates are written against
/// jinja2, which evaluates them as Python objects, so equality, truthiness, printing and
/// iteration follow Python (`True`, `None`, `1.0`, `['a', 1]`, `1 == 1.0 == True`).
///
/// Strings are compared, hashed, searched and sliced by Unicode scalar (Python's code
/// point), never by Swift's grapheme and canonical-equivalence rules.
enum JinjaValue {
    /// jinja2's default `Undefined`: prints as "", is false, iterates as empty, and fails
    /// (with `message`) when used in arithmetic, called, or has an attribute taken.
    case undefined(JinjaUndefined)
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case list(JinjaList)
    case tuple(JinjaList)
    case dict(JinjaDict)
    /// A Python `range` (only `range()` makes one).
    case range(JinjaRange)
    /// `dict.items()`, `.keys()` or `.values()`: a view that prints as `dict_items([...])`.
    case view(JinjaView)
    /// A one-shot Python iterator (`selectattr`, `map`, `reverse`, `|items`...): always
    /// true, consumed by the first loop over it, and unprintable (Python shows an address).
    case iterator(JinjaIterator)
    case namespace(JinjaNamespace)
    case loop(JinjaLoop)
    case callable(JinjaCallable)
}

/// Why a value is undefined, in jinja2's words (`'dict object' has no attribute 'x'`).
struct JinjaUndefined {
    var message: String
    /// Set when jinja2's sandbox made it (an unsafe attribute): using it is a security error.
    var unsafe = false

    static func named(_ name: String) -> JinjaUndefined { JinjaUndefined(message: "'\(name)' is undefined") }

    static func attribute(_ name: String, of v: JinjaValue) -> JinjaUndefined {
        JinjaUndefined(message: "'\(v.objectTypeRepr)' has no attribute '\(name)'")
    }

    static func element(_ key: JinjaValue, of v: JinjaValue) -> JinjaUndefined {
        if case .string(let s) = key { return attribute(s, of: v) }
        return JinjaUndefined(message: "\(v.objectTypeRepr) has no element \((try? key.repr()) ?? key.typeName)")
    }
}

/// A list or tuple's items, with its nesting depth kept so a template cannot build a value
/// deep enough to overflow the stack when it is printed, compared or freed.
struct JinjaList {
    let items: [JinjaValue]
    let depth: Int

    init(_ items: [JinjaValue]) throws(JinjaError) {
        self.items = items
        var d = 0
        for v in items { d = max(d, v.depth) }
        depth = d + 1
        if depth > JinjaLimits.maxValueDepth {
            throw .limit("lists and dicts nested deeper than \(JinjaLimits.maxValueDepth) levels")
        }
    }
}

/// A Python dict: insertion-ordered, keyed by Python equality (`1`, `1.0` and `True` are
/// one key), with string keys compared by code point.
struct JinjaDict {
    private(set) var keys: [JinjaValue] = []
    private(set) var values: [JinjaValue] = []
    private var index: [JinjaKey: Int] = [:]
    private(set) var depth = 1

    init() {}

    var count: Int { keys.count }

    subscript(key: JinjaValue) -> JinjaValue? {
        guard let k = try? JinjaKey(key), let i = index[k] else { return nil }
        return values[i]
    }

    subscript(string key: String) -> JinjaValue? {
        guard let i = index[.string(JinjaString(key))] else { return nil }
        return values[i]
    }

    mutating func set(_ key: JinjaValue, _ value: JinjaValue) throws(JinjaError) {
        let k = try JinjaKey(key)
        depth = max(depth, max(key.depth, value.depth) + 1)
        if depth > JinjaLimits.maxValueDepth {
            throw .limit("lists and dicts nested deeper than \(JinjaLimits.maxValueDepth) levels")
        }
        if let i = index[k] {
            values[i] = value
        } else {
            index[k] = keys.count
            keys.append(key)
            values.append(value)
        }
    }

    var pairs: Zip2Sequence<[JinjaValue], [JinjaValue]> { zip(keys, values) }
}

/// A string compared and hashed by its UTF-8 bytes, that is by code point as Python does
/// (Swift's `==` would call "é" and "e\u{301}" equal).
struct JinjaString: Hashable {
    let value: String
    init(_ value: String) { self.value = value }
    static func == (a: JinjaString, b: JinjaString) -> Bool { a.value.utf8.elementsEqual(b.value.utf8) }
    func hash(into h: inout Hasher) {
        var s = value
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// A hashable dict key with Python's equality between numbers.
enum JinjaKey: Hashable {
    case none
    case int(Int64)
    case float(Double)
    case string(JinjaString)
    case tuple([JinjaKey])

    init(_ v: JinjaValue) throws(JinjaError) {
        switch v {
        case .none: self = .none
        case .bool(let b): self = .int(b ? 1 : 0)
        case .int(let i): self = .int(i)
        case .float(let d):
            if d == d.rounded(), abs(d) < 9.2e18 { self = .int(Int64(d)) } else { self = .float(d) }
        case .string(let s): self = .string(JinjaString(s))
        case .tuple(let t):
            var parts: [JinjaKey] = []
            for e in t.items { parts.append(try JinjaKey(e)) }
            self = .tuple(parts)
        default: throw .runtime("unhashable type: '\(v.typeName)'")
        }
    }
}

struct JinjaRange {
    let start: Int64, stop: Int64, step: Int64

    var count: Int {
        if step > 0 { return start < stop ? Int((stop - start - 1) / step + 1) : 0 }
        return start > stop ? Int((start - stop - 1) / -step + 1) : 0
    }

    func element(_ i: Int) -> Int64 { start + Int64(i) * step }
}

struct JinjaView {
    enum Kind: String {
        case items = "dict_items"
        case keys = "dict_keys"
        case values = "dict_values"
    }
    let kind: Kind
    let items: [JinjaValue]
}

/// A Python iterator: what is left of it is shared by every reference, as in Python.
final class JinjaIterator {
    let kind: String
    private var items: [JinjaValue]
    private var position = 0

    init(_ kind: String, _ items: [JinjaValue]) {
        self.kind = kind
        self.items = items
    }

    /// The next item, consumed.
    func next() -> JinjaValue? {
        guard position < items.count else { return nil }
        position += 1
        return items[position - 1]
    }

    /// Everything not yet consumed; the iterator is empty afterwards.
    func drain() -> [JinjaValue] {
        let rest = Array(items[position...])
        position = 0
        items = []
        return rest
    }
}

/// `namespace(...)`: the one mutable object a template has (`{% set ns.x = 1 %}` inside a
/// loop is visible after it).
final class JinjaNamespace {
    var attributes = JinjaDict()
}

/// `loop` inside a for loop.
final class JinjaLoop {
    let items: [JinjaValue]
    var index0 = 0
    var lastChanged: [JinjaValue]?

    init(_ items: [JinjaValue]) { self.items = items }

    var length: Int { items.count }

    func attribute(_ name: String) -> JinjaValue? {
        switch name {
        case "index": .int(Int64(index0 + 1))
        case "index0": .int(Int64(index0))
        case "revindex": .int(Int64(length - index0))
        case "revindex0": .int(Int64(length - index0 - 1))
        case "first": .bool(index0 == 0)
        case "last": .bool(index0 == length - 1)
        case "length": .int(Int64(length))
        case "depth": .int(1)
        case "depth0": .int(0)
        case "previtem":
            index0 > 0 ? items[index0 - 1] : .undefined(JinjaUndefined(message: "there is no previous item"))
        case "nextitem":
            index0 + 1 < length ? items[index0 + 1] : .undefined(JinjaUndefined(message: "there is no next item"))
        case "cycle", "changed": .callable(.loopMethod(self, name))
        default: nil
        }
    }
}

/// Something a template can call.
enum JinjaCallable {
    /// A method of a value (`content.strip`), bound to it.
    indirect case method(JinjaValue, String)
    /// A global function (`range`, `namespace`, `raise_exception`...).
    case global(String)
    case macro(JinjaMacro)
    case loopMethod(JinjaLoop, String)
}

extension JinjaValue {
    /// The nesting depth of containers (a scalar is 0).
    var depth: Int {
        switch self {
        case .list(let l), .tuple(let l): l.depth
        case .dict(let d): d.depth
        default: 0
        }
    }

    static func list(_ items: [JinjaValue]) throws(JinjaError) -> JinjaValue { .list(try JinjaList(items)) }
    static func tuple(_ items: [JinjaValue]) throws(JinjaError) -> JinjaValue { .tuple(try JinjaList(items)) }

    var isUndefined: Bool { if case .undefined = self { true } else { false } }

    /// Python's `type(x).__name__`.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .range: "range"
        case .view(let v): v.kind.rawValue
        case .iterator(let i): i.kind
        case .namespace: "Namespace"
        case .loop: "LoopContext"
        case .callable(.macro): "Macro"
        case .callable(.method): "builtin_function_or_method"
        case .callable: "function"
        }
    }

    /// jinja2's `object_type_repr`, used in its undefined messages: "dict object".
    var objectTypeRepr: String {
        if case .none = self { return "None" }
        switch self {
        case .namespace: return "jinja2.utils.Namespace object"
        case .loop: return "jinja2.runtime.LoopContext object"
        case .callable(.macro): return "jinja2.runtime.Macro object"
        default: return "\(typeName) object"
        }
    }

    /// Python's truth value.
    var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .float(let d): d != 0
        case .string(let s): !s.isEmpty
        case .list(let l), .tuple(let l): !l.items.isEmpty
        case .dict(let d): d.count > 0
        case .range(let r): r.count > 0
        case .view(let v): !v.items.isEmpty
        case .loop(let l): l.length > 0
        case .iterator, .namespace, .callable: true
        }
    }

    /// A JSON value as transformers hands it to the template (objects keep their key order).
    init(json: JSONValue) throws(JinjaError) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .float(d)
        case .string(let s): self = .string(s)
        case .array(let a):
            var items: [JinjaValue] = []
            items.reserveCapacity(a.count)
            for e in a { items.append(try JinjaValue(json: e)) }
            self = try .list(items)
        case .object(let o):
            var d = JinjaDict()
            for (k, v) in o.pairs { try d.set(.string(k), try JinjaValue(json: v)) }
            self = .dict(d)
        }
    }
}

// MARK: - Equality and ordering

extension JinjaValue {
    /// Python's `==`.
    func equals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.items.count == b.items.count && zip(a.items, b.items).allSatisfy { $0.equals($1) }
        case (.dict(let a), .dict(let b)):
            guard a.count == b.count else { return false }
            for (k, v) in a.pairs {
                guard let w = b[k], v.equals(w) else { return false }
            }
            return true
        case (.range(let a), .range(let b)):
            return a.count == b.count && (a.count == 0 || (a.start == b.start && (a.count == 1 || a.step == b.step)))
        case (.view(let a), .view(let b)) where a.kind == b.kind && a.kind != .values:
            return a.items.count == b.items.count && a.items.allSatisfy { x in b.items.contains { $0.equals(x) } }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.loop(let a), .loop(let b)): return a === b
        case (.iterator(let a), .iterator(let b)): return a === b
        default:
            if let a = numeric, let b = other.numeric { return a == b }
            return false
        }
    }

    /// A number as Python compares it (bool is an int).
    var numeric: PyNumber? {
        switch self {
        case .bool(let b): .int(b ? 1 : 0)
        case .int(let i): .int(i)
        case .float(let d): .float(d)
        default: nil
        }
    }

    /// Python's `<` (and friends through it), or the TypeError Python raises.
    func less(_ other: JinjaValue, _ op: String) throws(JinjaError) -> Bool {
        if let a = numeric, let b = other.numeric { return a < b }
        switch (self, other) {
        case (.string(let a), .string(let b)): return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a.items, b.items) where !x.equals(y) { return try x.less(y, op) }
            return a.items.count < b.items.count
        case (.undefined(let u), _), (_, .undefined(let u)): throw .undefined(u)
        default:
            throw .runtime("'\(op)' not supported between instances of '\(typeName)' and '\(other.typeName)'")
        }
    }

    /// Python's `a op b` for `<`, `<=`, `>`, `>=`.
    func compare(_ op: String, _ other: JinjaValue) throws(JinjaError) -> Bool {
        switch op {
        case "<": return try less(other, op)
        case ">": return try other.less(self, op)
        case "<=": return try less(other, op) || equals(other)
        default: return try other.less(self, op) || equals(other)
        }
    }
}

/// An int or a float, compared exactly as Python does across the two.
enum PyNumber: Equatable, Comparable {
    case int(Int64)
    case float(Double)

    var double: Double {
        switch self {
        case .int(let i): Double(i)
        case .float(let d): d
        }
    }

    static func == (a: PyNumber, b: PyNumber) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): x == y
        case (.int(let x), .float(let y)), (.float(let y), .int(let x)): Double(exactly: x).map { $0 == y } ?? false
        case (.float(let x), .float(let y)): x == y
        }
    }

    static func < (a: PyNumber, b: PyNumber) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): x < y
        default: a.double < b.double
        }
    }
}

// MARK: - Iteration and size

extension JinjaValue {
    /// What `for x in value` visits, or Python's TypeError. Undefined iterates as empty.
    func iterate() throws(JinjaError) -> [JinjaValue] {
        switch self {
        case .undefined: return []
        case .list(let l), .tuple(let l): return l.items
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .range(let r): return (0..<r.count).map { .int(r.element($0)) }
        case .view(let v): return v.items
        case .iterator(let i): return i.drain()
        case .loop(let l): return l.items
        default: throw .runtime("'\(typeName)' object is not iterable")
        }
    }

    /// Python's `len(value)`, or its TypeError.
    func length() throws(JinjaError) -> Int {
        switch self {
        case .undefined: return 0
        case .string(let s): return s.unicodeScalars.count
        case .list(let l), .tuple(let l): return l.items.count
        case .dict(let d): return d.count
        case .range(let r): return r.count
        case .view(let v): return v.items.count
        case .loop(let l): return l.length
        default: throw .runtime("object of type '\(typeName)' has no len()")
        }
    }

    /// Python's `needle in self`.
    func contains(_ needle: JinjaValue) throws(JinjaError) -> Bool {
        switch self {
        case .undefined: return false
        case .string(let s):
            guard case .string(let n) = needle else {
                throw .runtime("'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return PyStr.find(Array(s.utf8), Array(n.utf8)) != nil
        case .dict(let d):
            _ = try JinjaKey(needle)
            return d[needle] != nil
        case .list, .tuple, .range, .view, .iterator, .loop:
            return try iterate().contains { $0.equals(needle) }
        default: throw .runtime("argument of type '\(typeName)' is not iterable")
        }
    }
}

// MARK: - Printing

extension JinjaValue {
    /// Python's `str(value)`: what `{{ value }}` prints.
    func str() throws(JinjaError) -> String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return try repr()
        }
    }

    /// Python's `repr(value)`, as containers print their items. Refused past the output
    /// limit (a list holding one long string 100,000 times prints as gigabytes), and for
    /// what Python prints with a memory address.
    func repr() throws(JinjaError) -> String {
        var out = ""
        try appendRepr(to: &out)
        return out
    }

    private func appendRepr(to out: inout String) throws(JinjaError) {
        func items(_ xs: [JinjaValue], _ open: String, _ close: String) throws(JinjaError) {
            out += open
            for (i, x) in xs.enumerated() {
                if i > 0 { out += ", " }
                try x.appendRepr(to: &out)
            }
            out += close
        }
        func dict(_ d: JinjaDict) throws(JinjaError) {
            out += "{"
            for (i, (k, v)) in d.pairs.enumerated() {
                if i > 0 { out += ", " }
                try k.appendRepr(to: &out)
                out += ": "
                try v.appendRepr(to: &out)
            }
            out += "}"
        }
        switch self {
        case .undefined: out += "Undefined"
        case .none: out += "None"
        case .bool(let b): out += b ? "True" : "False"
        case .int(let i): out += String(i)
        case .float(let d): out += PyFormat.floatRepr(d)
        case .string(let s): out += PyFormat.stringRepr(s)
        case .list(let l): try items(l.items, "[", "]")
        case .tuple(let l): try items(l.items, "(", l.items.count == 1 ? ",)" : ")")
        case .dict(let d): try dict(d)
        case .range(let r): out += "range(\(r.start), \(r.stop)" + (r.step == 1 ? ")" : ", \(r.step))")
        case .view(let v): try items(v.items, v.kind.rawValue + "([", "])")
        case .namespace(let n):
            out += "<Namespace "
            try dict(n.attributes)
            out += ">"
        case .loop(let l): out += "<LoopContext \(l.index0 + 1)/\(l.length)>"
        case .callable(.macro(let m)): out += "<Macro '\(m.name)'>"
        case .iterator(let i):
            throw .runtime("cannot print a \(i.kind) object (Python prints its address); add |list")
        case .callable: throw .runtime("cannot print a function (Python prints its address)")
        }
        if out.utf8.count > JinjaLimits.maxOutputBytes {
            throw .limit("a printed value of more than \(JinjaLimits.maxOutputBytes) bytes")
        }
    }
}

// MARK: - Operators

/// Python's operators on template values.
enum JinjaOperators {
    /// `a op b` for `+ - * / // % **`.
    static func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue, _ interpreter: JinjaInterpreter)
        throws(JinjaError) -> JinjaValue
    {
        if case .undefined(let u) = a { throw .undefined(u) }
        if case .undefined(let u) = b { throw .undefined(u) }
        if let x = a.numeric, let y = b.numeric { return try arithmetic(op, x, y) }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return try interpreter.made(x + y)
        case ("+", .list(let x), .list(let y)): return try interpreter.makeList(x.items + y.items)
        case ("+", .tuple(let x), .tuple(let y)): return try .tuple(x.items + y.items)
        case ("+", .string, _):
            throw .runtime("can only concatenate str (not \"\(b.typeName)\") to str")
        case ("+", .list, _):
            throw .runtime("can only concatenate list (not \"\(b.typeName)\") to list")
        case ("*", .string(let s), _), ("*", _, .string(let s)):
            guard let n = (a.numeric == nil ? b : a).repeatCount else { break }
            try interpreter.charge(try repeated(s.utf8.count, n))
            return try interpreter.made(String(repeating: s, count: n))
        case ("*", .list(let l), _), ("*", _, .list(let l)):
            guard let n = (a.numeric == nil ? b : a).repeatCount else { break }
            try interpreter.charge(try repeated(16 * l.items.count, n))
            return try interpreter.makeList(Array([[JinjaValue]](repeating: l.items, count: n).joined()))
        case ("%", .string(let format), _):
            return try interpreter.made(try PyFormat.percent(format, b))
        default: break
        }
        throw .runtime("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }

    /// The size of `n` copies of `size` bytes, refused before anything is built when it is
    /// past the output limit (`'a' * 10**12`).
    private static func repeated(_ size: Int, _ n: Int) throws(JinjaError) -> Int {
        let (total, overflow) = size.multipliedReportingOverflow(by: n)
        if overflow || total > JinjaLimits.maxOutputBytes {
            throw .limit("a repeated string or list of more than \(JinjaLimits.maxOutputBytes) bytes")
        }
        return total
    }

    private static func arithmetic(_ op: String, _ a: PyNumber, _ b: PyNumber) throws(JinjaError) -> JinjaValue {
        if case .int(let x) = a, case .int(let y) = b {
            func checked(_ r: (Int64, Bool)) throws(JinjaError) -> JinjaValue {
                if r.1 { throw .unsupported("integer arithmetic beyond 64 bits") }
                return .int(r.0)
            }
            switch op {
            case "+": return try checked(x.addingReportingOverflow(y))
            case "-": return try checked(x.subtractingReportingOverflow(y))
            case "*": return try checked(x.multipliedReportingOverflow(by: y))
            case "//", "%":
                if y == 0 { throw .runtime("integer division or modulo by zero") }
                if x == .min && y == -1 { throw .unsupported("integer arithmetic beyond 64 bits") }
                var q = x / y, r = x % y
                if r != 0 && ((r < 0) != (y < 0)) {
                    q -= 1
                    r += y
                }
                return .int(op == "//" ? q : r)
            case "**":
                if y < 0 { return try arithmetic(op, .float(Double(x)), .float(Double(y))) }
                var result: Int64 = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)).intValue }
                    e >>= 1
                    if e > 0 { base = try checked(base.multipliedReportingOverflow(by: base)).intValue }
                }
                return .int(result)
            default: break
            }
        }
        let x = a.double, y = b.double
        switch op {
        case "+": return .float(x + y)
        case "-": return .float(x - y)
        case "*": return .float(x * y)
        case "/":
            if y == 0 { throw .runtime("division by zero") }
            return .float(x / y)
        case "//", "%":
            if y == 0 { throw .runtime("float floor division by zero") }
            // CPython's float_divmod.
            var mod = fmod(x, y)
            var div = (x - mod) / y
            if mod != 0 {
                if (y < 0) != (mod < 0) {
                    mod += y
                    div -= 1
                }
            } else {
                mod = y.sign == .minus ? -0.0 : 0.0
            }
            var floorDiv: Double
            if div != 0 {
                floorDiv = div.rounded(.down)
                if div - floorDiv > 0.5 { floorDiv += 1 }
            } else {
                floorDiv = (x / y).sign == .minus ? -0.0 : 0.0
            }
            return .float(op == "//" ? floorDiv : mod)
        default:
            if x == 0 && y < 0 { throw .runtime("0.0 cannot be raised to a negative power") }
            if x < 0 && y != y.rounded() { throw .unsupported("a negative number to a fractional power (complex)") }
            return .float(pow(x, y))
        }
    }

    static func negate(_ v: JinjaValue) throws(JinjaError) -> JinjaValue {
        switch v {
        case .undefined(let u): throw .undefined(u)
        case .bool(let b): return .int(b ? -1 : 0)
        case .int(let i):
            if i == .min { throw .unsupported("integer arithmetic beyond 64 bits") }
            return .int(-i)
        case .float(let d): return .float(-d)
        default: throw .runtime("bad operand type for unary -: '\(v.typeName)'")
        }
    }

    static func plus(_ v: JinjaValue) throws(JinjaError) -> JinjaValue {
        switch v {
        case .undefined(let u): throw .undefined(u)
        case .bool(let b): return .int(b ? 1 : 0)
        case .int, .float: return v
        default: throw .runtime("bad operand type for unary +: '\(v.typeName)'")
        }
    }

    /// One link of a comparison chain: eq ne lt lteq gt gteq in notin.
    static func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws(JinjaError) -> Bool {
        switch op {
        case "eq": return a.equals(b)
        case "ne": return !a.equals(b)
        case "lt": return try a.compare("<", b)
        case "lteq": return try a.compare("<=", b)
        case "gt": return try a.compare(">", b)
        case "gteq": return try a.compare(">=", b)
        case "in": return try b.contains(a)
        default: return !(try b.contains(a))
        }
    }
}

extension JinjaValue {
    /// The count in `"ab" * n` (bools count; negative means zero), if this is an int.
    fileprivate var repeatCount: Int? {
        switch self {
        case .int(let i): Int(clamping: max(i, 0))
        case .bool(let b): b ? 1 : 0
        default: nil
        }
    }

    fileprivate var intValue: Int64 { if case .int(let i) = self { i } else { 0 } }
}
