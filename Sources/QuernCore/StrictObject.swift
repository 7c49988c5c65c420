/// Walks one JSON object, taking keys as they are asked for; `finish()` then refuses
/// any key nobody asked for, naming it. Errors carry the dotted field (`input.format`),
/// so a person reading `error.json` knows which line of their file to fix.
public struct StrictObject {
    public let object: JSONObject
    public let path: String
    public private(set) var taken: Set<String> = []

    public init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    /// The dotted name of `key` in this object.
    public func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public mutating func take(_ key: String, required: Bool) throws -> JSONValue? {
        taken.insert(key)
        guard let v = object[key], v != .null else {
            if required { throw QuernError(.missingField, "\"\(field(key))\" is required", field: field(key)) }
            return nil
        }
        return v
    }

    func typeError(_ key: String, _ expected: String, _ got: JSONValue) -> QuernError {
        QuernError(.invalidType, "\"\(field(key))\" must be \(expected), not \(got.typeName)", field: field(key))
    }

    /// A string, empty only when `allowEmpty` (most settings mean nothing when empty).
    public mutating func string(_ key: String, required: Bool = false, allowEmpty: Bool = false) throws -> String? {
        guard let v = try take(key, required: required) else { return nil }
        guard let s = v.stringValue else { throw typeError(key, "a string", v) }
        if s.isEmpty && !allowEmpty {
            throw QuernError(.invalidValue, "\"\(field(key))\" must not be empty", field: field(key))
        }
        return s
    }

    public mutating func int(_ key: String, required: Bool = false, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let v = try take(key, required: required) else { return nil }
        guard let i = v.intValue else { throw typeError(key, "an integer", v) }
        if let range, !range.contains(Int(i)) {
            throw QuernError(
                .invalidValue,
                "\"\(field(key))\" is \(i); it must be between \(range.lowerBound) and \(range.upperBound)",
                field: field(key))
        }
        return Int(i)
    }

    public mutating func number(_ key: String) throws -> Double? {
        guard let v = try take(key, required: false) else { return nil }
        guard let d = v.doubleValue else { throw typeError(key, "a number", v) }
        return d
    }

    public mutating func bool(_ key: String) throws -> Bool? {
        guard let v = try take(key, required: false) else { return nil }
        guard let b = v.boolValue else { throw typeError(key, "true or false", v) }
        return b
    }

    public mutating func stringArray(_ key: String) throws -> [String]? {
        guard let v = try take(key, required: false) else { return nil }
        guard let a = v.arrayValue, !a.isEmpty else { throw typeError(key, "a non-empty array of strings", v) }
        let strings = a.compactMap(\.stringValue)
        guard strings.count == a.count else { throw typeError(key, "a non-empty array of strings", v) }
        return strings
    }

    /// A string that must be one of `allowed`; the error lists them.
    public mutating func choice(
        _ key: String, _ allowed: [String], code: QuernError.Code = .invalidValue,
        required: Bool = false
    ) throws -> String? {
        guard let s = try string(key, required: required) else { return nil }
        guard allowed.contains(s) else {
            throw QuernError(
                code, "\"\(field(key))\" is \"\(s)\"; it must be one of: \(allowed.joined(separator: ", "))",
                field: field(key))
        }
        return s
    }

    public mutating func enumeration<E: RawRepresentable & CaseIterable>(
        _ key: String, _ type: E.Type, required: Bool = false
    ) throws -> E? where E.RawValue == String {
        guard let s = try choice(key, E.allCases.map(\.rawValue), required: required) else { return nil }
        return E(rawValue: s)
    }

    public mutating func object(_ key: String, required: Bool = false) throws -> StrictObject? {
        guard let v = try take(key, required: required) else { return nil }
        guard let o = v.objectValue else { throw typeError(key, "an object", v) }
        return StrictObject(o, path: field(key))
    }

    public func finish() throws {
        for key in object.keys where !taken.contains(key) {
            let known = taken.sorted().joined(separator: ", ")
            throw QuernError(.unknownKey, "unknown key \"\(field(key))\"; known keys here: \(known)", field: field(key))
        }
    }
}
