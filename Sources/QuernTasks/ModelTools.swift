import QuernCore
import QuernModels

/// What `quern inspect`, `quern tokenize` and `quern dequantize` do: look at a model
/// without running a job.
public enum ModelTools {
    /// A model directory described by its family: layers, shapes, sizes, precision,
    /// and the weights' digest (an architecture without weights is described too).
    public static func inspect(_ path: String) throws -> JSONValue {
        let model = try ModelRegistry.load(path, ModelOptions(allowArchitectureOnly: true))
        var o = model.describe().objectValue ?? JSONObject()
        o["path"] = .string(model.path)
        if let w = model.weights {
            o["weights_bytes"] = .int(Int64(w.bytes))
            o["weights_sha256"] = .string(w.sha256)
        }
        return .object(o)
    }

    /// `quern tokenize`: the token ids of each JSONL line's text field (and of a pair when
    /// `pairField` is given), one JSON object per line, as the model's tokenizer makes them
    /// (tokenizer.json's model type picks WordPiece or byte-level BPE). With `decode`, each
    /// line's `ids` array becomes `{"text", "streamed"}`: the BPE decoding at once and one
    /// id at a time. For checking Quern's tokenizers against others and for looking at
    /// what a model sees.
    public static func tokenize(
        model: String, input: String?, field: String, pairField: String?, maxLength: Int?,
        addSpecialTokens: Bool = true, decode: Bool = false, skipSpecialTokens: Bool = false,
        write: ([UInt8]) throws -> Void
    ) throws {
        let tokenizer = try ModelTokenizer.load(directory: model)
        let encode: (JSONObject, Int) throws -> JSONObject
        // A BPE tokenizer's pairs and truncation are an encoder's (RoBERTa's template).
        var bpe: BPETokenizer?
        if case .bpe(let t) = tokenizer, decode || (pairField == nil && maxLength == nil) { bpe = t }
        switch bpe {
        case nil:
            let t = tokenizer.encoder
            guard !decode else {
                throw QuernError(.invalidValue, "\(model): WordPiece and Unigram tokenizers do not decode")
            }
            let session = t.makeSession(), template = t.template
            encode = { o, line in
                let text = try Self.text(o, field, line)
                var out = JSONObject()
                if let pairField {
                    let e = template.encode(
                        session.tokens(text), session.tokens(try Self.text(o, pairField, line)), maxLength: maxLength)
                    out["ids"] = Self.json(e.ids)
                    out["type_ids"] = Self.json(e.typeIDs)
                } else {
                    let ids = session.tokens(text)
                    out["ids"] = Self.json(addSpecialTokens ? template.encode(ids, maxLength: maxLength).ids : ids)
                }
                return out
            }
        case let t?:
            guard pairField == nil, maxLength == nil else {
                throw QuernError(.invalidValue, "\(model): decoding reads ids; --pair-field and --max-length encode")
            }
            let session = BPETokenizer.Session(t)
            encode = { o, line in
                var out = JSONObject()
                guard decode else {
                    out["ids"] = Self.json(
                        session.encode(try Self.text(o, field, line), addSpecialTokens: addSpecialTokens))
                    return out
                }
                guard let list = o["ids"]?.arrayValue,
                    let ids = Optional(list.compactMap { $0.intValue.flatMap { Int32(exactly: $0) } }),
                    ids.count == list.count
                else {
                    throw QuernError(
                        .invalidRecord, "line \(line): not a JSON object with an \"ids\" array of integers")
                }
                var stream = BPETokenizer.StreamDecoder(t, skipSpecialTokens: skipSpecialTokens)
                out["text"] = .string(t.decode(ids, skipSpecialTokens: skipSpecialTokens))
                out["streamed"] = .string(ids.map { stream.next($0) }.joined() + stream.finish())
                return out
            }
        }
        let bytes = try Sys.readFile(input ?? "/dev/stdin", limit: 1 << 34, regularOnly: input != nil)
        var line = 0
        for raw in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            line += 1
            guard !raw.isEmpty else { continue }
            guard let o = try? JSONParser.parse(Array(raw)).objectValue else {
                throw QuernError(.invalidRecord, "line \(line): not a JSON object")
            }
            try write(JSONWriter.compact(.object(try encode(o, line))) + [0x0A])
        }
    }

    /// `quern dequantize`: the fp32 values of a GGUF's tensors (`names`, or every tensor in
    /// file order), raw little-endian, one after another, each in Quern's row-major order.
    /// For checking Quern's dequantization against other readers (scripts/check-gguf.py).
    public static func dequantize(gguf path: String, names: [String], write: ([UInt8]) throws -> Void) throws {
        let file = try GGUFFile(path: path)
        for name in names.isEmpty ? file.tensorNames : names {
            let values = try file.float32(name)
            try values.withUnsafeBytes { try write(Array($0)) }
        }
    }

    static func text(_ o: JSONObject, _ field: String, _ line: Int) throws -> String {
        guard let text = o[field]?.stringValue else {
            throw QuernError(.invalidRecord, "line \(line): not a JSON object with a string \"\(field)\"")
        }
        return text
    }

    static func json(_ ids: [Int32]) -> JSONValue { .array(ids.map { JSONValue.int(Int64($0)) }) }
}
