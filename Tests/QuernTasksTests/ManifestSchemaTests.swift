import Foundation
import QuernCore
import QuernTestSupport
import Testing

@testable import QuernTasks

/// jobs/manifest.schema.json and the decoder describe one format: every example job
/// validates against the schema and decodes; every object the schema closes
/// (`additionalProperties: false`) has exactly the keys the decoder reads there; the task
/// list is the registry's. A key added to one and not the other fails here.
@Suite("the manifest schema")
struct ManifestSchemaTests {
    static let schema: JSONObject = {
        (try? JSONParser.parse(Sys.readFile(repoRoot + "/jobs/manifest.schema.json")).objectValue) ?? JSONObject()
    }()

    static var examples: [String] {
        let dirs = [repoRoot + "/jobs", repoRoot + "/jobs/text"]
        return dirs.flatMap { d in
            ((try? Sys.listDirectory(d)) ?? []).filter { $0.hasSuffix(".json") && !$0.contains("schema") }.map {
                d + "/" + $0
            }
        }.sorted()
    }

    @Test(arguments: examples)
    func everyExampleJobValidatesAndDecodes(_ path: String) throws {
        let bytes = try Sys.readFile(path)
        let value = try JSONParser.parse(bytes)
        let problems = SchemaCheck.problems(value, against: .object(Self.schema))
        #expect(problems.isEmpty, "\(Path.basename(path)): \(problems)")
        _ = try Manifest.decode(bytes)
    }

    @Test("the schema check refuses what the schema does not allow")
    func theCheckIsNotVacuous() throws {
        let good: JSONObject = ["version": 1, "task": "predict", "model": "m", "input": ["path": "x.csv"]]
        #expect(SchemaCheck.problems(.object(good), against: .object(Self.schema)).isEmpty)
        for (key, value) in [
            ("colour", "blue"), ("batch_size", 0), ("task", "train"), ("version", 2), ("id", "a b"),
            ("input", ["members": "*.csv"])
        ] as [(String, JSONValue)] {
            var bad = good
            bad[key] = value
            #expect(!SchemaCheck.problems(.object(bad), against: .object(Self.schema)).isEmpty, "\(key): \(value)")
        }
    }

    @Test func theTaskListIsTheRegistry() {
        let tasks = Self.schema["properties"]?.objectValue?["task"]?.objectValue?["enum"]?.arrayValue?.compactMap(
            \.stringValue)
        #expect(tasks == TaskRegistry.names)
    }

    /// For each closed object of the schema: a manifest whose task reads it, with one
    /// unknown key there; the decoder's error lists the keys it knows at that place.
    @Test(arguments: [
        ("", "predict"), ("input", "predict"), ("output", "predict"), ("limits", "predict"),
        ("train", "finetune"), ("quantize", "quantize"), ("prune", "prune"), ("score", "score")
    ])
    func closedObjectsHaveTheDecodersKeys(_ path: String, _ task: String) throws {
        var manifest: JSONObject = [
            "version": 1, "task": .string(task), "model": "m",
            "input": ["path": "x.jsonl", "label_field": "y", "pair_field": "b"]
        ]
        if task == "score" { manifest["input"] = ["path": "x.jsonl", "pair_field": "b"] }
        var object = path.isEmpty ? manifest : manifest[path]?.objectValue ?? JSONObject()
        object["zz_unknown"] = 1
        if path.isEmpty { manifest = object } else { manifest[path] = .object(object) }
        let e = try #require(quernError { _ = try Manifest.decode(JSONWriter.compact(.object(manifest))) })
        #expect(e.code == .unknownKey, "\(e)")
        let listed = try #require(e.message.components(separatedBy: "known keys here: ").last)
        let decoder = Set(listed.components(separatedBy: ", "))
        var schema = Self.schema
        if !path.isEmpty { schema = try #require(schema["properties"]?.objectValue?[path]?.objectValue) }
        #expect(schema["additionalProperties"] == false)
        let keys = Set(try #require(schema["properties"]?.objectValue).keys)
        #expect(
            keys == decoder,
            "schema-only: \(keys.subtracting(decoder).sorted()); decoder-only: \(decoder.subtracting(keys).sorted())")
    }
}

/// The part of JSON Schema (2020-12) the manifest schema uses, enough to say whether a
/// manifest conforms: type, const, enum, not, string length and pattern, number bounds,
/// object properties, required and additionalProperties, array items.
enum SchemaCheck {
    static func problems(_ v: JSONValue, against schemaValue: JSONValue, at path: String = "$") -> [String] {
        guard let s = schemaValue.objectValue else { return [] }
        var out: [String] = []
        if let type = s["type"]?.stringValue, !has(type: type, v) { return ["\(path): not \(type)"] }
        if let c = s["const"], c != v { out.append("\(path): not \(c)") }
        if let e = s["enum"]?.arrayValue, !e.contains(v) { out.append("\(path): not one of \(e)") }
        if let n = s["not"], problems(v, against: n, at: path).isEmpty {
            out.append("\(path): matches the excluded schema")
        }
        if let str = v.stringValue {
            if let m = s["minLength"]?.intValue, str.count < m { out.append("\(path): shorter than \(m)") }
            if let p = s["pattern"]?.stringValue, str.range(of: p, options: .regularExpression) == nil {
                out.append("\(path): does not match \(p)")
            }
        }
        if let d = v.doubleValue, v.stringValue == nil {
            if let m = s["minimum"]?.doubleValue, d < m { out.append("\(path): below \(m)") }
            if let m = s["maximum"]?.doubleValue, d > m { out.append("\(path): above \(m)") }
            if let m = s["exclusiveMinimum"]?.doubleValue, d <= m { out.append("\(path): not above \(m)") }
            if let m = s["exclusiveMaximum"]?.doubleValue, d >= m { out.append("\(path): not below \(m)") }
        }
        if let o = v.objectValue {
            let properties = s["properties"]?.objectValue ?? JSONObject()
            for r in s["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where o[r] == nil {
                out.append("\(path).\(r): required")
            }
            for k in o.keys {
                if let sub = properties[k] {
                    out += problems(o[k]!, against: sub, at: "\(path).\(k)")
                } else if s["additionalProperties"] == false {
                    out.append("\(path).\(k): not allowed")
                }
            }
        }
        if let a = v.arrayValue {
            if let m = s["minItems"]?.intValue, a.count < m { out.append("\(path): fewer than \(m) items") }
            if let items = s["items"] {
                for (i, x) in a.enumerated() { out += problems(x, against: items, at: "\(path)[\(i)]") }
            }
        }
        return out
    }

    static func has(type: String, _ v: JSONValue) -> Bool {
        switch type {
        case "object": v.objectValue != nil
        case "array": v.arrayValue != nil
        case "string": v.stringValue != nil
        case "integer": v.intValue != nil
        case "number": v.doubleValue != nil && v.stringValue == nil
        case "boolean": v.boolValue != nil
        default: true
        }
    }
}
