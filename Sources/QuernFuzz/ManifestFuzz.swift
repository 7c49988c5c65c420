import QuernCore
import QuernTasks

/// The manifest (what a user drops into incoming/) and the JSON parser under it, which
/// also reads records, configs, tokenizer.json and safetensors headers.
enum ManifestFuzz {
    static let targets = [
        FuzzTarget(name: "manifest", input: "a job manifest (JSON)", run: manifest),
        FuzzTarget(name: "json", input: "any JSON document", run: json)
    ]

    /// Decoding either succeeds or names the problem; a decoded manifest's paths resolve
    /// inside the spool or fail, never outside it.
    static func manifest(_ bytes: [UInt8]) {
        guard let m = FuzzCheck.handled("Manifest.decode", { try Manifest.decode(bytes) }) else { return }
        _ = m.recordSpec(texts: true, labels: true)
        _ = m.recordSpec(texts: false, labels: false)
        let spool = FuzzScratch.shared.path
        let policy = PathPolicy(base: spool, roots: [])
        let resolved = FuzzCheck.handled("Manifest.resolvingPaths") {
            try m.resolvingPaths { path, field in
                let real = try policy.resolve(path, field: field)
                FuzzCheck.require(
                    Path.isInside(real, policy.base), "\(field) \"\(path)\" resolved to \(real), outside the spool")
                return real
            }
        }
        if let resolved {
            FuzzCheck.require(resolved.task.name == m.task.name, "resolving paths changed the task")
        }
    }

    /// Properties of the parser: what it accepts survives a round trip through the
    /// writer; the field scanner used for records agrees with the full parse; the UTF-8
    /// check agrees with the standard library's.
    static func json(_ bytes: [UInt8]) {
        let valid = bytes.withUnsafeBufferPointer { b in
            b.baseAddress.map { UTF8Check.isValid($0, b.count) } ?? true
        }
        FuzzCheck.require(
            valid == (String(validating: bytes, as: UTF8.self) != nil),
            "UTF8Check.isValid says \(valid) where the standard library disagrees")

        let parsed: JSONValue?
        var duplicateKey = false
        do {
            parsed = try JSONParser.parse(bytes)
        } catch let e as JSONSyntaxError {
            parsed = nil
            duplicateKey = e.message.hasPrefix("duplicate key")
        } catch {
            FuzzCheck.fail("JSONParser.parse threw \(type(of: error)): \(error)")
        }
        if let parsed {
            for text in [JSONWriter.compact(parsed), JSONWriter.pretty(parsed)] {
                guard let again = try? JSONParser.parse(text) else {
                    FuzzCheck.fail("the writer's output does not parse: \(String(decoding: text, as: UTF8.self))")
                }
                FuzzCheck.require(same(parsed, again), "a value changed through the writer")
            }
        }

        // Records are read by `fields`: for an object it must agree with `parse`.
        let wanted: [[UInt8]]
        if case .object(let o)? = parsed {
            wanted = o.keys.prefix(3).map { Array($0.utf8) } + [Array("absent".utf8)]
        } else {
            wanted = [Array("id".utf8), Array("text".utf8)]
        }
        let fields: [JSONValue?]?
        do {
            fields = try bytes.withUnsafeBytes { try JSONParser.fields(of: $0, wanted: wanted) }
        } catch is JSONSyntaxError {
            fields = nil
        } catch {
            FuzzCheck.fail("JSONParser.fields threw \(type(of: error)): \(error)")
        }
        guard let fields else { return }
        // Records are scanned, not built: a key repeated outside the wanted ones goes
        // unnoticed there, and only there.
        if duplicateKey { return }
        guard case .object(let o)? = parsed else {
            FuzzCheck.fail("JSONParser.fields accepted what parse refused as an object")
        }
        for (key, value) in zip(wanted, fields) {
            let k = String(decoding: key, as: UTF8.self)
            FuzzCheck.require(
                value.map { v in o[k].map { same($0, v) } ?? false } ?? (o[k] == nil),
                "JSONParser.fields and parse disagree on \"\(k)\"")
        }
    }

    /// Equal as JSON: numbers compare by value (the writer prints whole doubles as
    /// integers).
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.int, .double), (.double, .int), (.double, .double): return a.doubleValue == b.doubleValue
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.keys == y.keys && x.keys.allSatisfy { same(x[$0]!, y[$0]!) }
        default: return a == b
        }
    }
}
