import Foundation
import QuernCore
import QuernData
import QuernModels

/// OpenAI's Batch API file formats: the request lines `generate` reads with
/// `input.format: openai-batch`, and the output and error lines it writes, field for
/// field as OpenAI's batch output files have them, so tools written for those files
/// read Quern's.
public enum OpenAIBatch {
    public static let chatEndpoint = "/v1/chat/completions"
    public static let completionsEndpoint = "/v1/completions"
    public static let embeddingsEndpoint = "/v1/embeddings"

    /// Body fields OpenAI documents that mean nothing for a local batch (the job's model
    /// runs every request; nothing is stored, streamed or billed): accepted and ignored.
    /// README lists them.
    public static let ignoredFields: Set<String> = [
        "model", "user", "metadata", "store", "service_tier", "stream", "stream_options", "parallel_tool_calls",
        "prompt_cache_key", "safety_identifier", "modalities"
    ]

    /// A conversation from `messages`: each message's role and text, content given as a
    /// string or as text parts (joined with newlines, as vLLM does). Other parts (images,
    /// audio) are refused by name.
    static func messages(_ o: inout StrictObject) throws -> [JSONValue] {
        let field = o.field("messages")
        guard let list = try o.take("messages", required: true)?.arrayValue else {
            throw QuernError(.invalidType, "\"\(field)\" must be an array of messages", field: field)
        }
        guard !list.isEmpty else { throw QuernError(.invalidValue, "\"\(field)\" is empty", field: field) }
        return try list.enumerated().map { i, m in
            let at = "\(field)[\(i)]"
            guard var message = m.objectValue else {
                throw QuernError(.invalidType, "\(at) must be an object with role and content", field: at)
            }
            guard let role = message["role"]?.stringValue, !role.isEmpty else {
                throw QuernError(.missingValue, "\(at) has no role", field: at + ".role")
            }
            _ = role
            switch message["content"] {
            case .string?, .null?, nil:
                break
            case .array(let parts)?:
                let texts = try parts.enumerated().map { j, part -> String in
                    let p = part.objectValue
                    guard p?["type"]?.stringValue == "text", let t = p?["text"]?.stringValue else {
                        throw QuernError(
                            .invalidValue,
                            "\(at).content[\(j)] is a \(p?["type"]?.stringValue ?? "malformed") part; only text parts are supported",
                            field: "\(at).content")
                    }
                    return t
                }
                message["content"] = .string(texts.joined(separator: "\n"))
            case let other?:
                throw QuernError(
                    .invalidType, "\(at).content must be a string or an array of text parts, not \(other.typeName)",
                    field: "\(at).content")
            }
            return .object(message)
        }
    }

    /// Refuses body fields no option took, except the ones OpenAI documents and Quern
    /// ignores, naming the field.
    static func finish(_ body: StrictObject, url: String, supported: Set<String>) throws {
        for key in body.object.keys where !body.taken.contains(key) && !ignoredFields.contains(key) {
            throw QuernError(
                .unknownKey,
                "\"\(body.field(key))\" is not supported for \(url); supported: \(supported.sorted().joined(separator: ", ")) (ignored: \(ignoredFields.sorted().joined(separator: ", ")))",
                field: body.field(key))
        }
    }

    /// A request line's envelope: its endpoint (one of `endpoints`), checked method and
    /// custom id, and its body to read.
    static func request(_ r: Record, endpoints: [String]) throws -> (url: String, body: StrictObject) {
        var o = StrictObject(r.object ?? JSONObject(), path: "")
        let url = try o.choice("url", endpoints, required: true)!
        _ = try o.choice("method", ["POST"], required: true)
        _ = try o.take("custom_id", required: true)
        let body = try o.object("body", required: true)!
        try o.finish()
        return (url, body)
    }

    /// A request's stable identity for the ids OpenAI's lines carry (`batch_req_…`,
    /// `chatcmpl-…`): from where it sits in the input, so a resumed job repeats them.
    static func requestKey(_ r: Record) -> String { key(member: r.member, line: r.line) }

    static func key(member: String, line: Int) -> String {
        let k = CounterRandom.key(member: member, line: line)
        let hex = String(k, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// A chat.completion or text_completion object.
    static func body(
        chat: Bool, key: String, created: Int64, model: String, choices: [(String, String, JSONValue?)],
        promptTokens: Int, completionTokens: Int
    ) -> JSONValue {
        let list: [JSONValue] = choices.enumerated().map { i, c in
            let (text, reason, logprobs) = c
            if chat {
                return .object(
                    JSONObject([
                        ("index", .int(Int64(i))),
                        (
                            "message",
                            .object(
                                JSONObject([("role", "assistant"), ("content", .string(text)), ("refusal", .null)]))
                        ),
                        (
                            "logprobs",
                            logprobs.map { .object(JSONObject([("content", $0), ("refusal", .null)])) } ?? .null
                        ),
                        ("finish_reason", .string(reason))
                    ]))
            }
            return .object(
                JSONObject([
                    ("text", .string(text)), ("index", .int(Int64(i))),
                    ("logprobs", logprobs.map { textLogprobs($0) } ?? .null), ("finish_reason", .string(reason))
                ]))
        }
        return .object(
            JSONObject([
                ("id", .string((chat ? "chatcmpl-" : "cmpl-") + key)),
                ("object", .string(chat ? "chat.completion" : "text_completion")), ("created", .int(created)),
                ("model", .string(model)), ("choices", .array(list)),
                (
                    "usage",
                    .object(
                        JSONObject([
                            ("prompt_tokens", .int(Int64(promptTokens))),
                            ("completion_tokens", .int(Int64(completionTokens))),
                            ("total_tokens", .int(Int64(promptTokens + completionTokens)))
                        ]))
                )
            ]))
    }

    /// The legacy completions endpoint's logprobs layout: parallel arrays of tokens,
    /// their logprobs and `{token: logprob}` maps of the most likely.
    static func textLogprobs(_ content: JSONValue) -> JSONValue {
        let entries = content.arrayValue ?? []
        var offsets: [JSONValue] = []
        var offset = 0
        for e in entries {
            offsets.append(.int(Int64(offset)))
            offset += e.objectValue?["token"]?.stringValue?.count ?? 0
        }
        return .object(
            JSONObject([
                ("tokens", .array(entries.map { $0.objectValue?["token"] ?? .null })),
                ("token_logprobs", .array(entries.map { $0.objectValue?["logprob"] ?? .null })),
                (
                    "top_logprobs",
                    .array(
                        entries.map { e in
                            var o = JSONObject()
                            for t in e.objectValue?["top_logprobs"]?.arrayValue ?? [] {
                                if let token = t.objectValue?["token"]?.stringValue {
                                    o[token] = t.objectValue?["logprob"]
                                }
                            }
                            return .object(o)
                        })
                ),
                ("text_offset", .array(offsets))
            ]))
    }

    /// An embeddings response body: one `embedding` object per input, floats or
    /// (`encoding_format: base64`) their little-endian float32 bytes in base64.
    static func embeddingsBody(model: String, vectors: [[Float]], base64: Bool, promptTokens: Int) -> JSONValue {
        .object(
            JSONObject([
                ("object", "list"),
                (
                    "data",
                    .array(
                        vectors.enumerated().map { i, v in
                            .object(
                                JSONObject([
                                    ("object", "embedding"), ("index", .int(Int64(i))),
                                    (
                                        "embedding",
                                        base64
                                            ? .string(
                                                Data(
                                                    v.flatMap {
                                                        withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init)
                                                    }
                                                )
                                                .base64EncodedString())
                                            : .array(v.map(number))
                                    )
                                ]))
                        })
                ),
                ("model", .string(model)),
                (
                    "usage",
                    .object(
                        JSONObject([
                            ("prompt_tokens", .int(Int64(promptTokens))), ("total_tokens", .int(Int64(promptTokens)))
                        ]))
                )
            ]))
    }

    /// A float32 as JSON with its shortest digits: the double nearest the float's own
    /// shortest decimal prints as that decimal ("0.1", not "0.10000000149011612").
    static func number(_ f: Float) -> JSONValue { f.isFinite ? .double(Double(f.description)!) : .null }

    /// The output line of a request that succeeded.
    static func row(custom: String, key: String, body: JSONValue) -> ResultRow {
        ResultRow(
            id: "batch_req_" + key,
            fields: [
                ("custom_id", .string(custom)),
                (
                    "response",
                    .json(
                        .object(
                            JSONObject([("status_code", 200), ("request_id", .string(key)), ("body", body)])))
                ),
                ("error", .json(.null))
            ])
    }

    /// The error-file line of a request that failed: OpenAI's shape, a 400 response whose
    /// body holds the error (Quern's code, message, the field as `param`, and where it was).
    public static let errorLine: RecordErrors.LineFormat = { id, member, line, e in
        let request = key(member: member, line: line ?? 0)
        let error = JSONObject([
            ("message", .string(e.message)), ("type", "invalid_request_error"),
            ("param", e.field.map { .string($0) } ?? .null), ("code", .string(e.code.rawValue)),
            ("line", line.map { .int(Int64($0)) } ?? .null), ("member", .string(member))
        ])
        let o = JSONObject([
            ("id", .string("batch_req_" + request)), ("custom_id", id.map { .string($0) } ?? .null),
            (
                "response",
                .object(
                    JSONObject([
                        ("status_code", 400), ("request_id", .string(request)),
                        ("body", .object(JSONObject([("error", .object(error))])))
                    ]))
            ),
            ("error", .null)
        ])
        var bytes = JSONWriter.compact(.object(o))
        bytes.append(0x0A)
        return bytes
    }
}
