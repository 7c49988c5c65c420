import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// `generate`: a completion (or `n`) per record from a decoder language model. A record
/// is a prompt (`input.text_field`, default `prompt`), a chat (`messages`, rendered with
/// the model's chat template), or, with `input.format: openai-batch`, an OpenAI Batch
/// API request (`/v1/chat/completions` or `/v1/completions`) whose output line has
/// OpenAI's batch output shape. Options come from the `generate` block and may be
/// overridden by each record. Prompts run with continuous batching, and a record's
/// completion depends only on the record, the model, its options and its seed, so a
/// resumed or sharded job writes the same bytes.
public enum GenerateTask: JobTask {
    public static let name = "generate"
    public static let blocks: [any ManifestBlock.Type] = [Generation.self]
    public static let defaultCompressionLevel = 6

    /// The `generate` block: the job's default options.
    public struct Generation: ManifestBlock, Equatable {
        public static let key = "generate"
        public var options = GenerationOptions()

        public init() {}

        public init(from b: inout StrictObject) throws {
            try options.apply(&b)
        }
    }

    static let formats: [RecordFormat] = [.jsonl, .openaiBatch, .txt, .csv]

    public static func check(_ manifest: Manifest) throws {
        _ = try manifest.modelField("a decoder language model: a llama, qwen2, mistral or gpt2 directory")
        guard formats.contains(manifest.input.format) else {
            throw QuernError(
                .unsupportedFormat,
                "task generate reads prompts: input.format must be jsonl, openai-batch, txt or csv, not \(manifest.input.format.rawValue)",
                field: "input.format")
        }
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        let model = try job.loadModel()
        guard let lm = model.capability(CausalLM.self) else {
            throw job.lacks(CausalLM.self, "a decoder language model", model: model)
        }
        let m = job.manifest
        var spec = m.recordSpec(texts: m.input.format != .jsonl && m.input.format != .openaiBatch, labels: false)
        spec.wantsObject = m.input.format == .jsonl || m.input.format == .openaiBatch
        spec.wantsFeatures = false
        if m.input.format == .openaiBatch { spec.idField = m.input.idField ?? "custom_id" }
        if spec.wantsText { spec.textField = m.input.textField ?? "prompt" }
        return .records(
            Generating(
                model: lm, spec: spec, options: m.block(Generation.self).options, batchSize: m.batchSize,
                textField: m.input.textField ?? "prompt", modelName: job.modelName,
                openAI: m.input.format == .openaiBatch))
    }

    /// Token counts summed.
    public static func combineMetrics(_ parts: [JSONObject]) -> JSONObject? {
        guard !parts.isEmpty else { return nil }
        var o = JSONObject()
        for key in ["prompt_tokens", "completion_tokens", "completions"] {
            o[key] = .int(parts.reduce(0) { $0 + ($1[key]?.intValue ?? 0) })
        }
        return o
    }
}

final class Generating: RecordTask {
    let lm: any CausalLM
    let spec: RecordSpec
    let options: GenerationOptions
    let generator: Generator
    let textField: String
    let modelName: String
    let openAI: Bool
    var model: any Model { lm }
    var inputSize: Int? { nil }
    /// Records per call: several batches, so finished sequences are replaced from the
    /// same window many times before it drains.
    let window: Int
    private var promptTokens = 0, completionTokens = 0, completions = 0
    /// OpenAI's `created`: the job's first start, kept in the checkpoint so a resumed
    /// job writes the same bytes.
    private var created = Int64(SystemTime().now())

    init(
        model: any CausalLM, spec: RecordSpec, options: GenerationOptions, batchSize: Int, textField: String,
        modelName: String, openAI: Bool
    ) {
        lm = model
        self.spec = spec
        self.options = options
        self.textField = textField
        self.modelName = modelName
        self.openAI = openAI
        window = max(4 * batchSize, 64)
        generator = Generator(decoder: model.decoder, batchSize: batchSize, tokenBytes: model.tokenBytes)
    }

    /// What a record asks for: its prompt's tokens and its options, and for OpenAI
    /// requests which endpoint.
    struct Prepared {
        var prompt: [Int32]
        var options: GenerationOptions
        var chat: Bool
    }

    func run(_ batch: [Record]) -> [Result<ResultRow, QuernError>] {
        let prepared = batch.map { r in r.attempt { try prepare(r) } }
        var requests: [GenerationRequest] = []
        for (r, p) in zip(batch, prepared) {
            if case .success(let p) = p {
                requests.append(
                    p.options.request(
                        prompt: p.prompt, model: lm, key: CounterRandom.key(member: r.member, line: r.line)))
            }
        }
        var counts = Generator.Counts()
        var results = generator.run(requests, counts: &counts)[...]
        return zip(batch, prepared).map { r, p in
            p.map { p in
                let choices = results.removeFirst()
                promptTokens += p.prompt.count
                completions += choices.count
                completionTokens += choices.reduce(0) { $0 + $1.tokens.count }
                return openAI ? openAIRow(r, p, choices) : row(r, p, choices)
            }
        }
    }

    /// A record's prompt tokens and options, or the record-level error saying what is wrong.
    func prepare(_ r: Record) throws -> Prepared {
        var options = self.options
        var prompt: [Int32]
        var chat = false
        if openAI {
            var (url, body) = try OpenAIBatch.request(
                r, endpoints: [OpenAIBatch.chatEndpoint, OpenAIBatch.completionsEndpoint])
            try options.apply(&body)
            chat = url == OpenAIBatch.chatEndpoint
            prompt = try chat ? chatPrompt(&body) : plainPrompt(&body, field: "prompt")
            try OpenAIBatch.finish(
                body, url: url, supported: GenerationOptions.keys.union([chat ? "messages" : "prompt"]))
        } else if let object = r.object {
            var o = StrictObject(object, path: "")
            try options.apply(&o)
            chat = object["messages"] != nil
            prompt = try chat ? chatPrompt(&o) : plainPrompt(&o, field: textField)
        } else {
            prompt = lm.tokenize(r.text ?? "", addSpecialTokens: true)
        }
        guard !prompt.isEmpty else { throw QuernError(.invalidValue, "the prompt is empty", field: "prompt") }
        let context = lm.decoder.shape.context
        guard prompt.count < context else {
            throw QuernError(
                .invalidValue,
                "the prompt is \(prompt.count) tokens; the model's context is \(context), which must leave room for at least one new token",
                field: chat ? "messages" : "prompt")
        }
        return Prepared(prompt: prompt, options: options, chat: chat)
    }

    /// A conversation rendered with the model's chat template; its special tokens are
    /// written in the text, so the tokenizer adds none of its own.
    func chatPrompt(_ o: inout StrictObject) throws -> [Int32] {
        lm.tokenize(try lm.chatPrompt(try OpenAIBatch.messages(&o), addGenerationPrompt: true), addSpecialTokens: false)
    }

    /// A plain prompt: text (tokenized with the tokenizer's own specials, a BOS for
    /// Llama, as transformers' encode does), or token ids as OpenAI's completions take
    /// them, used as they are.
    func plainPrompt(_ o: inout StrictObject, field: String) throws -> [Int32] {
        switch try o.take(field, required: false) {
        case .string(let text)?:
            return lm.tokenize(text, addSpecialTokens: true)
        case .array(let a)? where !a.isEmpty && a.allSatisfy({ $0.intValue != nil }):
            let vocabulary = lm.decoder.shape.vocabulary
            return try a.map { v in
                guard let i = v.intValue, i >= 0, i < vocabulary else {
                    throw QuernError(
                        .invalidValue, "prompt token \(v) is not an id of the \(vocabulary)-token vocabulary",
                        field: o.field(field))
                }
                return Int32(i)
            }
        case let other:
            throw QuernError(
                .missingValue,
                other == nil
                    ? "record has no \"\(field)\" prompt and no \"messages\" conversation"
                    : "\"\(o.field(field))\" must be a text or an array of token ids, not \(other!.typeName)",
                field: o.field(field))
        }
    }

    func text(_ c: Completion) -> String { String(decoding: c.text, as: UTF8.self) }

    func logprobs(_ c: Completion) -> JSONValue {
        .array(
            c.logprobs.map { lp in
                .object(
                    JSONObject([
                        ("token", .string(String(decoding: lm.tokenBytes(lp.token), as: UTF8.self))),
                        ("logprob", .double(lp.logprob)),
                        (
                            "top_logprobs",
                            .array(
                                zip(lp.top, lp.topLogprobs).map { t, v in
                                    .object(
                                        JSONObject([
                                            ("token", .string(String(decoding: lm.tokenBytes(t), as: UTF8.self))),
                                            ("logprob", .double(v))
                                        ]))
                                })
                        )
                    ]))
            })
    }

    /// A plain result line: the text, why it ended and the token counts (a `choices`
    /// array when `n` > 1).
    func row(_ r: Record, _ p: Prepared, _ choices: [Completion]) -> ResultRow {
        var fields: [(String, ResultRow.Value)] = []
        let wantsLogprobs = p.options.logprobs || p.options.topLogprobs > 0
        if choices.count == 1 {
            fields.append(("text", .string(text(choices[0]))))
            fields.append(("finish_reason", .string(choices[0].finishReason.rawValue)))
        } else {
            fields.append(
                (
                    "choices",
                    .json(
                        .array(
                            choices.map { c in
                                var o = JSONObject([
                                    ("text", .string(text(c))), ("finish_reason", .string(c.finishReason.rawValue))
                                ])
                                if wantsLogprobs { o["logprobs"] = logprobs(c) }
                                return .object(o)
                            }))
                ))
        }
        fields.append(("prompt_tokens", .int(p.prompt.count)))
        fields.append(("completion_tokens", .int(choices.reduce(0) { $0 + $1.tokens.count })))
        if wantsLogprobs && choices.count == 1 { fields.append(("logprobs", .json(logprobs(choices[0])))) }
        if p.options.returnTokenIDs {
            let ids: [JSONValue] = choices.map { .array($0.tokens.map { .int(Int64($0)) }) }
            fields.append(("token_ids", .json(choices.count == 1 ? ids[0] : .array(ids))))
        }
        return ResultRow(id: r.id, fields: fields)
    }

    /// An OpenAI Batch output line: `{"id", "custom_id", "response": {"status_code": 200,
    /// "request_id", "body"}, "error": null}` with a chat.completion or text_completion body.
    func openAIRow(_ r: Record, _ p: Prepared, _ choices: [Completion]) -> ResultRow {
        let key = OpenAIBatch.requestKey(r)
        let wantsLogprobs = p.options.logprobs || p.options.topLogprobs > 0
        let completion = choices.reduce(0) { $0 + $1.tokens.count }
        let body = OpenAIBatch.body(
            chat: p.chat, key: key, created: created, model: modelName,
            choices: choices.map { c in
                (text(c), c.finishReason.rawValue, wantsLogprobs ? .some(logprobs(c)) : JSONValue?.none)
            },
            promptTokens: p.prompt.count, completionTokens: completion)
        return OpenAIBatch.row(custom: r.id, key: key, body: body)
    }

    var errorLine: RecordErrors.LineFormat? { openAI ? OpenAIBatch.errorLine : nil }

    var state: JSONValue {
        .object(
            JSONObject([
                ("created", .int(created)), ("prompt_tokens", .int(Int64(promptTokens))),
                ("completion_tokens", .int(Int64(completionTokens))), ("completions", .int(Int64(completions)))
            ]))
    }

    func restore(_ state: JSONValue) throws {
        guard let o = state.objectValue else { return }
        created = o["created"]?.intValue ?? created
        promptTokens = Int(o["prompt_tokens"]?.intValue ?? 0)
        completionTokens = Int(o["completion_tokens"]?.intValue ?? 0)
        completions = Int(o["completions"]?.intValue ?? 0)
    }

    var counters: [(name: String, value: Int)] {
        [("tokens", completionTokens), ("prompt_tokens", promptTokens)]
    }

    func metrics() -> JSONValue? {
        .object(
            JSONObject([
                ("prompt_tokens", .int(Int64(promptTokens))), ("completion_tokens", .int(Int64(completionTokens))),
                ("completions", .int(Int64(completions)))
            ]))
    }
}
