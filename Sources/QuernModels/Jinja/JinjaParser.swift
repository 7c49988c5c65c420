/// A constant in the source.
enum JinjaConstant: Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
}

/// Arguments of a call, filter or test: `(a, b, key=c)`.
struct JinjaArguments: Sendable {
    var positional: [JinjaExpr] = []
    var keywords: [(String, JinjaExpr)] = []
}

/// An expression, with the line it starts on for error messages.
struct JinjaExpr: Sendable {
    indirect enum Kind: Sendable {
        case constant(JinjaConstant)
        case name(String)
        case list([JinjaExpr])
        case tuple([JinjaExpr])
        case dict([(JinjaExpr, JinjaExpr)])
        /// `x.name`: an attribute first, then an item (jinja2's `getattr`).
        case attribute(JinjaExpr, String)
        /// `x[key]`: an item first, then an attribute (jinja2's `getitem`).
        case item(JinjaExpr, JinjaExpr)
        /// `start:stop:step` inside `[]`.
        case slice(JinjaExpr?, JinjaExpr?, JinjaExpr?)
        case call(JinjaExpr, JinjaArguments)
        /// `value | name(args)`; the value is nil in `{% filter %}` and `{% set x | f %}` blocks.
        case filter(JinjaExpr?, String, JinjaArguments)
        case test(JinjaExpr, String, JinjaArguments)
        case not(JinjaExpr)
        case negate(JinjaExpr)
        case plus(JinjaExpr)
        /// `+ - * / // % **`.
        case binary(String, JinjaExpr, JinjaExpr)
        /// `a ~ b ~ c`.
        case concat([JinjaExpr])
        /// `a < b == c`, `x in y`, `x not in y` (ops: eq ne lt lteq gt gteq in notin).
        case compare(JinjaExpr, [(String, JinjaExpr)])
        case and(JinjaExpr, JinjaExpr)
        case or(JinjaExpr, JinjaExpr)
        /// `then if test else otherwise` (no else: undefined).
        case conditional(test: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
    }

    let kind: Kind
    let line: Int
    /// The height of the tree under this node: evaluation recurses this deep.
    let depth: Int

    init(kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
        var d = 0
        func see(_ e: JinjaExpr?) { if let e { d = max(d, e.depth) } }
        func see(_ a: JinjaArguments) {
            for x in a.positional { see(x) }
            for (_, x) in a.keywords { see(x) }
        }
        switch kind {
        case .constant, .name: break
        case .list(let xs), .tuple(let xs), .concat(let xs): for x in xs { see(x) }
        case .dict(let pairs):
            for (k, v) in pairs {
                see(k)
                see(v)
            }
        case .attribute(let x, _), .not(let x), .negate(let x), .plus(let x): see(x)
        case .item(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b):
            see(a)
            see(b)
        case .slice(let a, let b, let c):
            see(a)
            see(b)
            see(c)
        case .call(let f, let a):
            see(f)
            see(a)
        case .filter(let x, _, let a):
            see(x)
            see(a)
        case .test(let x, _, let a):
            see(x)
            see(a)
        case .compare(let x, let ops):
            see(x)
            for (_, y) in ops { see(y) }
        case .conditional(let t, let a, let b):
            see(t)
            see(a)
            see(b)
        }
        depth = d + 1
    }
}

/// Where `{% set %}` and `{% for %}` store values.
indirect enum JinjaTarget: Sendable {
    case name(String)
    case tuple([JinjaTarget])
    /// `ns.attr` in `{% set ns.attr = ... %}`.
    case namespaceAttribute(String, String)
}

/// A macro's source: `{% macro name(a, b=1) %}...{% endmacro %}`, or the body of a
/// `{% call %}` block (named "caller").
struct JinjaMacroDefinition: Sendable {
    var name: String
    var parameters: [(String, JinjaExpr?)]
    var body: [JinjaNode]
    /// The body reads `varargs`, `kwargs` or `caller`, so extra arguments are accepted.
    var takesVarargs: Bool
    var takesKwargs: Bool
    var takesCaller: Bool
    var line: Int
}

/// A statement or a run of template text.
indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr)
    case ifBlock([(JinjaExpr, [JinjaNode])], otherwise: [JinjaNode])
    case forLoop(
        target: JinjaTarget, iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode],
        line: Int)
    case set(JinjaTarget, JinjaExpr, line: Int)
    case setBlock(JinjaTarget, filter: JinjaExpr?, body: [JinjaNode], line: Int)
    case macro(JinjaMacroDefinition)
    case callBlock(call: JinjaExpr, caller: JinjaMacroDefinition)
    case filterBlock(JinjaExpr, body: [JinjaNode])
    case with([(JinjaTarget, JinjaExpr)], body: [JinjaNode])
    case loopControl(isBreak: Bool, line: Int)
}

/// Builds the tree from tokens with jinja2's grammar and operator precedence (loosest
/// first): `if/else`, `or`, `and`, `not`, comparisons and `in`, `+ -`, `~`, `* / // %`,
/// `**`, unary `- +`, then postfix `.x [i] (args)`, filters `|f` and tests `is t`.
struct JinjaParser {
    private var tokens: [JinjaToken]
    private var i = 0
    private var depth = 0
    private var loopDepth = 0
    private var tagStack: [String] = []

    static func parse(_ source: String) throws(JinjaError) -> [JinjaNode] {
        if source.utf8.count > JinjaLimits.maxSourceBytes {
            throw .limit("a template of \(source.utf8.count) bytes (at most \(JinjaLimits.maxSourceBytes))")
        }
        var p = JinjaParser(tokens: try JinjaLexer.tokenize(source))
        return try p.subparse(until: [])
    }

    private init(tokens: [JinjaToken]) { self.tokens = tokens }

    // MARK: Token stream

    private var current: JinjaToken { tokens[i] }
    private var line: Int { tokens[i].line }
    private func peek() -> JinjaToken { tokens[min(i + 1, tokens.count - 1)] }
    private mutating func advance() { if i < tokens.count - 1 { i += 1 } }

    private func isOp(_ s: String) -> Bool { current.kind == .op(s) }
    private func isName(_ s: String) -> Bool { current.kind == .name(s) }
    private var isBlockEnd: Bool { current.kind == .blockEnd }

    private mutating func skip(op s: String) -> Bool {
        if isOp(s) {
            advance()
            return true
        }
        return false
    }

    private mutating func skip(name s: String) -> Bool {
        if isName(s) {
            advance()
            return true
        }
        return false
    }

    private func describe(_ t: JinjaToken) -> String {
        switch t.kind {
        case .data: "template data / text"
        case .variableBegin: "begin of print statement"
        case .variableEnd: "end of print statement"
        case .blockBegin: "begin of statement block"
        case .blockEnd: "end of statement block"
        case .name(let n): n
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .op(let o): o
        case .eof: "end of template"
        }
    }

    private mutating func expect(op s: String) throws(JinjaError) {
        guard skip(op: s) else { throw .syntax("expected token '\(s)', got '\(describe(current))'", line: line) }
    }

    private mutating func expectName() throws(JinjaError) -> String {
        guard case .name(let n) = current.kind else {
            throw .syntax("expected token 'name', got '\(describe(current))'", line: line)
        }
        advance()
        return n
    }

    private mutating func expectBlockEnd() throws(JinjaError) {
        guard isBlockEnd else {
            throw .syntax("expected token 'end of statement block', got '\(describe(current))'", line: line)
        }
        advance()
    }

    private mutating func nested<T>(_ body: (inout JinjaParser) throws(JinjaError) -> T) throws(JinjaError) -> T {
        depth += 1
        defer { depth -= 1 }
        if depth > JinjaLimits.maxNesting {
            throw .limit("blocks or expressions nested deeper than \(JinjaLimits.maxNesting) (line \(line))")
        }
        return try body(&self)
    }

    /// A node, refused when the expression under it is deeper than the limit (a chain of
    /// 20,000 `+` nests without any parenthesis).
    private func make(_ kind: JinjaExpr.Kind, line: Int) throws(JinjaError) -> JinjaExpr {
        let e = JinjaExpr(kind: kind, line: line)
        if e.depth > JinjaLimits.maxNesting {
            throw .limit("an expression nested deeper than \(JinjaLimits.maxNesting) (line \(line))")
        }
        return e
    }

    // MARK: Statements

    /// Nodes up to a block tag named in `end` (left current), or to the end of the template.
    private mutating func subparse(until end: Set<String>) throws(JinjaError) -> [JinjaNode] {
        var body: [JinjaNode] = []
        while true {
            switch current.kind {
            case .data(let text):
                body.append(.text(text))
                advance()
            case .variableBegin:
                advance()
                let e = try parseTuple()
                body.append(.output(e))
                guard current.kind == .variableEnd else {
                    throw .syntax("expected token 'end of print statement', got '\(describe(current))'", line: line)
                }
                advance()
            case .blockBegin:
                advance()
                if case .name(let n) = current.kind, end.contains(n) { return body }
                body += try nested { (p: inout JinjaParser) throws(JinjaError) in try p.statement(end) }
                try expectBlockEnd()
            case .eof:
                if end.isEmpty { return body }
                let wanted = end.sorted().map { "'\($0)'" }.joined(separator: " or ")
                var message = "Unexpected end of template. Jinja was looking for the following tags: \(wanted)."
                if let open = tagStack.last { message += " The innermost block that needs to be closed is '\(open)'." }
                throw .syntax(message, line: line)
            default:
                throw .syntax("unexpected '\(describe(current))'", line: line)
            }
        }
    }

    /// A block's body, after its tag's `%}`, through the end tag named in `end`; current is
    /// left on that end tag's name.
    private mutating func block(_ end: Set<String>) throws(JinjaError) -> [JinjaNode] {
        try expectBlockEnd()
        return try subparse(until: end)
    }

    private mutating func endTag(_ name: String) throws(JinjaError) {
        guard skip(name: name) else { throw .syntax("expected '\(name)'", line: line) }
    }

    private mutating func statement(_ enclosing: Set<String>) throws(JinjaError) -> [JinjaNode] {
        let startLine = line
        guard case .name(let tag) = current.kind else { throw .syntax("tag name expected", line: line) }
        tagStack.append(tag)
        defer { tagStack.removeLast() }
        switch tag {
        case "if": return [try parseIf()]
        case "for": return [try parseFor()]
        case "set": return [try parseSet()]
        case "macro": return [.macro(try parseMacro())]
        case "call": return [try parseCallBlock()]
        case "filter":
            advance()
            let filter = try parseFilter(nil, startInline: true)
            let body = try block(["endfilter"])
            try endTag("endfilter")
            return [.filterBlock(filter, body: body)]
        case "with": return [try parseWith()]
        case "print":
            advance()
            var out: [JinjaNode] = []
            while !isBlockEnd {
                if !out.isEmpty { try expect(op: ",") }
                out.append(.output(try parseExpression()))
            }
            return out
        case "break", "continue":
            advance()
            if loopDepth == 0 { throw .syntax("'\(tag)' tag may only be used inside a loop", line: startLine) }
            return [.loopControl(isBreak: tag == "break", line: startLine)]
        case "generation":
            // transformers' `{% generation %}` marks assistant text for its token mask;
            // the text renders as it is.
            advance()
            let body = try block(["endgeneration"])
            try endTag("endgeneration")
            return body
        case "extends", "include", "import", "from", "block", "autoescape":
            throw .unsupported(
                "'{% \(tag) %}' is not supported: a chat template must be self-contained", line: startLine)
        default:
            var message = "Encountered unknown tag '\(tag)'."
            if !enclosing.isEmpty {
                let wanted = enclosing.sorted().map { "'\($0)'" }.joined(separator: " or ")
                message += " Jinja was looking for the following tags: \(wanted)."
            }
            throw .syntax(message, line: startLine)
        }
    }

    private mutating func parseIf() throws(JinjaError) -> JinjaNode {
        advance()
        var branches: [(JinjaExpr, [JinjaNode])] = []
        var otherwise: [JinjaNode] = []
        while true {
            let test = try parseTuple(withCondition: false)
            let body = try block(["elif", "else", "endif"])
            branches.append((test, body))
            if skip(name: "elif") { continue }
            if skip(name: "else") {
                otherwise = try block(["endif"])
            }
            try endTag("endif")
            return .ifBlock(branches, otherwise: otherwise)
        }
    }

    private mutating func parseFor() throws(JinjaError) -> JinjaNode {
        let startLine = line
        advance()
        let target = try parseAssignTarget(extraEnd: ["in"])
        guard skip(name: "in") else { throw .syntax("expected token 'in', got '\(describe(current))'", line: line) }
        let iterable = try parseTuple(withCondition: false, extraEnd: ["recursive"])
        var condition: JinjaExpr?
        if skip(name: "if") { condition = try parseExpression() }
        if isName("recursive") {
            throw .unsupported("recursive for loops ('{% for ... recursive %}') are not supported", line: line)
        }
        loopDepth += 1
        let body = try block(["endfor", "else"])
        loopDepth -= 1
        var otherwise: [JinjaNode] = []
        if skip(name: "else") {
            // jinja2's loop controls do not reach the else block.
            let saved = loopDepth
            loopDepth = 0
            otherwise = try block(["endfor"])
            loopDepth = saved
        }
        try endTag("endfor")
        return .forLoop(
            target: target, iterable: iterable, condition: condition, body: body, otherwise: otherwise, line: startLine)
    }

    private mutating func parseSet() throws(JinjaError) -> JinjaNode {
        let startLine = line
        advance()
        let target = try parseAssignTarget(withNamespace: true)
        if skip(op: "=") { return .set(target, try parseTuple(), line: startLine) }
        let filter = isOp("|") ? try parseFilter(nil) : nil
        let body = try block(["endset"])
        try endTag("endset")
        return .setBlock(target, filter: filter, body: body, line: startLine)
    }

    private mutating func parseWith() throws(JinjaError) -> JinjaNode {
        advance()
        var assignments: [(JinjaTarget, JinjaExpr)] = []
        while !isBlockEnd {
            if !assignments.isEmpty { try expect(op: ",") }
            let target = try parseAssignTarget()
            try expect(op: "=")
            assignments.append((target, try parseExpression()))
        }
        let body = try block(["endwith"])
        try endTag("endwith")
        return .with(assignments, body: body)
    }

    private mutating func parseSignature() throws(JinjaError) -> [(String, JinjaExpr?)] {
        var parameters: [(String, JinjaExpr?)] = []
        try expect(op: "(")
        while !isOp(")") {
            if !parameters.isEmpty { try expect(op: ",") }
            let name = try expectName()
            if skip(op: "=") {
                parameters.append((name, try parseExpression()))
            } else {
                if parameters.contains(where: { $0.1 != nil }) {
                    throw .syntax("non-default argument follows default argument", line: line)
                }
                parameters.append((name, nil))
            }
        }
        try expect(op: ")")
        return parameters
    }

    private func definition(_ name: String, _ parameters: [(String, JinjaExpr?)], _ body: [JinjaNode], line: Int)
        -> JinjaMacroDefinition
    {
        var names = Set<String>()
        JinjaParser.collectNames(body, into: &names)
        let declared = Set(parameters.map(\.0))
        return JinjaMacroDefinition(
            name: name, parameters: parameters, body: body,
            takesVarargs: names.contains("varargs") && !declared.contains("varargs"),
            takesKwargs: names.contains("kwargs") && !declared.contains("kwargs"),
            takesCaller: names.contains("caller") && !declared.contains("caller"), line: line)
    }

    private mutating func parseMacro() throws(JinjaError) -> JinjaMacroDefinition {
        let startLine = line
        advance()
        let name = try expectName()
        let parameters = try parseSignature()
        let saved = loopDepth
        loopDepth = 0
        let body = try block(["endmacro"])
        loopDepth = saved
        try endTag("endmacro")
        return definition(name, parameters, body, line: startLine)
    }

    private mutating func parseCallBlock() throws(JinjaError) -> JinjaNode {
        let startLine = line
        advance()
        let parameters = isOp("(") ? try parseSignature() : []
        let call = try parseExpression()
        guard case .call = call.kind else { throw .syntax("expected call", line: startLine) }
        let saved = loopDepth
        loopDepth = 0
        let body = try block(["endcall"])
        loopDepth = saved
        try endTag("endcall")
        return .callBlock(call: call, caller: definition("caller", parameters, body, line: startLine))
    }

    private mutating func parseAssignTarget(extraEnd: Set<String> = [], withNamespace: Bool = false) throws(JinjaError)
        -> JinjaTarget
    {
        var items: [JinjaTarget] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expect(op: ",") }
            if isTupleEnd(extraEnd) { break }
            items.append(try parseTargetItem(withNamespace: withNamespace))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple, let only = items.first { return only }
        if items.isEmpty { throw .syntax("Expected an expression, got '\(describe(current))'", line: line) }
        return .tuple(items)
    }

    private mutating func parseTargetItem(withNamespace: Bool) throws(JinjaError) -> JinjaTarget {
        if skip(op: "(") {
            let inner = try parseAssignTarget()
            try expect(op: ")")
            return inner
        }
        guard case .name(let n) = current.kind else {
            throw .syntax("can't assign to '\(describe(current))'", line: line)
        }
        if ["true", "false", "True", "False", "none", "None"].contains(n) {
            throw .syntax("can't assign to 'const'", line: line)
        }
        advance()
        if withNamespace && skip(op: ".") { return .namespaceAttribute(n, try expectName()) }
        return .name(n)
    }

    /// Every name an expression or statement reads, for a macro's `varargs`/`kwargs`/`caller`.
    private static func collectNames(_ nodes: [JinjaNode], into names: inout Set<String>) {
        for n in nodes {
            switch n {
            case .text, .loopControl: break
            case .output(let e): collectNames(e, into: &names)
            case .ifBlock(let branches, let otherwise):
                for (t, b) in branches {
                    collectNames(t, into: &names)
                    collectNames(b, into: &names)
                }
                collectNames(otherwise, into: &names)
            case .forLoop(_, let it, let c, let b, let o, _):
                collectNames(it, into: &names)
                if let c { collectNames(c, into: &names) }
                collectNames(b, into: &names)
                collectNames(o, into: &names)
            case .set(_, let e, _): collectNames(e, into: &names)
            case .setBlock(_, let f, let b, _):
                if let f { collectNames(f, into: &names) }
                collectNames(b, into: &names)
            case .macro: break
            case .callBlock(let c, let caller):
                collectNames(c, into: &names)
                collectNames(caller.body, into: &names)
            case .filterBlock(let f, let b):
                collectNames(f, into: &names)
                collectNames(b, into: &names)
            case .with(let a, let b):
                for (_, e) in a { collectNames(e, into: &names) }
                collectNames(b, into: &names)
            }
        }
    }

    private static func collectNames(_ e: JinjaExpr, into names: inout Set<String>) {
        func args(_ a: JinjaArguments) {
            for x in a.positional { collectNames(x, into: &names) }
            for (_, x) in a.keywords { collectNames(x, into: &names) }
        }
        switch e.kind {
        case .constant: break
        case .name(let n): names.insert(n)
        case .list(let xs), .tuple(let xs), .concat(let xs): for x in xs { collectNames(x, into: &names) }
        case .dict(let pairs):
            for (k, v) in pairs {
                collectNames(k, into: &names)
                collectNames(v, into: &names)
            }
        case .attribute(let x, _), .not(let x), .negate(let x), .plus(let x): collectNames(x, into: &names)
        case .item(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b):
            collectNames(a, into: &names)
            collectNames(b, into: &names)
        case .slice(let a, let b, let c):
            for x in [a, b, c] { if let x { collectNames(x, into: &names) } }
        case .call(let f, let a):
            collectNames(f, into: &names)
            args(a)
        case .filter(let x, _, let a):
            if let x { collectNames(x, into: &names) }
            args(a)
        case .test(let x, _, let a):
            collectNames(x, into: &names)
            args(a)
        case .compare(let x, let ops):
            collectNames(x, into: &names)
            for (_, y) in ops { collectNames(y, into: &names) }
        case .conditional(let t, let a, let b):
            collectNames(t, into: &names)
            collectNames(a, into: &names)
            if let b { collectNames(b, into: &names) }
        }
    }

    // MARK: Expressions

    private func isTupleEnd(_ extra: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .op(")"): return true
        case .name(let n): return extra.contains(n)
        default: return false
        }
    }

    /// Expressions separated by commas make a tuple (`{% set a, b = 1, 2 %}`).
    private mutating func parseTuple(
        withCondition: Bool = true, extraEnd: Set<String> = [], explicitParentheses: Bool = false
    ) throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var items: [JinjaExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expect(op: ",") }
            if isTupleEnd(extraEnd) { break }
            items.append(try parseExpression(withCondition: withCondition))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let only = items.first { return only }
            if !explicitParentheses {
                throw .syntax("Expected an expression, got '\(describe(current))'", line: line)
            }
        }
        return try make(.tuple(items), line: startLine)
    }

    private mutating func parseExpression(withCondition: Bool = true) throws(JinjaError) -> JinjaExpr {
        try nested { (p: inout JinjaParser) throws(JinjaError) in
            withCondition ? try p.parseConditional() : try p.parseOr()
        }
    }

    private mutating func parseConditional() throws(JinjaError) -> JinjaExpr {
        var startLine = line
        var e = try parseOr()
        while skip(name: "if") {
            let test = try parseOr()
            let otherwise = skip(name: "else") ? try parseConditional() : nil
            e = try make(.conditional(test: test, then: e, otherwise: otherwise), line: startLine)
            startLine = line
        }
        return e
    }

    private mutating func parseOr() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var e = try parseAnd()
        while skip(name: "or") { e = try make(.or(e, try parseAnd()), line: startLine) }
        return e
    }

    private mutating func parseAnd() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var e = try parseNot()
        while skip(name: "and") { e = try make(.and(e, try parseNot()), line: startLine) }
        return e
    }

    private mutating func parseNot() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        if skip(name: "not") {
            let inner = try nested { (p: inout JinjaParser) throws(JinjaError) in try p.parseNot() }
            return try make(.not(inner), line: startLine)
        }
        return try parseCompare()
    }

    private static let compareOps = ["==": "eq", "!=": "ne", "<": "lt", "<=": "lteq", ">": "gt", ">=": "gteq"]

    private mutating func parseCompare() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        let e = try parseMath1()
        var ops: [(String, JinjaExpr)] = []
        while true {
            if case .op(let o) = current.kind, let name = Self.compareOps[o] {
                advance()
                ops.append((name, try parseMath1()))
            } else if skip(name: "in") {
                ops.append(("in", try parseMath1()))
            } else if isName("not") && peek().kind == .name("in") {
                advance()
                advance()
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? e : try make(.compare(e, ops), line: startLine)
    }

    private mutating func parseMath1() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var e = try parseConcat()
        while case .op(let o) = current.kind, o == "+" || o == "-" {
            advance()
            e = try make(.binary(o, e, try parseConcat()), line: startLine)
        }
        return e
    }

    private mutating func parseConcat() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var parts = [try parseMath2()]
        while skip(op: "~") { parts.append(try parseMath2()) }
        return parts.count == 1 ? parts[0] : try make(.concat(parts), line: startLine)
    }

    private mutating func parseMath2() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var e = try parsePow()
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            advance()
            e = try make(.binary(o, e, try parsePow()), line: startLine)
        }
        return e
    }

    private mutating func parsePow() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var e = try parseUnary()
        while skip(op: "**") { e = try make(.binary("**", e, try parseUnary()), line: startLine) }
        return e
    }

    private mutating func parseUnary(withFilter: Bool = true) throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var e: JinjaExpr
        if isOp("-") || isOp("+") {
            let negate = isOp("-")
            advance()
            let inner = try nested { (p: inout JinjaParser) throws(JinjaError) in try p.parseUnary(withFilter: false) }
            e = try make(negate ? .negate(inner) : .plus(inner), line: startLine)
        } else {
            e = try parsePrimary()
        }
        e = try parsePostfix(e)
        if withFilter { e = try parseFilterExpression(e) }
        return e
    }

    private mutating func parsePrimary() throws(JinjaError) -> JinjaExpr {
        let t = current
        switch t.kind {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return try make(.constant(.bool(true)), line: t.line)
            case "false", "False": return try make(.constant(.bool(false)), line: t.line)
            case "none", "None": return try make(.constant(.none), line: t.line)
            default: return try make(.name(n), line: t.line)
            }
        case .string(var s):
            advance()
            // Adjacent literals join, as in Python: "a" "b" is "ab".
            while case .string(let more) = current.kind {
                s += more
                advance()
            }
            return try make(.constant(.string(s)), line: t.line)
        case .integer(let v):
            advance()
            return try make(.constant(.int(v)), line: t.line)
        case .float(let v):
            advance()
            return try make(.constant(.float(v)), line: t.line)
        case .op("("):
            advance()
            let e = try nested { (p: inout JinjaParser) throws(JinjaError) in
                try p.parseTuple(explicitParentheses: true)
            }
            try expect(op: ")")
            return e
        case .op("["):
            advance()
            var items: [JinjaExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expect(op: ",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expect(op: "]")
            return try make(.list(items), line: t.line)
        case .op("{"):
            advance()
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expect(op: ",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expect(op: ":")
                pairs.append((key, try parseExpression()))
            }
            try expect(op: "}")
            return try make(.dict(pairs), line: t.line)
        default:
            throw .syntax("unexpected '\(describe(t))'", line: t.line)
        }
    }

    private mutating func parsePostfix(_ base: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        var e = base
        while true {
            if isOp(".") || isOp("[") {
                e = try parseSubscript(e)
            } else if isOp("(") {
                e = try parseCall(e)
            } else {
                return e
            }
        }
    }

    private mutating func parseFilterExpression(_ base: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        var e = base
        while true {
            if isOp("|") {
                e = try parseFilter(e)
            } else if isName("is") {
                e = try parseTest(e)
            } else if isOp("(") {
                e = try parseCall(e)
            } else {
                return e
            }
        }
    }

    private mutating func parseSubscript(_ base: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        let t = current
        advance()
        if t.kind == .op(".") {
            let a = current
            advance()
            switch a.kind {
            case .name(let n): return try make(.attribute(base, n), line: t.line)
            case .integer(let v):
                return try make(.item(base, try make(.constant(.int(v)), line: a.line)), line: t.line)
            default: throw .syntax("expected name or number", line: a.line)
            }
        }
        var args: [JinjaExpr] = []
        while !isOp("]") {
            if !args.isEmpty { try expect(op: ",") }
            args.append(try parseSubscribed())
        }
        try expect(op: "]")
        let key = args.count == 1 ? args[0] : try make(.tuple(args), line: t.line)
        return try make(.item(base, key), line: t.line)
    }

    private mutating func parseSubscribed() throws(JinjaError) -> JinjaExpr {
        let startLine = line
        var start: JinjaExpr?
        if !isOp(":") {
            let e = try parseExpression()
            if !isOp(":") { return e }
            start = e
        }
        advance()
        var stop: JinjaExpr?
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        var step: JinjaExpr?
        if skip(op: ":"), !isOp("]"), !isOp(",") { step = try parseExpression() }
        return try make(.slice(start, stop, step), line: startLine)
    }

    private mutating func parseCallArguments() throws(JinjaError) -> JinjaArguments {
        try expect(op: "(")
        var args = JinjaArguments()
        var needComma = false
        while !isOp(")") {
            if needComma {
                try expect(op: ",")
                if isOp(")") { break }
            }
            if isOp("*") || isOp("**") {
                throw .unsupported("'*args' and '**kwargs' in calls are not supported", line: line)
            }
            if case .name(let n) = current.kind, peek().kind == .op("=") {
                advance()
                advance()
                args.keywords.append((n, try parseExpression()))
            } else {
                if !args.keywords.isEmpty {
                    throw .syntax("invalid syntax for function call expression", line: line)
                }
                args.positional.append(try parseExpression())
            }
            needComma = true
        }
        try expect(op: ")")
        return args
    }

    private mutating func parseCall(_ base: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        let startLine = line
        return try make(.call(base, try parseCallArguments()), line: startLine)
    }

    private mutating func dottedName() throws(JinjaError) -> String {
        var name = try expectName()
        while skip(op: ".") { name += "." + (try expectName()) }
        return name
    }

    private mutating func parseFilter(_ base: JinjaExpr?, startInline: Bool = false) throws(JinjaError) -> JinjaExpr {
        var e = base
        var inline = startInline
        while isOp("|") || inline {
            if !inline { advance() }
            inline = false
            let startLine = line
            let name = try dottedName()
            try JinjaBuiltins.checkFilter(name, line: startLine)
            let args = isOp("(") ? try parseCallArguments() : JinjaArguments()
            e = try make(.filter(e, name, args), line: startLine)
        }
        guard let e else { throw .syntax("expected a filter", line: line) }
        return e
    }

    private mutating func parseTest(_ base: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        let startLine = line
        advance()
        let negated = skip(name: "not")
        let name = try dottedName()
        try JinjaBuiltins.checkTest(name, line: startLine)
        var args = JinjaArguments()
        if isOp("(") {
            args = try parseCallArguments()
        } else {
            var takesArgument = false
            switch current.kind {
            case .name(let n): takesArgument = !["else", "or", "and"].contains(n)
            case .string, .integer, .float, .op("("), .op("["), .op("{"): takesArgument = true
            default: break
            }
            if takesArgument {
                if isName("is") { throw .syntax("You cannot chain multiple tests with is", line: line) }
                args.positional = [try parsePostfix(try parsePrimary())]
            }
        }
        let test = try make(.test(base, name, args), line: startLine)
        return negated ? try make(.not(test), line: startLine) : test
    }
}
