import Foundation
import QuernCore
import QuernTestSupport
import Testing

@testable import QuernModels

/// Chat templates against what transformers renders (scripts/make_chat_template_fixture.py):
/// real templates of 15 models on 17 conversations, and one-rule Jinja2 snippets, all
/// compared byte for byte; then the limits a hostile template meets.
@Suite("chat templates")
struct ChatTemplateTests {
    static let text = repoRoot + "/fixtures/text/"
    /// The date the fixture pinned `strftime_now` to.
    static let now = ChatTemplateDate(
        year: 2025, month: 3, day: 7, hour: 14, minute: 5, second: 9, microsecond: 123_456)

    static func fixture(_ name: String) throws -> JSONObject {
        try #require(try JSONParser.parse(Sys.readFile(text + name, limit: 1 << 24)).objectValue)
    }

    /// Expected: the output, or the Python exception's type and message.
    enum Expected {
        case output(String)
        case error(type: String, message: String)

        init(_ o: JSONObject) throws {
            if let s = o["output"]?.stringValue {
                self = .output(s)
            } else {
                let e = try #require(o["error"]?.objectValue)
                self = .error(type: e["type"]?.stringValue ?? "", message: e["message"]?.stringValue ?? "")
            }
        }
    }

    /// Whether what Quern did matches: the same bytes, or an error of the kind transformers
    /// raised (the template's own message for raise_exception).
    static func matches(_ expected: Expected, _ result: Result<String, Error>) -> Bool {
        switch (expected, result) {
        case (.output(let want), .success(let got)): return want.utf8.elementsEqual(got.utf8)
        case (.error(let type, let message), .failure(let e as QuernError)):
            switch type {
            // Compile-time errors (SyntaxError: Python refusing the code jinja2 generated).
            case "TemplateSyntaxError", "TemplateAssertionError", "SyntaxError": return e.code == .modelInvalid
            case "TemplateError":
                return e.code == .invalidRecord && e.message.hasSuffix("refused the conversation: \(message)")
            default: return e.code == .invalidRecord
            }
        default: return false
        }
    }

    static func describe(_ r: Result<String, Error>) -> String {
        switch r {
        case .success(let s): "output \(s.debugDescription)"
        case .failure(let e): "error \(e)"
        }
    }

    @Test("every fixture conversation renders byte-identical to apply_chat_template, or fails as it does")
    func fidelity() throws {
        let f = try Self.fixture("chat-templates.json")
        var templates: [String: (ChatTemplate, String?, String?)] = [:]
        for t in try #require(f["templates"]?.arrayValue) {
            let o = try #require(t.objectValue)
            let name = try #require(o["name"]?.stringValue)
            let source = String(decoding: try Sys.readFile(Self.text + #require(o["file"]?.stringValue)), as: UTF8.self)
            templates[name] = (
                try ChatTemplate(source: source, name: name), o["bos_token"]?.stringValue, o["eos_token"]?.stringValue
            )
        }
        var conversations: [String: JSONObject] = [:]
        for c in try #require(f["conversations"]?.arrayValue) {
            let o = try #require(c.objectValue)
            conversations[try #require(o["id"]?.stringValue)] = o
        }
        let cases = try #require(f["cases"]?.arrayValue)
        var passed = 0
        for c in cases {
            let o = try #require(c.objectValue)
            let name = try #require(o["template"]?.stringValue)
            let (template, bos, eos) = try #require(templates[name])
            let id = try #require(o["conversation"]?.stringValue)
            let conversation = try #require(conversations[id])
            var extra: [String: JSONValue] = [:]
            for (k, v) in conversation["kwargs"]?.objectValue?.pairs ?? [] { extra[k] = v }
            let result = Result {
                try template.render(
                    messages: try #require(conversation["messages"]?.arrayValue),
                    addGenerationPrompt: o["add_generation_prompt"]?.boolValue ?? false, bosToken: bos, eosToken: eos,
                    tools: conversation["tools"]?.arrayValue, extra: extra, now: Self.now)
            }
            let expected = try Expected(o)
            if Self.matches(expected, result) {
                passed += 1
            } else {
                Issue.record(
                    "\(name) / \(o["conversation"]!) / agp \(o["add_generation_prompt"]!): expected \(expected), got \(Self.describe(result))"
                )
            }
        }
        print(
            "chat template fidelity: \(passed)/\(cases.count) cases of \(templates.count) templates match transformers")
        #expect(cases.count == 510)
        #expect(passed == cases.count)
    }

    /// Snippets whose Python rendering Quern refuses on purpose: an iterator's address, or
    /// a construct outside the subset.
    static let refusedOnPurpose: [String] = [
        "{{ xs | reverse }}", "{{ xs | items }}", "{{ d.items }}|", "{{ 'abc'.zfill(5) }}", "{{ lipsum() }}"
    ]

    @Test("Jinja2 semantics: every snippet renders as transformers' jinja2 environment does")
    func semantics() throws {
        let f = try Self.fixture("jinja-semantics.json")
        var variables: [String: JSONValue] = [:]
        for (k, v) in try #require(f["context"]?.objectValue).pairs { variables[k] = v }
        let cases = try #require(f["cases"]?.arrayValue)
        var passed = 0, refused = 0
        for c in cases {
            let o = try #require(c.objectValue)
            let source = try #require(o["template"]?.stringValue)
            let result = Result {
                try ChatTemplate(source: source, name: "snippet").render(variables: variables, now: Self.now)
            }
            let expected = try Expected(o)
            if Self.matches(expected, result) {
                passed += 1
            } else if Self.refusedOnPurpose.contains(where: { source.hasPrefix($0) }), case .failure = result {
                refused += 1
            } else {
                Issue.record("\(source.debugDescription): expected \(expected), got \(Self.describe(result))")
            }
        }
        print("jinja semantics: \(passed)/\(cases.count) snippets match, \(refused) refused on purpose")
        #expect(passed + refused == cases.count)
        #expect(refused == Self.refusedOnPurpose.count)
    }

    // MARK: The subset's edges

    func parseError(_ source: String) -> QuernError? {
        do {
            _ = try ChatTemplate(source: source, name: "t")
            return nil
        } catch {
            return error as? QuernError
        }
    }

    func renderError(_ source: String, _ variables: [String: JSONValue] = [:]) -> QuernError? {
        do {
            _ = try ChatTemplate(source: source, name: "t").render(variables: variables)
            return nil
        } catch {
            return error as? QuernError
        }
    }

    @Test(
        "constructs outside the subset fail at parse time naming the construct and its line",
        arguments: [
            ("x\n{% include 'other.jinja' %}", "include", 2),
            ("{% extends 'base' %}", "extends", 1),
            ("a\nb\n{% import 'm' as m %}", "import", 3),
            ("{% block body %}{% endblock %}", "block", 1),
            ("\n{% for x in xs recursive %}{{ loop(x) }}{% endfor %}", "recursive", 2),
            ("{{ messages | groupby('role') }}", "groupby", 1),
            ("\n\n{{ x | truncate(3) }}", "truncate", 3),
            ("{{ f(*args) }}", "*args", 1),
            ("{{ x | nosuch }}", "nosuch", 1),
            ("{% if x is nosuch %}{% endif %}", "nosuch", 1),
            ("{% do x.append(1) %}", "do", 1),
            ("{{ '\\N{BULLET}' }}", "\\N", 1)
        ])
    func unsupported(_ source: String, _ construct: String, _ line: Int) throws {
        let e = try #require(parseError(source))
        #expect(e.code == .modelInvalid)
        #expect(e.message.contains(construct))
        #expect(e.message.contains("(line \(line))"))
    }

    @Test("an unsupported method or global fails at render time, as model_invalid with its name")
    func unsupportedAtRender() throws {
        let e = try #require(renderError("{{ 'x'.zfill(4) }}"))
        #expect(e.code == .modelInvalid && e.message.contains("zfill"))
        let g = try #require(renderError("\n{{ cycler('a', 'b') }}"))
        #expect(g.code == .modelInvalid && g.message.contains("cycler") && g.message.contains("(line 2)"))
    }

    @Test("raise_exception carries the template's message as a record error")
    func raiseException() throws {
        let t = try ChatTemplate(
            source:
                "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}",
            name: "t")
        #expect(
            throws: QuernError(
                .invalidRecord, "the chat template refused the conversation: Conversation must start with user")
        ) {
            try t.render(
                messages: [["role": "system", "content": "x"]], addGenerationPrompt: true, bosToken: nil, eosToken: nil)
        }
        #expect(throws: QuernError.self) {
            try t.render(messages: [], addGenerationPrompt: true, bosToken: nil, eosToken: nil)
        }
    }

    @Test("null message keys are dropped and reasoning is copied, as transformers does")
    func messageNormalization() throws {
        let t = try ChatTemplate(
            source: "{% for m in messages %}{{ m | tojson }}{{ m.content is defined }}{% endfor %}", name: "t")
        let out = try t.render(
            messages: [["role": "assistant", "content": nil, "reasoning": "because"]], addGenerationPrompt: false,
            bosToken: nil, eosToken: nil)
        #expect(
            out
                == #"{"thinking": "because", "role": "assistant", "reasoning": "because", "reasoning_content": "because"}False"#
        )
    }

    @Test("bos/eos, tools, documents and extra variables reach the template; nil tokens stay undefined")
    func variables() throws {
        let t = try ChatTemplate(
            source:
                "[{{ bos_token }}|{{ eos_token }}|{{ bos_token is defined }}|{{ tools }}|{{ documents }}|{{ flag }}|{{ add_generation_prompt }}]",
            name: "t")
        let plain = try t.render(
            messages: [["role": "user", "content": "x"]], addGenerationPrompt: true, bosToken: nil, eosToken: "</s>")
        #expect(plain == "[|</s>|False|None|None||True]")
        let full = try t.render(
            messages: [["role": "user", "content": "x"]], addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>",
            tools: [["name": "f"]], documents: [], extra: ["flag": 1.0])
        #expect(full == "[<s>|</s>|True|[{'name': 'f'}]|[]|1.0|False]")
        #expect(throws: QuernError.self) {
            try t.render(
                messages: [["role": "user", "content": "x"]], addGenerationPrompt: false, bosToken: nil, eosToken: nil,
                extra: ["messages": []])
        }
    }

    @Test("strftime_now formats the injected local date as Python's datetime.strftime")
    func strftime() throws {
        let t = try ChatTemplate(source: "{{ strftime_now('%d %b %Y|%A %j|%H:%M:%S.%f|%z%Z|%%') }}", name: "t")
        let d = ChatTemplateDate(year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 58, microsecond: 7)
        #expect(try t.render(variables: [:], now: d) == "29 Feb 2024|Thursday 060|23:59:58.000007||%")
        #expect(ChatTemplateDate(year: 1970, month: 1, day: 1).weekday == 4)
        #expect(ChatTemplateDate(year: 2000, month: 12, day: 31).dayOfYear == 366)
    }

    @Test(
        "Python float repr",
        arguments: [
            (1.0, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"), (-2.5, "-2.5"), (123456789.125, "123456789.125"),
            (Double.leastNonzeroMagnitude, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"), (100.0, "100.0"), (1e22, "1e+22")
        ])
    func floatRepr(_ value: Double, _ text: String) {
        #expect(PyFormat.floatRepr(value) == text)
    }

    // MARK: Hostile templates

    @Test(
        "hostile templates are refused or stopped at a named limit, without hanging or crashing",
        arguments: [
            "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
            "{{ " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + " }}",
            "{{ x" + String(repeating: ".a", count: 20000) + " }}",
            "{{ 1" + String(repeating: " + 1", count: 20000) + " }}",
            "{{ " + String(repeating: "not ", count: 5000) + "x }}",
            String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000),
            "{% for x in range(10**9) %}{% endfor %}",
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
            "{{ 'x' * 10**12 }}",
            "{{ [1] * 10**12 }}",
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
            "{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = {'k': ns.d} %}{% endfor %}",
            "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
            "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
            "{{ 2 ** 4096 }}",
            "{% set s = 'x' * 4000000 %}{{ [s] * 100000 }}",
            "{% set s = 'x' * 4000000 %}{{ s | replace('', s) }}",
            "{{ range(100000) | join('x' * 4000000) }}",
            "{% set s = 'x\\n' * 2000000 %}{{ s | indent(4096) }}",
            "{{ '%4097d' | format(1) }}",
            "{% set s = 'x' * 4000000 %}{{ s ~ s ~ s }}",
            "{% set s = 'x' * 3000000 %}{{ '{}{}{}'.format(s, s, s) }}",
            "{% for i in range(100000) %}{{ [[i]] | tojson(indent=100000) }}{% endfor %}"
        ])
    func hostile(_ source: String) throws {
        let t: ChatTemplate
        do {
            t = try ChatTemplate(source: source, name: "hostile")
        } catch let e as QuernError {
            #expect(e.code == .modelInvalid)
            return
        }
        do {
            let out = try t.render(variables: [:])
            Issue.record("rendered \(out.utf8.count) bytes instead of failing")
        } catch let e as QuernError {
            #expect(e.code == .invalidRecord || e.code == .modelInvalid)
        }
    }

    @Test("templates at the nesting limits render, or stop at one, on a thread with a 1 MiB stack")
    func smallStack() throws {
        let cases = [
            "{{ " + String(repeating: "(", count: 45) + "1" + String(repeating: ")", count: 45) + " }}",
            "{{ 1" + String(repeating: " + 1", count: 98) + " }}",
            "{{ " + String(repeating: "not ", count: 90) + "x }}",
            String(repeating: "{% if true %}", count: 95) + "x" + String(repeating: "{% endif %}", count: 95),
            "{% macro r(n) %}{% if n < 31 %}{{ r(n + 1) }}{% endif %}{% endmacro %}{{ r(0) }}",
            "{% macro r(n) %}{% if n < 31 %}{{ " + String(repeating: "(", count: 45) + "r(n + 1)"
                + String(repeating: " if true else 0)", count: 45) + " }}{% endif %}{% endmacro %}{{ r(0) }}",
            "{% set ns = namespace(l=[]) %}{% for i in range(290) %}{% set ns.l = [ns.l] %}{% endfor %}"
                + "{{ ns.l | tojson }}{{ ns.l == ns.l }}{{ ns.l | string | length }}"
        ]
        for source in cases {
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var outcome: Result<String, Error>?
            let thread = Thread {
                outcome = Result { try ChatTemplate(source: source, name: "deep").render(variables: ["x": 1]) }
                done.signal()
            }
            thread.stackSize = 1 << 20
            thread.start()
            done.wait()
            if case .failure(let e as QuernError) = outcome {
                #expect(e.message.contains("limit"), "\(source.prefix(40)): \(e)")
            }
        }
    }

    @Test("a template over the source limit is refused before parsing")
    func sourceLimit() throws {
        let e = try #require(parseError(String(repeating: "x", count: JinjaLimits.maxSourceBytes + 1)))
        #expect(e.code == .modelInvalid && e.message.contains("bytes"))
    }
}
