import QuernCore
import QuernModels

/// `report.json`, built in one place for every task and for the cluster merge, so every
/// report has the same shape: what ran (id, task, model, precision, input), on how many
/// records, the task's own sections, then metrics, timings and provenance, in that order.
public struct Report {
    /// Keys that open and close every report, in order; a task's own sections (`training`,
    /// `quantization`…) go between them in the order they were set.
    static let head = ["id", "task", "status", "model", "precision", "input", "records"]
    static let tail = ["metrics", "timings", "throughput", "outputs", "resumed", "shard", "shards", "host"]

    var sections = JSONObject()
    /// Timing fields after `started_at`, `finished_at` and `wall_seconds`.
    public var timings = JSONObject()

    public init(id: String, task: String) {
        sections["id"] = .string(id)
        sections["task"] = .string(task)
        sections["status"] = "done"
    }

    /// A report read back (a cluster part's), to extend or recombine.
    public init(json: JSONObject) {
        sections = json
        timings = json["timings"]?.objectValue ?? JSONObject()
        sections["timings"] = nil
    }

    public subscript(_ key: String) -> JSONValue? {
        get { key == "timings" ? .object(timings) : sections[key] }
        set {
            if key == "timings" { timings = newValue?.objectValue ?? JSONObject() } else { sections[key] = newValue }
        }
    }

    /// The `model` section: where it is, its family and its weights' digest, and `extra`.
    public static func model(_ model: any Model, _ extra: [(String, JSONValue)] = []) -> JSONValue {
        var o = JSONObject([("path", .string(model.path)), ("family", .string(model.family))])
        if let w = model.weights {
            o["sha256"] = .string(w.sha256)
            o["bytes"] = .int(Int64(w.bytes))
        }
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }

    /// The `records` section: read = succeeded + failed, then `extra` counts.
    public static func records(succeeded: Int, failed: Int, _ extra: [(String, Int)] = []) -> JSONValue {
        var o = JSONObject([
            ("read", .int(Int64(succeeded + failed))), ("succeeded", .int(Int64(succeeded))),
            ("failed", .int(Int64(failed)))
        ])
        for (k, v) in extra { o[k] = .int(Int64(v)) }
        return .object(o)
    }

    /// The report with its timings (`started_at`, `finished_at`, `wall_seconds`, then
    /// the task's), and `host` unless already set.
    public func json(startedAt: Double, finishedAt: Double, wallSeconds: Double) -> JSONValue {
        var t = JSONObject([
            ("started_at", .string(Timestamp.iso8601(startedAt))),
            ("finished_at", .string(Timestamp.iso8601(finishedAt))), ("wall_seconds", .double(wallSeconds))
        ])
        for k in timings.keys where t[k] == nil { t[k] = timings[k] }
        var all = sections
        all["timings"] = .object(t)
        if all["host"] == nil { all["host"] = .string(Sys.hostname) }
        return Self.ordered(all)
    }

    /// The report as it stands (the merge sets its timings itself).
    public var json: JSONValue {
        var all = sections
        if !timings.keys.isEmpty { all["timings"] = .object(timings) }
        return Self.ordered(all)
    }

    static func ordered(_ o: JSONObject) -> JSONValue {
        var out = JSONObject()
        for k in head where o[k] != nil { out[k] = o[k] }
        for k in o.keys where !head.contains(k) && !tail.contains(k) { out[k] = o[k] }
        for k in tail where o[k] != nil { out[k] = o[k] }
        return .object(out)
    }
}
