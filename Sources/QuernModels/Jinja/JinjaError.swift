/// What a chat template may cost. A template comes from a model file anyone can publish, so
/// every way it could spend time, memory or stack is bounded, and going past a bound is an
/// error naming it rather than a hang or a crash.
enum JinjaLimits {
    /// Bytes of template source.
    static let maxSourceBytes = 1 << 20
    /// Bytes of rendered output, and of any string a template builds.
    static let maxOutputBytes = 4 << 20
    /// Bytes of strings and list items built during one render, all told: a loop that
    /// rebuilds a long string every time round stops here long before it gets slow. Real
    /// templates copy each message a handful of times, so 16 times the output limit leaves
    /// room for any prompt that fits.
    static let maxWorkBytes = 16 * maxOutputBytes
    /// Evaluation steps in one render: every statement and expression node evaluated, loop
    /// iteration, call, and item a filter visits counts one. Real templates take tens of
    /// steps a message; a million is a conversation of thousands of turns, and a fraction
    /// of a second.
    static let maxSteps = 1_000_000
    /// Nested macro calls (a macro may call itself, as JSON-schema printers do).
    static let maxCallDepth = 32
    /// Nested evaluation, all told: expressions inside blocks inside macro calls. The
    /// bounds above could otherwise be met all at once; this one keeps the interpreter's
    /// recursion within 1 MiB of stack even in a debug build. The deepest of 133 real
    /// templates (MiniCPM3's macros) reaches 23.
    static let maxRecursion = 100
    /// Nested blocks, parentheses and operators in the source.
    static let maxNesting = 100
    /// Nested lists and dicts a template builds (JSON input is held to 256 by its parser).
    static let maxValueDepth = 300
    /// Items one `range()` may produce: jinja2's sandbox refuses more (MAX_RANGE).
    static let maxRange = 100_000
}

/// An error inside the template engine, turned into a `QuernError` by `ChatTemplate`.
struct JinjaError: Error {
    enum Kind {
        /// The source is not a template jinja2 would compile.
        case syntax
        /// A construct outside the subset Quern implements: the template cannot be
        /// rendered faithfully, whatever the conversation.
        case unsupported
        /// What jinja2 raises while rendering: a type error, an undefined value used, a
        /// sandbox refusal. It depends on the conversation.
        case runtime
        /// The template's own `raise_exception(message)`.
        case raised
        /// A bound in `JinjaLimits`.
        case limit
    }

    var kind: Kind
    var message: String
    var line: Int?

    static func syntax(_ m: String, line: Int? = nil) -> JinjaError {
        JinjaError(kind: .syntax, message: m, line: line)
    }
    static func unsupported(_ m: String, line: Int? = nil) -> JinjaError {
        JinjaError(kind: .unsupported, message: m, line: line)
    }
    static func runtime(_ m: String) -> JinjaError { JinjaError(kind: .runtime, message: m) }
    static func limit(_ what: String) -> JinjaError {
        JinjaError(kind: .limit, message: "the template went past its limit: \(what)")
    }
    static func undefined(_ u: JinjaUndefined) -> JinjaError {
        JinjaError(kind: .runtime, message: u.unsafe ? u.message : "undefined value: \(u.message)")
    }
}
