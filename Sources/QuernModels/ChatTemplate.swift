import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// A Hugging Face chat template (tokenizer_config.json's `chat_template`, or a GGUF's
/// `tokenizer.chat_template`), rendered byte for byte as transformers'
/// `apply_chat_template(..., tokenize=False)` renders it.
///
/// transformers renders these Jinja2 templates with jinja2's ImmutableSandboxedEnvironment
/// (`trim_blocks=True`, `lstrip_blocks=True`, the loopcontrols extension), its own `tojson`
/// (`json.dumps` with `ensure_ascii=False`), `raise_exception`, `strftime_now`, a `dict`
/// and a `namespace` that refuses "_" names, after dropping null-valued message keys and
/// copying reasoning fields. Quern's engine (`Jinja/`) is written for that: the Swift
/// packages available offline have Stencil and swift-mustache but no Jinja2, and Stencil's
/// syntax and semantics differ (no namespace, other whitespace and expression rules), so a
/// byte-identical prompt needs an interpreter of its own. It implements the subset of
/// Jinja2 real chat templates use, with Python's semantics for values (printing `True`,
/// `None`, `1.0`, `['a', 1]`; `1 == 1.0`; slicing by code point). Whatever lies outside that
/// subset (`{% include %}`, `{% extends %}`, recursive loops, filters such as `groupby`,
/// unknown filters or tests) is refused with its name and line, never rendered differently.
///
/// A template may come from anyone, so parsing and rendering are bounded (`JinjaLimits`):
/// source size, output size, evaluation steps, bytes built, nesting and recursion depth.
public struct ChatTemplate: Sendable {
    public let name: String
    private let nodes: [JinjaNode]

    /// The most a render may produce, in UTF-8 bytes.
    public static let maxOutputBytes = JinjaLimits.maxOutputBytes

    /// Parses `source` once; syntax errors and unsupported constructs that can be seen
    /// without rendering fail here, as `model_invalid` naming the line.
    /// - Parameter name: what the template is called in errors (e.g. the model's path).
    public init(source: String, name: String) throws {
        self.name = name
        do {
            nodes = try JinjaParser.parse(source)
        } catch {
            throw Self.quernError(error, name: name, parsing: true)
        }
    }

    /// The prompt for `messages`, as transformers'
    /// `tokenizer.apply_chat_template(messages, tools=tools, documents=documents,
    /// add_generation_prompt=addGenerationPrompt, tokenize=False, **extra)` gives it.
    ///
    /// - Parameters:
    ///   - messages: the conversation: objects with `role`, `content` and whatever else the
    ///     template reads (`tool_calls`, `reasoning_content`...).
    ///   - bosToken, eosToken: the tokenizer's special tokens; nil leaves the template
    ///     variable undefined, as a tokenizer without that token does.
    ///   - tools, documents: transformers' `tools` and `documents` (nil is Python's None).
    ///   - extra: further template variables (`enable_thinking`, `date_string`, other special
    ///     tokens...). They override the tokens, as keyword arguments do in transformers;
    ///     `messages`, `tools`, `documents` and `add_generation_prompt` are refused there.
    ///   - now: the local date `strftime_now` formats; nil reads the clock when it is used.
    /// - Throws: `invalid_record` when the template refuses the conversation
    ///   (`raise_exception`, carrying the template's message) or fails on it (a missing key,
    ///   a type error) or goes past a limit; `model_invalid` when it needs a construct
    ///   outside the supported subset. Template lines are named in the message (the error's
    ///   `line` is kept for the record's own line).
    public func render(
        messages: [JSONValue], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
        tools: [JSONValue]? = nil, documents: [JSONValue]? = nil, extra: [String: JSONValue] = [:],
        now: ChatTemplateDate? = nil
    ) throws -> String {
        do {
            if messages.isEmpty {
                throw JinjaError(
                    kind: .runtime,
                    message: "Cannot apply chat template to an empty conversation. Provide at least one message.")
            }
            var context: [String: JinjaValue] = [:]
            if let bosToken { context["bos_token"] = .string(bosToken) }
            if let eosToken { context["eos_token"] = .string(eosToken) }
            for (k, v) in extra {
                if Self.conversationVariables.contains(k) {
                    throw QuernError(
                        .invalidValue, "the chat template variable '\(k)' comes from the conversation, not from extra")
                }
                context[k] = try JinjaValue(json: v)
            }
            context["messages"] = try .list(try messages.map { m throws(JinjaError) in try Self.message(m) })
            context["tools"] =
                try tools.map { t throws(JinjaError) in try JinjaValue(json: .array(t)) } ?? JinjaValue.none
            context["documents"] =
                try documents.map { d throws(JinjaError) in try JinjaValue(json: .array(d)) } ?? JinjaValue.none
            context["add_generation_prompt"] = .bool(addGenerationPrompt)
            return try JinjaInterpreter(date: now).render(nodes, context: context)
        } catch let e as JinjaError {
            throw Self.quernError(e, name: name)
        }
    }

    static let conversationVariables: Set<String> = ["messages", "tools", "documents", "add_generation_prompt"]

    /// Renders with exactly `variables` in scope and nothing of transformers' message
    /// handling: for testing the engine itself.
    func render(variables: [String: JSONValue], now: ChatTemplateDate? = nil) throws -> String {
        do {
            var context: [String: JinjaValue] = [:]
            for (k, v) in variables { context[k] = try JinjaValue(json: v) }
            return try JinjaInterpreter(date: now).render(nodes, context: context)
        } catch {
            throw Self.quernError(error, name: name)
        }
    }

    /// A message as transformers passes it on: keys whose value is null dropped (so
    /// `content: null` is undefined, not None), and a reasoning text under any of its names
    /// copied to `thinking` (first) and `reasoning_content` (as gpt-oss and Qwen templates read).
    private static func message(_ m: JSONValue) throws(JinjaError) -> JinjaValue {
        guard case .object(let o) = m else {
            throw .runtime("Chat messages should be dicts, but got \(m.typeName)")
        }
        var kept = o.pairs.filter { $0.1 != .null }
        let reasoningKeys = ["reasoning_content", "thinking", "reasoning"]
        if let reasoning = reasoningKeys.lazy.compactMap({ k in kept.first { $0.0 == k }?.1 }).first {
            if let i = kept.firstIndex(where: { $0.0 == "thinking" }) {
                kept[i].1 = reasoning
            } else {
                kept.insert(("thinking", reasoning), at: 0)
            }
            if let i = kept.firstIndex(where: { $0.0 == "reasoning_content" }) {
                kept[i].1 = reasoning
            } else {
                kept.append(("reasoning_content", reasoning))
            }
        }
        return try JinjaValue(json: .object(JSONObject(kept)))
    }

    /// The `QuernError` for an engine error. While parsing, every failure (a limit too) is
    /// the template's, whatever the conversation: `model_invalid`.
    private static func quernError(_ e: JinjaError, name: String, parsing: Bool = false) -> QuernError {
        let at = e.line.map { " (line \($0))" } ?? ""
        switch e.kind {
        case .syntax,
            .limit where parsing:
            return QuernError(.modelInvalid, "chat template \(name) cannot be parsed\(at): \(e.message)")
        case .unsupported:
            return QuernError(
                .modelInvalid,
                "chat template \(name) uses a Jinja construct Quern does not support\(at): \(e.message); "
                    + "give the job a template without it")
        case .raised:
            return QuernError(.invalidRecord, "the chat template refused the conversation: \(e.message)")
        case .runtime:
            return QuernError(.invalidRecord, "chat template \(name) failed on this conversation\(at): \(e.message)")
        case .limit:
            return QuernError(.invalidRecord, "chat template \(name)\(at): \(e.message)")
        }
    }
}

/// A local date and time, as `datetime.now()` gives it to transformers' `strftime_now`.
public struct ChatTemplateDate: Sendable, Equatable {
    public var year: Int, month: Int, day: Int
    public var hour: Int, minute: Int, second: Int
    public var microsecond: Int

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0, microsecond: Int = 0)
    {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.microsecond = microsecond
    }

    /// The local time now.
    public static func current() -> ChatTemplateDate {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var secs = ts.tv_sec
        var t = tm()
        localtime_r(&secs, &t)
        return ChatTemplateDate(
            year: Int(t.tm_year) + 1900, month: Int(t.tm_mon) + 1, day: Int(t.tm_mday), hour: Int(t.tm_hour),
            minute: Int(t.tm_min), second: Int(t.tm_sec), microsecond: Int(ts.tv_nsec / 1000))
    }

    /// Days since 1970-01-01 (proleptic Gregorian).
    private var daysSinceEpoch: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// 0 for Sunday, as C's `tm_wday`.
    var weekday: Int { ((daysSinceEpoch % 7) + 11) % 7 }

    /// 1 for January 1st.
    var dayOfYear: Int {
        daysSinceEpoch - ChatTemplateDate(year: year, month: 1, day: 1).daysSinceEpoch + 1
    }
}
