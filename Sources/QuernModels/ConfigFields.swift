import QuernCore

/// Typed, bounded reads of a config.json's fields: each error names the file and the
/// key and says what the value must be, and every size is bounded before the tensors it
/// implies are looked for or allocated.
public struct ConfigFields {
    public let json: JSONObject
    public let source: String

    public init(_ json: JSONObject, source: String) {
        self.json = json
        self.source = source
    }

    public func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(source): \(what)", field: "model") }

    /// A positive integer of at most `max`; `default` when absent or null.
    public func int(_ key: String, max: Int, default d: Int? = nil) throws -> Int {
        let value = json[key]
        if value == nil || value == .null, let d { return d }
        guard let v = value?.intValue, v > 0, v <= max else {
            throw fail("\(key) must be a positive integer of at most \(max), not \(value.map { "\($0)" } ?? "missing")")
        }
        return Int(v)
    }

    /// An integer when present and not null (token ids, windows), bounded like `int`.
    public func optionalInt(_ key: String, max: Int) throws -> Int? {
        guard let value = json[key], value != .null else { return nil }
        return try int(key, max: max)
    }

    /// A finite positive number; `default` when absent.
    public func positive(_ key: String, default d: Double? = nil) throws -> Double {
        let value = json[key]
        if value == nil || value == .null, let d { return d }
        guard let v = value?.doubleValue, v.isFinite, v > 0 else {
            throw fail("\(key) must be a positive number, not \(value.map { "\($0)" } ?? "missing")")
        }
        return v
    }

    public func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let value = json[key], value != .null else { return d }
        guard let b = value.boolValue else { throw fail("\(key) must be true or false, not \(value)") }
        return b
    }

    public func string(_ key: String, default d: String) throws -> String {
        guard let value = json[key], value != .null else { return d }
        guard let s = value.stringValue else { throw fail("\(key) must be a string, not \(value)") }
        return s
    }

    /// Refuses a key whose value is set to something other than `allowed`.
    public func require(_ key: String, in allowed: [JSONValue], what: String) throws {
        guard let value = json[key], value != .null else { return }
        guard allowed.contains(value) else { throw fail("\(key) \(value) is not supported (\(what))") }
    }
}
