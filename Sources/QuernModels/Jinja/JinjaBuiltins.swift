import Foundation

/// jinja2's library as transformers' sandbox exposes it: attribute and item access, the
/// filters, the tests, the methods of str/dict/list that templates call, and the globals
/// (`range`, `dict`, `namespace`, `raise_exception`, `strftime_now`).
enum JinjaBuiltins {
    // MARK: Names

    static let filters: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "format",
        "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title",
        "tojson", "trim", "unique", "upper", "wordcount"
    ]
    /// jinja2 filters outside the subset: a template using one is refused, never rendered
    /// differently.
    static let unsupportedFilters: Set<String> = [
        "batch", "center", "filesizeformat", "forceescape", "groupby", "pprint", "random", "slice", "striptags",
        "truncate", "urlencode", "urlize", "wordwrap", "xmlattr"
    ]
    static let tests: Set<String> = [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt",
        "lessthan", "<=", "le"
    ]

    static func checkFilter(_ name: String, line: Int) throws(JinjaError) {
        if filters.contains(name) { return }
        if unsupportedFilters.contains(name) { throw .unsupported("the filter '\(name)' is not supported", line: line) }
        throw .syntax("No filter named '\(name)'.", line: line)
    }

    static func checkTest(_ name: String, line: Int) throws(JinjaError) {
        if !tests.contains(name) { throw .syntax("No test named '\(name)'.", line: line) }
    }

    /// transformers refuses namespace attributes that start with "_".
    static func checkNamespaceName(_ name: String) throws(JinjaError) {
        if name.hasPrefix("_") {
            throw .runtime(
                "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(name)'. "
                    + "Please rename the attribute.")
        }
    }

    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
        "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
        "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill"
    ]
    static let dictMethods: Set<String> = [
        "copy", "fromkeys", "get", "items", "keys", "values", "clear", "pop", "popitem", "setdefault", "update"
    ]
    static let listMethods: Set<String> = [
        "copy", "count", "index", "append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"
    ]
    /// What jinja2's ImmutableSandboxedEnvironment refuses (`modifies_known_mutable`).
    static let mutators: Set<String> = [
        "clear", "pop", "popitem", "setdefault", "update", "append", "extend", "insert", "remove", "reverse", "sort"
    ]
    static let numberAttributes: Set<String> = [
        "real", "imag", "conjugate", "numerator", "denominator", "bit_length", "bit_count", "to_bytes", "from_bytes",
        "as_integer_ratio", "is_integer", "hex", "fromhex"
    ]

    // MARK: Attributes and items

    /// `value.name`: jinja2 tries the Python attribute, then the item.
    static func attribute(_ v: JinjaValue, _ name: String) throws(JinjaError) -> JinjaValue {
        if case .undefined(let u) = v { throw .undefined(u) }
        if let a = try pythonAttribute(v, name) { return a }
        if case .dict(let d) = v, let item = d[string: name] { return item }
        return .undefined(.attribute(name, of: v))
    }

    /// The Python attribute `name` of `v`, or nil if it has none.
    static func pythonAttribute(_ v: JinjaValue, _ name: String) throws(JinjaError) -> JinjaValue? {
        if name.hasPrefix("__") && name.hasSuffix("__") {
            return .undefined(
                JinjaUndefined(
                    message: "access to attribute '\(name)' of '\(v.typeName)' object is unsafe.", unsafe: true))
        }
        var methods: Set<String> = []
        switch v {
        case .string: methods = stringMethods
        case .dict: methods = dictMethods
        case .list: methods = listMethods
        case .tuple: methods = ["count", "index"]
        case .namespace(let ns): return ns.attributes[string: name]
        case .loop(let l): return l.attribute(name)
        case .range(let r):
            switch name {
            case "start": return .int(r.start)
            case "stop": return .int(r.stop)
            case "step": return .int(r.step)
            default: methods = ["count", "index"]
            }
        case .int, .float, .bool:
            if numberAttributes.contains(name) {
                throw .unsupported("the attribute '\(name)' of \(v.typeName) values is not supported")
            }
        default: break
        }
        guard methods.contains(name) else { return nil }
        if mutators.contains(name) {
            return .undefined(
                JinjaUndefined(
                    message: "access to attribute '\(name)' of '\(v.typeName)' object is unsafe.", unsafe: true))
        }
        return .callable(.method(v, name))
    }

    /// `value[key]`: jinja2 tries the item, then (for a string key) the attribute.
    static func item(_ v: JinjaValue, _ key: JinjaValue) throws(JinjaError) -> JinjaValue {
        if case .undefined(let u) = v { throw .undefined(u) }
        switch v {
        case .dict(let d):
            if let item = d[key] { return item }
        case .list(let l), .tuple(let l):
            if let i = key.indexValue, let j = PySlice.index(i, count: l.items.count) { return l.items[j] }
        case .string(let s):
            if let i = key.indexValue {
                let u = Array(s.unicodeScalars)
                if let j = PySlice.index(i, count: u.count) { return .string(String(u[j])) }
            }
        case .range(let r):
            if let i = key.indexValue, let j = PySlice.index(i, count: r.count) { return .int(r.element(j)) }
        default: break
        }
        if case .string(let name) = key, let a = try pythonAttribute(v, name) { return a }
        return .undefined(.element(key, of: v))
    }

    // MARK: Filters

    static func filter(_ name: String, _ v: JinjaValue, _ a: JinjaCallArguments, _ it: JinjaInterpreter)
        throws(JinjaError) -> JinjaValue
    {
        switch name {
        case "abs":
            _ = try a.bind(name, [])
            switch v {
            case .int(let i):
                if i == .min { throw .unsupported("integer arithmetic beyond 64 bits") }
                return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .float(let d): return .float(abs(d))
            case .undefined(let u): throw .undefined(u)
            default: throw .runtime("bad operand type for abs(): '\(v.typeName)'")
            }
        case "attr":
            let p = try a.bind(name, ["name"])
            if case .undefined(let u) = v { throw .undefined(u) }
            let attr = try (p[0] ?? JinjaValue.none).str()
            return try pythonAttribute(v, attr) ?? .undefined(.attribute(attr, of: v))
        case "capitalize": return try it.made(PyStr.capitalize(try v.str()))
        case "count", "length":
            _ = try a.bind(name, [])
            return .int(Int64(try v.length()))
        case "d", "default":
            let p = try a.bind(name, ["default_value", "boolean"])
            if v.isUndefined || ((p[1]?.truthy ?? false) && !v.truthy) { return p[0] ?? .string("") }
            return v
        case "dictsort":
            let p = try a.bind(name, ["case_sensitive", "by", "reverse"])
            guard case .dict(let d) = v else { throw .runtime("'\(v.typeName)' object has no attribute 'items'") }
            let by = try (p[1] ?? .string("key")).str()
            guard by == "key" || by == "value" else {
                throw .runtime("You can only sort by either \"key\" or \"value\"")
            }
            let caseSensitive = p[0]?.truthy ?? false
            var pairs: [JinjaValue] = []
            for (k, x) in d.pairs { pairs.append(try .tuple([k, x])) }
            let sorted = try stableSort(pairs, reverse: p[2]?.truthy ?? false, it) { pair throws(JinjaError) in
                guard case .tuple(let t) = pair else { return pair }
                let key = t.items[by == "key" ? 0 : 1]
                return caseSensitive ? key : ignoreCase(key)
            }
            return try it.makeList(sorted)
        case "e", "escape":
            _ = try a.bind(name, [])
            return try it.made(htmlEscape(try v.str()))
        case "first":
            _ = try a.bind(name, [])
            if case .iterator(let i) = v {
                return i.next() ?? .undefined(JinjaUndefined(message: "No first item, sequence was empty."))
            }
            return try v.iterate().first ?? .undefined(JinjaUndefined(message: "No first item, sequence was empty."))
        case "float":
            let p = try a.bind(name, ["default"])
            return try toFloat(v) ?? p[0] ?? .float(0)
        case "format":
            if !a.positional.isEmpty && !a.keywords.isEmpty {
                throw .runtime("can't handle positional and keyword arguments at the same time")
            }
            let args: JinjaValue
            if a.keywords.isEmpty {
                args = try .tuple(a.positional)
            } else {
                var d = JinjaDict()
                for (k, x) in a.keywords { try d.set(.string(k), x) }
                args = .dict(d)
            }
            return try it.made(try PyFormat.percent(try v.str(), args))
        case "indent":
            let p = try a.bind(name, ["width", "first", "blank"])
            return try it.made(try indent(try v.str(), p[0] ?? .int(4), p[1]?.truthy ?? false, p[2]?.truthy ?? false))
        case "int":
            let p = try a.bind(name, ["default", "base"])
            var base = 10
            if let b = p[1] {
                guard case .int(let x) = b, x == 0 || (2...36).contains(x) else {
                    throw .runtime("int() base must be >= 2 and <= 36, or 0")
                }
                base = Int(x)
            }
            return try toInt(v, base: base) ?? p[0] ?? .int(0)
        case "items":
            _ = try a.bind(name, [])
            if v.isUndefined { return .iterator(JinjaIterator("generator", [])) }
            guard case .dict(let d) = v else { throw .runtime("Can only get item pairs from a mapping.") }
            var pairs: [JinjaValue] = []
            for (k, x) in d.pairs { pairs.append(try .tuple([k, x])) }
            return .iterator(JinjaIterator("generator", pairs))
        case "join":
            let p = try a.bind(name, ["d", "attribute"])
            var items = try v.iterate()
            if let attr = p[1] { items = try items.map { x throws(JinjaError) in try attributePath(x, attr, it) } }
            try it.step(items.count)
            let sep = try (p[0] ?? .string("")).str()
            var parts: [String] = []
            for x in items { parts.append(try x.str()) }
            return try it.made(try joined(parts, sep))
        case "last":
            _ = try a.bind(name, [])
            switch v {
            case .iterator(let i): throw .runtime("'\(i.kind)' object is not reversible")
            case .undefined(let u): throw .undefined(u)
            default:
                return try v.iterate().last ?? .undefined(JinjaUndefined(message: "No last item, sequence was empty."))
            }
        case "list":
            _ = try a.bind(name, [])
            return try it.makeList(try v.iterate())
        case "lower":
            _ = try a.bind(name, [])
            return try it.made(PyStr.lower(try v.str()))
        case "upper":
            _ = try a.bind(name, [])
            return try it.made(PyStr.upper(try v.str()))
        case "map": return try map(v, a, it)
        case "max", "min":
            let p = try a.bind(name, ["case_sensitive", "attribute"])
            let items = try v.iterate()
            try it.step(items.count)
            guard var best = items.first else {
                return .undefined(JinjaUndefined(message: "No aggregated item, sequence was empty."))
            }
            let caseSensitive = p[0]?.truthy ?? false
            func key(_ x: JinjaValue) throws(JinjaError) -> JinjaValue {
                let k = try p[1].map { attr throws(JinjaError) in try attributePath(x, attr, it) } ?? x
                return caseSensitive ? k : ignoreCase(k)
            }
            var bestKey = try key(best)
            for x in items.dropFirst() {
                let k = try key(x)
                if name == "max" ? try bestKey.less(k, "<") : try k.less(bestKey, "<") {
                    best = x
                    bestKey = k
                }
            }
            return best
        case "reject", "select", "rejectattr", "selectattr": return try select(name, v, a, it)
        case "replace":
            let p = try a.bind(name, ["old", "new", "count"])
            guard let old = p[0], let new = p[1] else { throw .runtime("replace() missing required arguments") }
            var count = -1
            if let c = p[2], case .int(let n) = c { count = Int(clamping: n) }
            return try it.made(try PyStr.replace(try v.str(), try old.str(), try new.str(), count))
        case "reverse":
            _ = try a.bind(name, [])
            switch v {
            case .string(let s): return try it.made(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            case .list, .tuple, .range, .dict, .view:
                return .iterator(JinjaIterator("list_reverseiterator", try v.iterate().reversed()))
            case .iterator:
                return try it.makeList(try v.iterate().reversed())
            default: throw .runtime("argument must be iterable")
            }
        case "round":
            let p = try a.bind(name, ["precision", "method"])
            let method = try (p[1] ?? .string("common")).str()
            guard ["common", "ceil", "floor"].contains(method) else {
                throw .runtime("method must be common, ceil or floor")
            }
            var precision = 0
            if let x = p[0] {
                guard case .int(let i) = x else {
                    throw .runtime("'\(x.typeName)' object cannot be interpreted as an integer")
                }
                precision = Int(clamping: max(-400, min(i, 400)))
            }
            return try round(v, precision, method)
        case "safe":
            _ = try a.bind(name, [])
            return .string(try v.str())
        case "sort":
            let p = try a.bind(name, ["reverse", "case_sensitive", "attribute"])
            let caseSensitive = p[1]?.truthy ?? false
            let attributes = try p[2].map { x throws(JinjaError) in try x.str().split(separator: ",").map(String.init) }
            let sorted = try stableSort(try v.iterate(), reverse: p[0]?.truthy ?? false, it) { x throws(JinjaError) in
                guard let attributes else { return caseSensitive ? x : ignoreCase(x) }
                var keys: [JinjaValue] = []
                for attr in attributes {
                    let k = try attributePath(x, .string(attr), it)
                    keys.append(caseSensitive ? k : ignoreCase(k))
                }
                return try .list(keys)
            }
            return try it.makeList(sorted)
        case "string":
            _ = try a.bind(name, [])
            return try it.made(try v.str())
        case "sum":
            let p = try a.bind(name, ["attribute", "start"])
            var total = p[1] ?? .int(0)
            for x in try v.iterate() {
                try it.step()
                let item = try p[0].map { attr throws(JinjaError) in try attributePath(x, attr, it) } ?? x
                total = try JinjaOperators.binary("+", total, item, it)
            }
            return total
        case "title":
            _ = try a.bind(name, [])
            return try it.made(PyStr.jinjaTitle(try v.str()))
        case "tojson":
            let p = try a.bind(name, ["ensure_ascii", "indent", "separators", "sort_keys"])
            return try it.made(try PyFormat.json(v, try jsonOptions(p)))
        case "trim":
            let p = try a.bind(name, ["chars"])
            let chars: String? =
                switch p[0] {
                case nil, .some(.none): nil
                case .some(let c): try c.str()
                }
            return try it.made(PyStr.strip(try v.str(), chars, leading: true, trailing: true))
        case "unique":
            let p = try a.bind(name, ["case_sensitive", "attribute"])
            var seen = Set<JinjaKey>()
            var out: [JinjaValue] = []
            for x in try v.iterate() {
                try it.step()
                var k = try p[1].map { attr throws(JinjaError) in try attributePath(x, attr, it) } ?? x
                if !(p[0]?.truthy ?? false) { k = ignoreCase(k) }
                if seen.insert(try JinjaKey(k)).inserted { out.append(x) }
            }
            return .iterator(JinjaIterator("generator", out))
        case "wordcount":
            _ = try a.bind(name, [])
            var count = 0
            var inWord = false
            for c in try v.str().unicodeScalars {
                let word = c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
                if word && !inWord { count += 1 }
                inWord = word
            }
            return .int(Int64(count))
        default:
            throw .unsupported("the filter '\(name)' is not supported")
        }
    }

    /// `sep.join(parts)`, refused before it is built when past the output limit.
    private static func joined(_ parts: [String], _ sep: String) throws(JinjaError) -> String {
        var total = sep.utf8.count * max(0, parts.count - 1)
        for p in parts { total += p.utf8.count }
        if total > JinjaLimits.maxOutputBytes { throw .limit("a joined string of \(total) bytes") }
        return parts.joined(separator: sep)
    }

    /// jinja2's `ignore_case`: strings compare lower-cased.
    private static func ignoreCase(_ v: JinjaValue) -> JinjaValue {
        if case .string(let s) = v { return .string(PyStr.lower(s)) }
        return v
    }

    /// Python's `sorted(items, key=key, reverse=reverse)`: stable, and stable in reverse too.
    private static func stableSort(
        _ items: [JinjaValue], reverse: Bool, _ it: JinjaInterpreter,
        key: (JinjaValue) throws(JinjaError) -> JinjaValue
    ) throws(JinjaError) -> [JinjaValue] {
        try it.step(items.count)
        var keyed: [(key: JinjaValue, index: Int)] = []
        for (i, x) in items.enumerated() { keyed.append((try key(x), i)) }
        var failure: JinjaError?
        keyed.sort { a, b in
            do {
                let before = reverse ? try b.key.less(a.key, "<") : try a.key.less(b.key, "<")
                if before { return true }
                let after = reverse ? try a.key.less(b.key, "<") : try b.key.less(a.key, "<")
                return after ? false : a.index < b.index
            } catch let e as JinjaError {
                failure = e
                return false
            } catch {
                return false
            }
        }
        if let failure { throw failure }
        return keyed.map { items[$0.index] }
    }

    /// jinja2's attribute getter for `map`, `sort`, `selectattr`...: dotted parts, digits
    /// as list indexes, each looked up as an item first.
    private static func attributePath(_ v: JinjaValue, _ attribute: JinjaValue, _ it: JinjaInterpreter)
        throws(JinjaError) -> JinjaValue
    {
        guard case .string(let path) = attribute else { return try item(v, attribute) }
        var x = v
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            let p = String(part)
            let key: JinjaValue =
                !p.isEmpty && p.unicodeScalars.allSatisfy({ $0.properties.numericType == .decimal })
                ? (Int64(p).map { .int($0) } ?? .string(p)) : .string(p)
            x = try item(x, key)
        }
        return x
    }

    private static func map(_ v: JinjaValue, _ a: JinjaCallArguments, _ it: JinjaInterpreter) throws(JinjaError)
        -> JinjaValue
    {
        let items = try v.iterate()
        try it.step(items.count)
        var out: [JinjaValue] = []
        if a.positional.isEmpty, let attrIndex = a.keywords.firstIndex(where: { $0.0 == "attribute" }) {
            let attr = a.keywords[attrIndex].1
            let fallback = a.keywords.first { $0.0 == "default" }?.1
            if let extra = a.keywords.first(where: { $0.0 != "attribute" && $0.0 != "default" }) {
                throw .runtime("Unexpected keyword argument '\(extra.0)'")
            }
            for x in items {
                var y = try attributePath(x, attr, it)
                if let fallback, y.isUndefined {
                    if case .none = fallback {} else { y = fallback }
                }
                out.append(y)
            }
        } else {
            guard let first = a.positional.first else { throw .runtime("map requires a filter argument") }
            let filterName = try first.str()
            guard filters.contains(filterName) else {
                if unsupportedFilters.contains(filterName) {
                    throw .unsupported("the filter '\(filterName)' is not supported")
                }
                throw .runtime("No filter named '\(filterName)'.")
            }
            let rest = JinjaCallArguments(positional: Array(a.positional.dropFirst()), keywords: a.keywords)
            for x in items { out.append(try filter(filterName, x, rest, it)) }
        }
        return .iterator(JinjaIterator("generator", out))
    }

    private static func select(_ name: String, _ v: JinjaValue, _ a: JinjaCallArguments, _ it: JinjaInterpreter)
        throws(JinjaError) -> JinjaValue
    {
        let byAttribute = name.hasSuffix("attr")
        let keep = name.hasPrefix("select")
        var args = a.positional
        var attribute: JinjaValue?
        if byAttribute {
            guard !args.isEmpty else { throw .runtime("Missing parameter for attribute name") }
            attribute = args.removeFirst()
        }
        var testName: String?
        if !args.isEmpty {
            testName = try args.removeFirst().str()
            guard let t = testName, tests.contains(t) else { throw .runtime("No test named '\(testName ?? "")'.") }
        }
        let rest = JinjaCallArguments(positional: args, keywords: a.keywords)
        let items = try v.iterate()
        try it.step(items.count)
        var out: [JinjaValue] = []
        for x in items {
            let subject = try attribute.map { attr throws(JinjaError) in try attributePath(x, attr, it) } ?? x
            let passes = try testName.map { t throws(JinjaError) in try test(t, subject, rest, it) } ?? subject.truthy
            if passes == keep { out.append(x) }
        }
        return .iterator(JinjaIterator("generator", out))
    }

    private static func htmlEscape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "'": out += "&#39;"
            case "\"": out += "&#34;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func indent(_ s: String, _ width: JinjaValue, _ first: Bool, _ blank: Bool) throws(JinjaError)
        -> String
    {
        let pad: String
        switch width {
        case .string(let w): pad = w
        case .int(let n): pad = String(repeating: " ", count: Int(clamping: max(0, min(n, 4096))))
        case .bool(let b): pad = b ? " " : ""
        default: throw .runtime("can't multiply sequence by non-int of type '\(width.typeName)'")
        }
        // jinja2 appends a newline so that splitlines keeps a trailing empty line.
        var lines = PyStr.splitLines(s + "\n")
        let (padding, overflow) = pad.utf8.count.multipliedReportingOverflow(by: lines.count + 1)
        if overflow || s.utf8.count + padding > JinjaLimits.maxOutputBytes {
            throw .limit("an indented string of more than \(JinjaLimits.maxOutputBytes) bytes")
        }
        var out: String
        if blank {
            out = lines.joined(separator: "\n" + pad)
        } else {
            out = lines.isEmpty ? "" : lines.removeFirst()
            if !lines.isEmpty { out += "\n" + lines.map { $0.isEmpty ? $0 : pad + $0 }.joined(separator: "\n") }
        }
        return first ? pad + out : out
    }

    /// Python's `float(value)`, nil where it raises TypeError or ValueError.
    private static func toFloat(_ v: JinjaValue) throws(JinjaError) -> JinjaValue? {
        switch v {
        case .undefined(let u): throw .undefined(u)
        case .bool(let b): return .float(b ? 1 : 0)
        case .int(let i): return .float(Double(i))
        case .float: return v
        case .string(let s): return PyNumberParser.float(s).map { .float($0) }
        default: return nil
        }
    }

    /// jinja2's `|int`: `int(value, base)` for strings, `int(value)` otherwise, then
    /// `int(float(value))`; nil where all fail.
    private static func toInt(_ v: JinjaValue, base: Int) throws(JinjaError) -> JinjaValue? {
        switch v {
        case .undefined(let u): throw .undefined(u)
        case .bool(let b): return .int(b ? 1 : 0)
        case .int: return v
        case .float(let d): return try truncate(d)
        case .string(let s):
            if let i = try PyNumberParser.int(s, base: base) { return .int(i) }
            if let d = PyNumberParser.float(s) { return try truncate(d) }
            return nil
        default: return nil
        }
    }

    private static func truncate(_ d: Double) throws(JinjaError) -> JinjaValue? {
        if !d.isFinite { return nil }
        guard let i = Int64(exactly: d.rounded(.towardZero)) else {
            throw .unsupported("an integer beyond 64 bits")
        }
        return .int(i)
    }

    private static func round(_ v: JinjaValue, _ precision: Int, _ method: String) throws(JinjaError) -> JinjaValue {
        if case .undefined(let u) = v { throw .undefined(u) }
        guard let n = v.numeric else { throw .runtime("type \(v.typeName) doesn't define __round__ method") }
        let scale = pow(10.0, Double(precision))
        if method != "common" {
            let x = n.double * scale
            return .float((method == "ceil" ? x.rounded(.up) : x.rounded(.down)) / scale)
        }
        switch n {
        case .int(let i):
            if precision >= 0 { return .int(i) }
            // Round half to even at 10^-precision, as int.__round__ does.
            guard precision > -19 else { return .int(0) }
            var m: Int64 = 1
            for _ in 0..<(-precision) { m *= 10 }
            var q = i / m, r = i % m
            if r < 0 {
                q -= 1
                r += m
            }
            if 2 * r > m || (2 * r == m && q % 2 != 0) { q += 1 }
            let (result, overflow) = q.multipliedReportingOverflow(by: m)
            if overflow { throw .unsupported("integer arithmetic beyond 64 bits") }
            return .int(result)
        case .float(let d):
            if !d.isFinite { return .float(d) }
            if precision == 0 { return .float(d.rounded(.toNearestOrEven)) }
            // CPython rounds the exact binary value in decimal, as printf does.
            let text = String(format: "%.\(max(0, min(precision, 300)))f", d)
            return .float(Double(text) ?? d)
        }
    }

    private static func jsonOptions(_ p: [JinjaValue?]) throws(JinjaError) -> PyFormat.JSONOptions {
        var o = PyFormat.JSONOptions()
        o.ensureASCII = p[0]?.truthy ?? false
        switch p[1] {
        case nil, .some(.none): break
        case .some(.string(let s)): o.indent = s
        case .some(.int(let n)): o.indent = String(repeating: " ", count: Int(clamping: max(0, min(n, 4096))))
        case .some(.bool(let b)): o.indent = b ? " " : ""
        case .some(let x): throw .runtime("indent must be an int or a string, not \(x.typeName)")
        }
        if o.indent != nil { o.itemSeparator = "," }
        if let s = p[2], !(s.isUndefined) {
            if case .none = s {
            } else {
                let parts = try s.iterate()
                guard parts.count == 2, case .string(let item) = parts[0], case .string(let key) = parts[1] else {
                    throw .runtime("separators must be a pair of strings")
                }
                o.itemSeparator = item
                o.keySeparator = key
            }
        }
        o.sortKeys = p[3]?.truthy ?? false
        return o
    }

    // MARK: Tests

    static func test(_ name: String, _ v: JinjaValue, _ a: JinjaCallArguments, _ it: JinjaInterpreter)
        throws(JinjaError) -> Bool
    {
        func other() throws(JinjaError) -> JinjaValue {
            guard let x = try a.bind(name, ["other"])[0] else {
                throw .runtime("\(name)() missing 1 required positional argument")
            }
            return x
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true } else { return false }
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .float = v { return true } else { return false }
        case "number": return v.numeric != nil
        case "string": if case .string = v { return true } else { return false }
        case "mapping": if case .dict = v { return true } else { return false }
        case "sequence":
            switch v {
            case .string, .list, .tuple, .dict, .range, .undefined: return true
            default: return false
            }
        case "iterable":
            switch v {
            case .string, .list, .tuple, .dict, .range, .view, .iterator, .loop, .undefined: return true
            default: return false
            }
        case "callable":
            switch v {
            case .callable, .undefined, .loop: return true
            default: return false
            }
        case "escaped": return false
        case "lower":
            let s = try v.str()
            return s.unicodeScalars.contains { $0.properties.isCased } && PyStr.lower(s) == s
        case "upper":
            let s = try v.str()
            return s.unicodeScalars.contains { $0.properties.isCased } && PyStr.upper(s) == s
        case "odd", "even":
            let r = try JinjaOperators.binary("%", v, .int(2), it)
            return r.equals(.int(1)) == (name == "odd")
        case "divisibleby":
            return try JinjaOperators.binary("%", v, try other(), it).equals(.int(0))
        case "sameas":
            let x = try other()
            switch (v, x) {
            case (.none, .none): return true
            case (.bool(let p), .bool(let q)): return p == q
            case (.namespace, _), (.loop, _), (.iterator, _): return v.equals(x)
            default: return false
            }
        case "in": return try other().contains(v)
        case "==", "eq", "equalto": return v.equals(try other())
        case "!=", "ne": return !v.equals(try other())
        case ">", "gt", "greaterthan": return try v.compare(">", try other())
        case ">=", "ge": return try v.compare(">=", try other())
        case "<", "lt", "lessthan": return try v.compare("<", try other())
        case "<=", "le": return try v.compare("<=", try other())
        case "filter":
            let f = try v.str()
            return filters.contains(f) || unsupportedFilters.contains(f)
        case "test": return tests.contains(try v.str())
        default: throw .unsupported("the test '\(name)' is not supported")
        }
    }

    // MARK: Methods

    static func method(_ receiver: JinjaValue, _ name: String, _ a: JinjaCallArguments, _ it: JinjaInterpreter)
        throws(JinjaError) -> JinjaValue
    {
        switch receiver {
        case .string(let s): return try stringMethod(s, name, a, it)
        case .dict(let d):
            switch name {
            case "get":
                let p = try a.bind(name, ["key", "default"])
                guard let key = p[0] else { throw .runtime("get expected at least 1 argument, got 0") }
                _ = try JinjaKey(key)
                return d[key] ?? p[1] ?? JinjaValue.none
            case "items", "keys", "values":
                _ = try a.bind(name, [])
                var items: [JinjaValue] = []
                for (k, x) in d.pairs { items.append(name == "items" ? try .tuple([k, x]) : name == "keys" ? k : x) }
                return .view(JinjaView(kind: JinjaView.Kind(rawValue: "dict_" + name)!, items: items))
            case "copy":
                _ = try a.bind(name, [])
                return receiver
            default: break
            }
        case .list(let l), .tuple(let l):
            switch name {
            case "copy":
                _ = try a.bind(name, [])
                return receiver
            case "count":
                guard let x = try a.bind(name, ["value"])[0] else {
                    throw .runtime("count() takes exactly one argument")
                }
                return .int(Int64(l.items.filter { $0.equals(x) }.count))
            case "index":
                guard let x = try a.bind(name, ["value"])[0] else { throw .runtime("index() takes one argument") }
                guard let i = l.items.firstIndex(where: { $0.equals(x) }) else {
                    throw .runtime("\((try? x.repr()) ?? x.typeName) is not in list")
                }
                return .int(Int64(i))
            default: break
            }
        default: break
        }
        throw .unsupported("the method '\(name)' of \(receiver.typeName) values is not supported")
    }

    private static func stringMethod(_ s: String, _ name: String, _ a: JinjaCallArguments, _ it: JinjaInterpreter)
        throws(JinjaError) -> JinjaValue
    {
        func string(_ v: JinjaValue?, _ what: String) throws(JinjaError) -> String {
            guard case .string(let x) = v else {
                throw .runtime("\(name)() argument must be str, not \(v?.typeName ?? "nothing") (\(what))")
            }
            return x
        }
        func optionalString(_ v: JinjaValue?) throws(JinjaError) -> String? {
            switch v {
            case nil, .some(.none): return nil
            case .some(.string(let x)): return x
            case .some(let x): throw .runtime("\(name) arg must be None or str, not \(x.typeName)")
            }
        }
        func maxSplit(_ v: JinjaValue?) throws(JinjaError) -> Int {
            switch v {
            case nil: return -1
            case .some(.int(let n)): return Int(clamping: n)
            case .some(let x): throw .runtime("'\(x.typeName)' object cannot be interpreted as an integer")
            }
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let p = try a.bind(name, ["chars"])
            return try it.made(
                PyStr.strip(s, try optionalString(p[0]), leading: name != "rstrip", trailing: name != "lstrip"))
        case "split", "rsplit":
            let p = try a.bind(name, ["sep", "maxsplit"])
            let sep = try optionalString(p[0])
            let n = try maxSplit(p[1])
            let parts = name == "rsplit" && sep != nil ? try PyStr.rsplit(s, sep!, n) : try PyStr.split(s, sep, n)
            if name == "rsplit" && sep == nil && n >= 0 {
                throw .unsupported("rsplit() on whitespace with maxsplit")
            }
            return try it.makeList(parts.map { .string($0) })
        case "splitlines":
            _ = try a.bind(name, [])
            return try it.makeList(PyStr.splitLines(s).map { .string($0) })
        case "startswith", "endswith":
            let p = try a.bind(name, ["prefix"])
            let candidates: [JinjaValue]
            if case .tuple(let t) = p[0] { candidates = t.items } else { candidates = [p[0] ?? JinjaValue.none] }
            for c in candidates {
                let x = try string(c, "prefix")
                if name == "startswith" ? PyStr.hasPrefix(s, x) : PyStr.hasSuffix(s, x) { return .bool(true) }
            }
            return .bool(false)
        case "upper", "lower", "title", "capitalize", "casefold", "swapcase":
            _ = try a.bind(name, [])
            switch name {
            case "upper": return try it.made(PyStr.upper(s))
            case "lower", "casefold": return try it.made(PyStr.lower(s))
            case "title": return try it.made(PyStr.title(s))
            case "capitalize": return try it.made(PyStr.capitalize(s))
            default: throw .unsupported("the method 'swapcase' of str values is not supported")
            }
        case "replace":
            let p = try a.bind(name, ["old", "new", "count"])
            return try it.made(
                try PyStr.replace(s, try string(p[0], "old"), try string(p[1], "new"), try maxSplit(p[2])))
        case "find", "rfind", "index", "rindex", "count":
            let p = try a.bind(name, ["sub"])
            let needle = try string(p[0], "sub")
            if name == "count" { return .int(Int64(PyStr.count(s, needle))) }
            let hay = Array(s.utf8)
            let at = name.hasPrefix("r") ? PyStr.rfind(hay, Array(needle.utf8)) : PyStr.find(hay, Array(needle.utf8))
            guard let at else {
                if name.hasSuffix("index") { throw .runtime("substring not found") }
                return .int(-1)
            }
            return .int(Int64(PyStr.scalarIndex(s, byteOffset: at)))
        case "join":
            let p = try a.bind(name, ["iterable"])
            var parts: [String] = []
            for (i, x) in try (p[0] ?? JinjaValue.none).iterate().enumerated() {
                guard case .string(let part) = x else {
                    throw .runtime("sequence item \(i): expected str instance, \(x.typeName) found")
                }
                parts.append(part)
            }
            return try it.made(try joined(parts, s))
        case "removeprefix", "removesuffix":
            let p = try a.bind(name, ["affix"])
            let x = try string(p[0], "affix")
            if name == "removeprefix" && PyStr.hasPrefix(s, x) {
                return .string(String(decoding: Array(s.utf8).dropFirst(x.utf8.count), as: UTF8.self))
            }
            if name == "removesuffix" && !x.isEmpty && PyStr.hasSuffix(s, x) {
                return .string(String(decoding: Array(s.utf8).dropLast(x.utf8.count), as: UTF8.self))
            }
            return .string(s)
        case "partition", "rpartition":
            let p = try a.bind(name, ["sep"])
            let sep = try string(p[0], "sep")
            if sep.isEmpty { throw .runtime("empty separator") }
            let hay = Array(s.utf8), n = Array(sep.utf8)
            guard let at = name == "partition" ? PyStr.find(hay, n) : PyStr.rfind(hay, n) else {
                return try name == "partition"
                    ? .tuple([.string(s), .string(""), .string("")]) : .tuple([.string(""), .string(""), .string(s)])
            }
            return try .tuple([
                .string(PyStr.string(hay[..<at])), .string(sep), .string(PyStr.string(hay[(at + n.count)...]))
            ])
        case "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace", "islower", "isupper", "isascii":
            _ = try a.bind(name, [])
            let u = s.unicodeScalars
            switch name {
            case "isascii": return .bool(u.allSatisfy { $0.isASCII })
            case "islower", "isupper":
                let cased = u.contains { $0.properties.isCased }
                return .bool(cased && (name == "islower" ? PyStr.lower(s) == s : PyStr.upper(s) == s))
            default: break
            }
            if u.isEmpty { return .bool(false) }
            return .bool(
                u.allSatisfy { c in
                    switch name {
                    case "isdigit": c.properties.numericType == .decimal || c.properties.numericType == .digit
                    case "isdecimal": c.properties.numericType == .decimal
                    case "isnumeric": c.properties.numericType != nil
                    case "isalpha": c.properties.isAlphabetic && c.properties.numericType == nil
                    case "isalnum": c.properties.isAlphabetic || c.properties.numericType != nil
                    default: PyStr.isSpace(c)
                    }
                })
        case "format":
            return try it.made(try PyFormat.format(s, a))
        default:
            throw .unsupported("the method '\(name)' of str values is not supported")
        }
    }

    // MARK: Globals

    static func global(_ name: String, _ a: JinjaCallArguments, _ it: JinjaInterpreter) throws(JinjaError)
        -> JinjaValue
    {
        switch name {
        case "range":
            if !a.keywords.isEmpty { throw .runtime("range() takes no keyword arguments") }
            var bounds: [Int64] = []
            for x in a.positional {
                switch x {
                case .int(let i): bounds.append(i)
                case .bool(let b): bounds.append(b ? 1 : 0)
                case .undefined(let u): throw .undefined(u)
                default: throw .runtime("'\(x.typeName)' object cannot be interpreted as an integer")
                }
            }
            let r: JinjaRange
            switch bounds.count {
            case 1: r = JinjaRange(start: 0, stop: bounds[0], step: 1)
            case 2: r = JinjaRange(start: bounds[0], stop: bounds[1], step: 1)
            case 3:
                if bounds[2] == 0 { throw .runtime("range() arg 3 must not be zero") }
                r = JinjaRange(start: bounds[0], stop: bounds[1], step: bounds[2])
            default: throw .runtime("range expected at most 3 arguments, got \(bounds.count)")
            }
            // Counted in Double first: a huge span would overflow Int64 arithmetic.
            let span = (Double(r.stop) - Double(r.start)) / Double(r.step)
            if span > Double(JinjaLimits.maxRange) || r.count > JinjaLimits.maxRange {
                throw .runtime(
                    "Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(JinjaLimits.maxRange)).")
            }
            return .range(r)
        case "dict", "namespace":
            var d = JinjaDict()
            if a.positional.count > 1 {
                throw .runtime("\(name) expected at most 1 argument, got \(a.positional.count)")
            }
            if let source = a.positional.first {
                if case .dict(let s) = source {
                    d = s
                } else {
                    for pair in try source.iterate() {
                        let kv = try pair.iterate()
                        guard kv.count == 2 else {
                            throw .runtime("dictionary update sequence element has length \(kv.count); 2 is required")
                        }
                        try d.set(kv[0], kv[1])
                    }
                }
            }
            for (k, v) in a.keywords { try d.set(.string(k), v) }
            if name == "dict" { return .dict(d) }
            let ns = it.namespace()
            for (k, v) in d.pairs {
                if case .string(let key) = k { try checkNamespaceName(key) }
                try ns.attributes.set(k, v)
            }
            return .namespace(ns)
        case "raise_exception":
            let p = try a.bind(name, ["message"])
            throw JinjaError(kind: .raised, message: try (p[0] ?? JinjaValue.none).str())
        case "strftime_now":
            let p = try a.bind(name, ["format"])
            guard case .string(let format) = p[0] else {
                throw .runtime("strftime() argument 1 must be str, not \(p[0]?.typeName ?? "nothing")")
            }
            return try it.made(try PyFormat.strftime(format, it.now))
        default:
            throw .unsupported("the global '\(name)()' is not supported")
        }
    }
}

extension JinjaValue {
    /// An int (or bool) used as a list index.
    fileprivate var indexValue: Int64? {
        switch self {
        case .int(let i): i
        case .bool(let b): b ? 1 : 0
        default: nil
        }
    }
}
