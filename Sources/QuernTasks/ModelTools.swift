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
    /// `pairField` is given), one JSON object per line, as the model's tokenizer makes them.
    /// For checking Quern's tokenizer against others and for looking at what a model sees.
    public static func tokenize(
        model: String, input: String?, field: String, pairField: String?, maxLength: Int?,
        write: ([UInt8]) throws -> Void
    ) throws {
        let tokenizer = try WordPieceTokenizer.load(directory: model)
        let session = WordPieceTokenizer.Session(tokenizer)
        let bytes = try Sys.readFile(input ?? "/dev/stdin", limit: 1 << 34, regularOnly: input != nil)
        var line = 0
        for raw in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            line += 1
            guard !raw.isEmpty else { continue }
            guard let o = try? JSONParser.parse(Array(raw)).objectValue, let text = o[field]?.stringValue else {
                throw QuernError(.invalidRecord, "line \(line): not a JSON object with a string \"\(field)\"")
            }
            let e: TokenSequence
            if let pairField {
                guard let second = o[pairField]?.stringValue else {
                    throw QuernError(.invalidRecord, "line \(line): no string \"\(pairField)\"")
                }
                e = session.encode(text, second, maxLength: maxLength)
            } else {
                e = session.encode(text, maxLength: maxLength)
            }
            var out = JSONObject()
            out["ids"] = .array(e.ids.map { JSONValue.int(Int64($0)) })
            if pairField != nil { out["type_ids"] = .array(e.typeIDs.map { JSONValue.int(Int64($0)) }) }
            try write(JSONWriter.compact(.object(out)) + [0x0A])
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
}
