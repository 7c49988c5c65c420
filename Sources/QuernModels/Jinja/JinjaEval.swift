/// Variables visible at one point of a render. jinja2 gives each for-loop iteration and
/// each macro call a scope of its own (a `{% set %}` inside them does not leak out; that
/// is what `namespace()` is for), while `{% if %}` shares its enclosing scope.
final class JinjaScope {
    var variables: [String: JinjaValue] = [:]
    let parent: JinjaScope?

    init(parent: JinjaScope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: JinjaScope? = self
        while let s = scope {
            if let v = s.variables[name] { return v }
            scope = s.parent
        }
        return nil
    }
}

/// A macro bound to the scope it was defined in: it sees that scope's variables as they
/// are when it is called, as jinja2's macros do.
final class JinjaMacro {
    let definition: JinjaMacroDefinition
    /// Cleared when the render ends: the scope usually holds the macro too.
    var scope: JinjaScope?

    init(_ definition: JinjaMacroDefinition, _ scope: JinjaScope) {
        self.definition = definition
        self.scope = scope
    }

    var name: String { definition.name }
}

/// Arguments as evaluated for a call, filter or test.
struct JinjaCallArguments {
    var positional: [JinjaValue] = []
    var keywords: [(String, JinjaValue)] = []

    /// The arguments matched to a Python signature (`names` in order, after the value a
    /// filter is applied to), nil where not given. Unknown or repeated names are errors,
    /// as Python makes them.
    func bind(_ function: String, _ names: [String]) throws(JinjaError) -> [JinjaValue?] {
        if positional.count > names.count {
            throw .runtime("\(function)() takes at most \(names.count) argument(s) (\(positional.count) given)")
        }
        var out: [JinjaValue?] = positional.map { $0 } + Array(repeating: nil, count: names.count - positional.count)
        for (k, v) in keywords {
            guard let i = names.firstIndex(of: k) else {
                throw .runtime("\(function)() got an unexpected keyword argument '\(k)'")
            }
            if out[i] != nil { throw .runtime("\(function)() got multiple values for argument '\(k)'") }
            out[i] = v
        }
        return out
    }
}

/// Runs a parsed template. One interpreter serves one render: it owns the output, the
/// step and work budgets of `JinjaLimits`, and the clock `strftime_now` reads.
final class JinjaInterpreter {
    private var output = ""
    private var outputBytes = 0
    private var steps = 0
    private var work = 0
    private var callDepth = 0
    private var recursion = 0
    private var date: ChatTemplateDate?
    /// The objects a template can make reference each other (a macro and the scope that
    /// holds it, a namespace holding itself): their links are cut when the render ends,
    /// or they would never be freed.
    private var macros: [JinjaMacro] = []
    private var namespaces: [JinjaNamespace] = []
    private var loops: [JinjaLoop] = []

    init(date: ChatTemplateDate?) { self.date = date }

    /// The date `strftime_now` formats: the injected one, else the local time now.
    var now: ChatTemplateDate {
        if let date { return date }
        let d = ChatTemplateDate.current()
        date = d
        return d
    }

    static let globalNames: Set<String> = [
        "range", "dict", "namespace", "raise_exception", "strftime_now", "lipsum", "cycler", "joiner"
    ]

    func render(_ nodes: [JinjaNode], context: [String: JinjaValue]) throws(JinjaError) -> String {
        let globals = JinjaScope(parent: nil)
        globals.variables = context
        defer {
            for m in macros { m.scope = nil }
            for n in namespaces { n.attributes = JinjaDict() }
            for l in loops { l.lastChanged = nil }
        }
        _ = try exec(nodes, JinjaScope(parent: globals))
        return output
    }

    func macro(_ d: JinjaMacroDefinition, _ scope: JinjaScope) -> JinjaValue {
        let m = JinjaMacro(d, scope)
        macros.append(m)
        return .callable(.macro(m))
    }

    func namespace() -> JinjaNamespace {
        let n = JinjaNamespace()
        namespaces.append(n)
        return n
    }

    // MARK: Budgets

    func step(_ n: Int = 1) throws(JinjaError) {
        steps += n
        if steps > JinjaLimits.maxSteps { throw .limit("more than \(JinjaLimits.maxSteps) evaluation steps") }
    }

    /// One level deeper into `eval` or `exec`.
    private func enter() throws(JinjaError) {
        recursion += 1
        if recursion > JinjaLimits.maxRecursion {
            throw .limit(
                "evaluation nested deeper than \(JinjaLimits.maxRecursion) (blocks, expressions and macro calls)")
        }
    }

    /// Charges a string the template built, and refuses one past the output limit.
    func made(_ s: String) throws(JinjaError) -> JinjaValue {
        let n = s.utf8.count
        if n > JinjaLimits.maxOutputBytes {
            throw .limit("a string of more than \(JinjaLimits.maxOutputBytes) bytes")
        }
        try charge(n)
        return .string(s)
    }

    /// Charges `bytes` of building work.
    func charge(_ bytes: Int) throws(JinjaError) {
        work += bytes
        if work > JinjaLimits.maxWorkBytes {
            throw .limit("more than \(JinjaLimits.maxWorkBytes) bytes of strings and lists built")
        }
    }

    func makeList(_ items: [JinjaValue]) throws(JinjaError) -> JinjaValue {
        try charge(16 * items.count)
        return try .list(items)
    }

    private func write(_ s: String) throws(JinjaError) {
        outputBytes += s.utf8.count
        if outputBytes > JinjaLimits.maxOutputBytes {
            throw .limit("output of more than \(JinjaLimits.maxOutputBytes) bytes")
        }
        output += s
    }

    /// Renders `body` into a string of its own (macros, `{% set %}` and `{% filter %}` blocks).
    private func capture(_ body: () throws(JinjaError) -> Void) throws(JinjaError) -> String {
        let saved = (output, outputBytes)
        output = ""
        outputBytes = 0
        defer { (output, outputBytes) = saved }
        try body()
        return output
    }

    // MARK: Statements

    private enum Flow { case normal, breakLoop, continueLoop }

    /// Runs statements. As in `evalKind`, cases with locals of their own are functions of
    /// their own, to keep this frame (once per block and macro level) small.
    private func exec(_ nodes: [JinjaNode], _ scope: JinjaScope) throws(JinjaError) -> Flow {
        try enter()
        defer { recursion -= 1 }
        for node in nodes {
            try step()
            var flow = Flow.normal
            switch node {
            case .text(let t): try write(t)
            case .output(let e): try write(try located(e.line) { () throws(JinjaError) in try eval(e, scope).str() })
            case .ifBlock(let branches, let otherwise): flow = try execIf(branches, otherwise, scope)
            case .forLoop(let target, let iterable, let condition, let body, let otherwise, let line):
                try forLoop(target, iterable, condition, body, otherwise, line, scope)
            case .set(let target, let e, let line):
                let v = try eval(e, scope)
                try located(line) { () throws(JinjaError) in try assign(target, v, scope) }
            case .setBlock(let target, let filter, let body, let line):
                try execSetBlock(target, filter, body, line, scope)
            case .macro(let d): scope.variables[d.name] = macro(d, scope)
            case .callBlock(let call, let caller): try execCallBlock(call, caller, scope)
            case .filterBlock(let filter, let body): try execFilterBlock(filter, body, scope)
            case .with(let assignments, let body): flow = try execWith(assignments, body, scope)
            case .loopControl(let isBreak, _): flow = isBreak ? .breakLoop : .continueLoop
            }
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execIf(_ branches: [(JinjaExpr, [JinjaNode])], _ otherwise: [JinjaNode], _ scope: JinjaScope)
        throws(JinjaError) -> Flow
    {
        for (test, body) in branches where try eval(test, scope).truthy { return try exec(body, scope) }
        return try exec(otherwise, scope)
    }

    private func execSetBlock(
        _ target: JinjaTarget, _ filter: JinjaExpr?, _ body: [JinjaNode], _ line: Int, _ scope: JinjaScope
    ) throws(JinjaError) {
        let inner = JinjaScope(parent: scope)
        var v = JinjaValue.string(try capture { () throws(JinjaError) in _ = try exec(body, inner) })
        if let filter { v = try applyFilters(filter, to: v, scope) }
        try located(line) { () throws(JinjaError) in try assign(target, v, scope) }
    }

    private func execCallBlock(_ call: JinjaExpr, _ caller: JinjaMacroDefinition, _ scope: JinjaScope)
        throws(JinjaError)
    {
        guard case .call(let callee, let args) = call.kind else { return }
        let f = try eval(callee, scope)
        var a = try arguments(args, scope)
        a.keywords.append(("caller", macro(caller, scope)))
        try write(try located(call.line) { () throws(JinjaError) in try self.call(f, a).str() })
    }

    private func execFilterBlock(_ filter: JinjaExpr, _ body: [JinjaNode], _ scope: JinjaScope) throws(JinjaError) {
        let text = try capture { () throws(JinjaError) in _ = try exec(body, scope) }
        try write(try applyFilters(filter, to: .string(text), scope).str())
    }

    private func execWith(_ assignments: [(JinjaTarget, JinjaExpr)], _ body: [JinjaNode], _ scope: JinjaScope)
        throws(JinjaError) -> Flow
    {
        let inner = JinjaScope(parent: scope)
        for (target, e) in assignments { try assign(target, try eval(e, scope), inner) }
        return try exec(body, inner)
    }

    private func forLoop(
        _ target: JinjaTarget, _ iterable: JinjaExpr, _ condition: JinjaExpr?, _ body: [JinjaNode],
        _ otherwise: [JinjaNode], _ line: Int, _ scope: JinjaScope
    ) throws(JinjaError) {
        var items = try located(line) { () throws(JinjaError) in try eval(iterable, scope).iterate() }
        if let condition {
            // The filter sees the item but not `loop`: loop.length counts what passes.
            var kept: [JinjaValue] = []
            for item in items {
                try step()
                let s = JinjaScope(parent: scope)
                try located(line) { () throws(JinjaError) in try assign(target, item, s) }
                if try eval(condition, s).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try exec(otherwise, JinjaScope(parent: scope))
            return
        }
        let loop = JinjaLoop(items)
        loops.append(loop)
        for (index, item) in items.enumerated() {
            try step()
            loop.index0 = index
            let s = JinjaScope(parent: scope)
            s.variables["loop"] = .loop(loop)
            try located(line) { () throws(JinjaError) in try assign(target, item, s) }
            if try exec(body, s) == .breakLoop { break }
        }
    }

    private func assign(_ target: JinjaTarget, _ v: JinjaValue, _ scope: JinjaScope) throws(JinjaError) {
        switch target {
        case .name(let n): scope.variables[n] = v
        case .tuple(let targets):
            let items = try v.iterate()
            if items.count < targets.count {
                throw .runtime("not enough values to unpack (expected \(targets.count), got \(items.count))")
            }
            if items.count > targets.count { throw .runtime("too many values to unpack (expected \(targets.count))") }
            for (t, item) in zip(targets, items) { try assign(t, item, scope) }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let ns) = scope.lookup(name) else {
                throw .runtime("cannot assign attribute on non-namespace object")
            }
            try JinjaBuiltins.checkNamespaceName(attribute)
            try ns.attributes.set(.string(attribute), v)
        }
    }

    /// Runs `body`, giving an error without a line the line of the node at hand.
    private func located<T>(_ line: Int, _ body: () throws(JinjaError) -> T) throws(JinjaError) -> T {
        do {
            return try body()
        } catch {
            var e = error
            if e.line == nil { e.line = line }
            throw e
        }
    }

    // MARK: Expressions

    func eval(_ e: JinjaExpr, _ scope: JinjaScope) throws(JinjaError) -> JinjaValue {
        try step()
        try enter()
        defer { recursion -= 1 }
        do {
            return try evalKind(e, scope)
        } catch {
            var located = error
            if located.line == nil { located.line = e.line }
            throw located
        }
    }

    /// One node. Each case that needs locals of its own calls a function of its own: this
    /// frame recurses once per level of the expression, and a debug build gives a function
    /// room for the locals of all its cases at once.
    private func evalKind(_ e: JinjaExpr, _ scope: JinjaScope) throws(JinjaError) -> JinjaValue {
        switch e.kind {
        case .constant(let c): return Self.constant(c)
        case .name(let n):
            if let v = scope.lookup(n) { return v }
            if Self.globalNames.contains(n) { return .callable(.global(n)) }
            return .undefined(.named(n))
        case .list(let xs): return try makeList(try evalAll(xs, scope))
        case .tuple(let xs): return try makeTuple(try evalAll(xs, scope))
        case .dict(let pairs): return try evalDict(pairs, scope)
        case .attribute(let x, let name): return try JinjaBuiltins.attribute(try eval(x, scope), name)
        case .item(let x, let key): return try evalItem(try eval(x, scope), key, scope)
        case .slice: throw .syntax("a slice outside []")
        case .call(let callee, let args): return try call(try eval(callee, scope), try arguments(args, scope))
        case .filter: return try applyFilters(e, to: nil, scope)
        case .test(let x, let name, let args):
            return .bool(try JinjaBuiltins.test(name, try eval(x, scope), try arguments(args, scope), self))
        case .not(let x): return .bool(!(try eval(x, scope).truthy))
        case .negate(let x): return try JinjaOperators.negate(try eval(x, scope))
        case .plus(let x): return try JinjaOperators.plus(try eval(x, scope))
        case .binary(let op, let a, let b):
            return try JinjaOperators.binary(op, try eval(a, scope), try eval(b, scope), self)
        case .concat(let parts): return try evalConcat(parts, scope)
        case .compare(let first, let ops): return try evalCompare(first, ops, scope)
        case .and(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? try eval(b, scope) : l
        case .or(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? l : try eval(b, scope)
        case .conditional(let test, let then, let otherwise):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            if let otherwise { return try eval(otherwise, scope) }
            return .undefined(Self.noElse(e.line))
        }
    }

    private static func constant(_ c: JinjaConstant) -> JinjaValue {
        switch c {
        case .none: .none
        case .bool(let b): .bool(b)
        case .int(let i): .int(i)
        case .float(let d): .float(d)
        case .string(let s): .string(s)
        }
    }

    private static func noElse(_ line: Int) -> JinjaUndefined {
        JinjaUndefined(
            message: "the inline if-expression on line \(line) evaluated to false and no else section was defined.")
    }

    private func evalAll(_ xs: [JinjaExpr], _ scope: JinjaScope) throws(JinjaError) -> [JinjaValue] {
        var items: [JinjaValue] = []
        items.reserveCapacity(xs.count)
        for x in xs { items.append(try eval(x, scope)) }
        return items
    }

    private func makeTuple(_ items: [JinjaValue]) throws(JinjaError) -> JinjaValue {
        try charge(16 * items.count)
        return try .tuple(items)
    }

    private func evalDict(_ pairs: [(JinjaExpr, JinjaExpr)], _ scope: JinjaScope) throws(JinjaError) -> JinjaValue {
        var d = JinjaDict()
        for (k, v) in pairs { try d.set(try eval(k, scope), try eval(v, scope)) }
        try charge(32 * d.count)
        return .dict(d)
    }

    private func evalItem(_ v: JinjaValue, _ key: JinjaExpr, _ scope: JinjaScope) throws(JinjaError) -> JinjaValue {
        guard case .slice(let a, let b, let c) = key.kind else {
            return try JinjaBuiltins.item(v, try eval(key, scope))
        }
        func bound(_ e: JinjaExpr?) throws(JinjaError) -> Int64? {
            guard let e else { return nil }
            switch try eval(e, scope) {
            case .none: return nil
            case .int(let i): return i
            case .bool(let f): return f ? 1 : 0
            default: throw .runtime("slice indices must be integers or None or have an __index__ method")
            }
        }
        return try slice(v, try bound(a), try bound(b), try bound(c))
    }

    private func evalConcat(_ parts: [JinjaExpr], _ scope: JinjaScope) throws(JinjaError) -> JinjaValue {
        var s = ""
        for p in parts {
            s += try eval(p, scope).str()
            if s.utf8.count > JinjaLimits.maxOutputBytes {
                throw .limit("a string of more than \(JinjaLimits.maxOutputBytes) bytes")
            }
        }
        return try made(s)
    }

    /// `a < b < c` is `a < b and b < c`, each operand evaluated once, stopping at the first false.
    private func evalCompare(_ first: JinjaExpr, _ ops: [(String, JinjaExpr)], _ scope: JinjaScope)
        throws(JinjaError) -> JinjaValue
    {
        var left = try eval(first, scope)
        for (op, rhs) in ops {
            let right = try eval(rhs, scope)
            if !(try JinjaOperators.compare(op, left, right)) { return .bool(false) }
            left = right
        }
        return .bool(true)
    }

    private func arguments(_ a: JinjaArguments, _ scope: JinjaScope) throws(JinjaError) -> JinjaCallArguments {
        var out = JinjaCallArguments()
        for x in a.positional { out.positional.append(try eval(x, scope)) }
        for (k, x) in a.keywords { out.keywords.append((k, try eval(x, scope))) }
        return out
    }

    /// A chain of filters; the innermost value is `base` when the chain has none of its own
    /// (`{% filter upper %}`, `{% set x | trim %}`).
    private func applyFilters(_ e: JinjaExpr, to base: JinjaValue?, _ scope: JinjaScope) throws(JinjaError)
        -> JinjaValue
    {
        guard case .filter(let inner, let name, let args) = e.kind else { return try eval(e, scope) }
        let value: JinjaValue
        if let inner {
            value = try applyFilters(inner, to: base, scope)
        } else if let base {
            value = base
        } else {
            throw .syntax("a filter without a value")
        }
        let a = try arguments(args, scope)
        try step()
        return try located(e.line) { () throws(JinjaError) in try JinjaBuiltins.filter(name, value, a, self) }
    }

    private func slice(_ v: JinjaValue, _ a: Int64?, _ b: Int64?, _ c: Int64?) throws(JinjaError) -> JinjaValue {
        switch v {
        case .string(let s):
            let u = Array(s.unicodeScalars)
            let idx = try PySlice.indices(count: u.count, a, b, c)
            var out = String.UnicodeScalarView()
            for i in idx { out.append(u[i]) }
            return try made(String(out))
        case .list(let l):
            return try makeList(try PySlice.indices(count: l.items.count, a, b, c).map { l.items[$0] })
        case .tuple(let l):
            return try .tuple(try PySlice.indices(count: l.items.count, a, b, c).map { l.items[$0] })
        case .undefined(let u): throw .undefined(u)
        case .range: throw .unsupported("slicing a range()")
        default:
            // jinja2 turns the TypeError of an unsliceable object into an undefined value.
            return .undefined(JinjaUndefined(message: "\(v.objectTypeRepr) has no element slice"))
        }
    }

    // MARK: Calls

    func call(_ f: JinjaValue, _ a: JinjaCallArguments) throws(JinjaError) -> JinjaValue {
        try step()
        switch f {
        case .callable(.macro(let m)): return try callMacro(m, a)
        case .callable(.global(let name)): return try JinjaBuiltins.global(name, a, self)
        case .callable(.method(let receiver, let name)): return try JinjaBuiltins.method(receiver, name, a, self)
        case .callable(.loopMethod(let loop, let name)):
            if name == "cycle" {
                guard !a.positional.isEmpty else { throw .runtime("no items for cycling given") }
                return a.positional[loop.index0 % a.positional.count]
            }
            if let last = loop.lastChanged, last.count == a.positional.count,
                zip(last, a.positional).allSatisfy({ $0.equals($1) })
            {
                return .bool(false)
            }
            loop.lastChanged = a.positional
            return .bool(true)
        case .undefined(let u): throw .undefined(u)
        default: throw .runtime("'\(f.typeName)' object is not callable")
        }
    }

    private func callMacro(_ m: JinjaMacro, _ a: JinjaCallArguments) throws(JinjaError) -> JinjaValue {
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > JinjaLimits.maxCallDepth {
            throw .limit("macro calls nested deeper than \(JinjaLimits.maxCallDepth)")
        }
        let d = m.definition
        guard let defining = m.scope else { throw .runtime("macro '\(d.name)' called after its template ended") }
        let scope = JinjaScope(parent: defining)
        var keywords = a.keywords
        if a.positional.count > d.parameters.count && !d.takesVarargs {
            throw .runtime("macro '\(d.name)' takes not more than \(d.parameters.count) argument(s)")
        }
        for (i, (name, fallback)) in d.parameters.enumerated() {
            let given = keywords.firstIndex { $0.0 == name }
            if i < a.positional.count {
                if given != nil { throw .runtime("macro '\(d.name)' got multiple values for argument '\(name)'") }
                scope.variables[name] = a.positional[i]
            } else if let given {
                scope.variables[name] = keywords.remove(at: given).1
            } else if let fallback {
                scope.variables[name] = try eval(fallback, scope)
            } else {
                scope.variables[name] = .undefined(JinjaUndefined(message: "parameter '\(name)' was not provided"))
            }
        }
        if let c = keywords.firstIndex(where: { $0.0 == "caller" }), d.takesCaller {
            scope.variables["caller"] = keywords.remove(at: c).1
        }
        if d.takesVarargs {
            scope.variables["varargs"] = try .tuple(Array(a.positional.dropFirst(d.parameters.count)))
        }
        if d.takesKwargs {
            var kw = JinjaDict()
            for (k, v) in keywords { try kw.set(.string(k), v) }
            scope.variables["kwargs"] = .dict(kw)
        } else if let (k, _) = keywords.first {
            throw .runtime("macro '\(d.name)' takes no keyword argument '\(k)'")
        }
        return try made(try capture { () throws(JinjaError) in _ = try exec(d.body, scope) })
    }
}
