import QuernCore

/// Reading a Hugging Face `tokenizer.json` with a `BPE` model: every piece is checked and
/// anything Quern does not implement is refused by name before the designated
/// initializer builds the tables.
extension BPETokenizer {
    /// Reads `tokenizer.json` from a model directory, with `bos_token` and `eos_token` from
    /// `tokenizer_config.json` when it names them.
    public static func load(directory: String) throws -> BPETokenizer {
        let json = Path.join(directory, "tokenizer.json")
        guard Sys.isRegularFile(json) else {
            throw QuernError(.modelInvalid, "\(directory) has no tokenizer.json", field: "model")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(Sys.readFile(json, limit: 256 << 20))
        } catch let e as JSONSyntaxError {
            throw QuernError(.modelInvalid, "\(json): not valid JSON: \(e)", field: "model")
        }
        guard let root = parsed.objectValue else {
            throw QuernError(.modelInvalid, "\(json): not a JSON object", field: "model")
        }
        return try load(directory: directory, root: root, source: json)
    }

    static func load(directory: String, root: JSONObject, source: String) throws -> BPETokenizer {
        var bos: String?, eos: String?
        let config = Path.join(directory, "tokenizer_config.json")
        if Sys.isRegularFile(config), let o = (try? JSONParser.parse(Sys.readFile(config)))?.objectValue {
            func name(_ v: JSONValue?) -> String? { v?.stringValue ?? v?.objectValue?["content"]?.stringValue }
            bos = name(o["bos_token"])
            eos = name(o["eos_token"])
        }
        return try BPETokenizer(root: root, source: source, bos: bos, eos: eos)
    }

    /// From `tokenizer.json` (a `BPE` model). `bos` and `eos` name tokens to report as
    /// `bosID`/`eosID` (tokenizer.json itself does not say which they are).
    public init(tokenizerJSON bytes: [UInt8], source: String = "tokenizer.json", bos: String? = nil, eos: String? = nil)
        throws
    {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(bytes)
        } catch let e as JSONSyntaxError {
            throw fail("not valid JSON: \(e)")
        }
        guard let root = parsed.objectValue else { throw fail("not a JSON object") }
        try self.init(root: root, source: source, bos: bos, eos: eos)
    }

    /// From a parsed tokenizer.json (`ModelTokenizer` parses it once to see the model type).
    init(root: JSONObject, source: String, bos: String?, eos: String?) throws {
        func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }
        if let version = root["version"], version.stringValue != "1.0" {
            throw fail("version \(version.stringValue?.debugDescription ?? version.typeName) is not \"1.0\"")
        }
        guard let model = root["model"]?.objectValue else {
            throw fail("model must be an object, not \(root["model"]?.typeName ?? "missing")")
        }
        let type = model["type"]?.stringValue ?? (model["merges"] != nil ? "BPE" : "?")
        guard type == "BPE" else { throw fail("model type \(type) is not BPE") }
        if model["byte_fallback"]?.boolValue == true {
            throw fail("model.byte_fallback is true, which Quern does not support (byte-level BPE only)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key], v != .null, v.stringValue != "" {
                throw fail("model.\(key) \(v) is not supported (byte-level BPE has none)")
            }
        }
        if let d = model["dropout"], d != .null, d.doubleValue != 0 {
            throw fail("model.dropout \(d) is not supported (BPE dropout is for training)")
        }

        guard let vocab = model["vocab"]?.objectValue else {
            throw fail("model.vocab must be an object of token → id, not \(model["vocab"]?.typeName ?? "missing")")
        }
        let tokens = try vocab.pairs.map { (token, v) -> (String, Int32) in
            guard let i = v.intValue, let id = Int32(exactly: i), id >= 0 else {
                throw fail(
                    "vocab entry \(token.debugDescription) must have an integer id from 0 to \(Int32.max), not "
                        + (v.intValue.map { "\($0)" } ?? v.typeName))
            }
            return (token, id)
        }
        guard let mergeList = model["merges"]?.arrayValue else {
            throw fail("model.merges must be an array, not \(model["merges"]?.typeName ?? "missing")")
        }
        let merges = try mergeList.enumerated().map { (rank, m) -> (String, String) in
            if let s = m.stringValue {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw fail("merge \(rank) \(s.debugDescription) is not two tokens separated by one space")
                }
                return (String(parts[0]), String(parts[1]))
            }
            guard let a = m.arrayValue, a.count == 2, let x = a[0].stringValue, let y = a[1].stringValue else {
                throw fail("merge \(rank) must be \"a b\" or [\"a\", \"b\"], not \(m.typeName)")
            }
            return (x, y)
        }
        let added = try (root["added_tokens"]?.arrayValue ?? []).map { t -> AddedToken in
            guard let o = t.objectValue, let content = o["content"]?.stringValue else {
                throw fail("added_tokens entries must be objects with a content string")
            }
            let special = o["special"]?.boolValue ?? false
            return AddedToken(
                content, special: special, singleWord: o["single_word"]?.boolValue ?? false,
                lstrip: o["lstrip"]?.boolValue ?? false, rstrip: o["rstrip"]?.boolValue ?? false,
                normalized: o["normalized"]?.boolValue ?? !special)
        }
        let pipeline = try BPEPipeline.decode(
            normalizer: root["normalizer"], preTokenizer: root["pre_tokenizer"], fail: fail)
        try Self.checkDecoder(root["decoder"], fail: fail)
        let (prefix, suffix) = try Self.singleTemplate(root["post_processor"], fail: fail) ?? ([], [])

        try self.init(
            vocabulary: tokens, merges: merges, addedTokens: added, pipeline: pipeline,
            ignoreMerges: model["ignore_merges"]?.boolValue ?? false, unknownToken: model["unk_token"]?.stringValue,
            fuseUnknown: model["fuse_unk"]?.boolValue ?? false, prefixIDs: prefix, suffixIDs: suffix,
            bos: bos, eos: eos, source: source)
        // As an encoder's tokenizer: the pair template too, when the post-processor has
        // one (a decoder's single-only template keeps the one built from prefix and suffix).
        var processor = root["post_processor"]?.objectValue
        if processor?["type"]?.stringValue == "Sequence" {
            processor = processor?["processors"]?.arrayValue?.compactMap(\.objectValue).first {
                $0["type"]?.stringValue != "ByteLevel"
            }
        }
        if let p = processor, p["type"]?.stringValue != "ByteLevel",
            let t = try? EncoderTemplate.parse(p, id: Self.templateID, fail: fail)
        {
            template = t
        }
        // The truncation is the encoder's default length; generation does not cut prompts.
        defaultMaxLength = root["truncation"]?.objectValue?["max_length"]?.intValue.map(Int.init)
    }

    static func templateID(_ v: JSONValue?, _ what: String) throws -> Int32 {
        guard let i = v?.intValue, let id = Int32(exactly: i), id >= 0 else {
            throw QuernError(.modelInvalid, "\(what) must be an integer id", field: "model")
        }
        return id
    }

    /// The decoder must be ByteLevel (alone or in a Sequence): it is the one Quern implements.
    static func checkDecoder(_ v: JSONValue?, fail: (String) -> QuernError) throws {
        guard let o = v?.objectValue, let type = o["type"]?.stringValue else {
            throw fail("decoder \(v?.typeName ?? "missing") is not supported (ByteLevel only)")
        }
        switch type {
        case "ByteLevel": return
        case "Sequence":
            for d in o["decoders"]?.arrayValue ?? [] { try checkDecoder(d, fail: fail) }
            if o["decoders"]?.arrayValue?.isEmpty ?? true { throw fail("decoder Sequence is empty") }
        default: throw fail("decoder \(type) is not supported (ByteLevel only)")
        }
    }

    /// The ids a post-processor adds before and after a single text: ByteLevel adds none,
    /// TemplateProcessing its special tokens around `$A`; a Sequence may hold one template.
    /// Nil when there is no template.
    static func singleTemplate(_ v: JSONValue?, fail: (String) -> QuernError) throws -> ([Int32], [Int32])? {
        guard let v, v != .null else { return nil }
        guard let o = v.objectValue, let type = o["type"]?.stringValue else {
            throw fail("post_processor must be an object with a type, not \(v.typeName)")
        }
        switch type {
        case "ByteLevel": return nil
        case "RobertaProcessing":
            // ["<s>", 0]: the token and its id; <s> A </s> for one text.
            func id(_ key: String) throws -> Int32 {
                guard let a = o[key]?.arrayValue, a.count == 2, let i = a[1].intValue.flatMap({ Int32(exactly: $0) }),
                    i >= 0
                else { throw fail("post_processor \(key) must be [token, id]") }
                return i
            }
            return ([try id("cls")], [try id("sep")])
        case "Sequence":
            let templates = try (o["processors"]?.arrayValue ?? []).compactMap { try singleTemplate($0, fail: fail) }
            guard templates.count <= 1 else { throw fail("post_processor Sequence has more than one template") }
            return templates.first
        case "TemplateProcessing":
            guard let single = o["single"]?.arrayValue else { throw fail("post_processor template has no single") }
            var before: [Int32] = [], after: [Int32] = [], sequences = 0
            for item in single {
                if let s = item.objectValue?["Sequence"]?.objectValue {
                    guard s["id"]?.stringValue == "A" else {
                        throw fail("post_processor single template uses sequence \(s["id"]?.stringValue ?? "?"), not A")
                    }
                    sequences += 1
                } else if let name = item.objectValue?["SpecialToken"]?.objectValue?["id"]?.stringValue {
                    guard let ids = o["special_tokens"]?.objectValue?[name]?.objectValue?["ids"]?.arrayValue else {
                        throw fail("post_processor template special token \(name.debugDescription) has no ids")
                    }
                    for i in ids {
                        guard let id = i.intValue.flatMap({ Int32(exactly: $0) }), id >= 0 else {
                            throw fail(
                                "post_processor special token \(name.debugDescription) has id "
                                    + (i.intValue.map { "\($0)" } ?? i.typeName))
                        }
                        if sequences == 0 { before.append(id) } else { after.append(id) }
                    }
                } else {
                    throw fail("post_processor template item \(item.typeName) is neither a Sequence nor a SpecialToken")
                }
            }
            guard sequences == 1 else { throw fail("post_processor single template must hold $A once") }
            return (before, after)
        default:
            throw fail(
                "post_processor \(type) is not supported (TemplateProcessing, RobertaProcessing, ByteLevel or a Sequence of them)"
            )
        }
    }
}
