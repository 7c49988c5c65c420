import QuernCore

/// One of N equal shares of a job's input, 0-based: `--shard 2/4` is the third of four.
/// Every process that runs a shard of the same input computes the same share, so shards
/// need no coordinator and a re-run shard does exactly the same records again.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else {
            throw QuernError(
                .invalidValue, "shard \(index)/\(count): the index must be in 0..<count and the count at least 1",
                field: "shard")
        }
        self.index = index
        self.count = count
    }

    /// `I/N`, as `quern run-shard --shard` takes it.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw QuernError(
                .invalidValue, "--shard \"\(text)\" is not INDEX/COUNT (0-based, like 0/4)", field: "shard")
        }
        try self.init(index: i, count: n)
    }

    /// The shard a scheduler gave this process: a Slurm array task
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`) or a
    /// Kubernetes Indexed Job pod (`JOB_COMPLETION_INDEX` of `count`, which Kubernetes
    /// does not export). Nil when neither is set.
    public static func fromEnvironment(_ env: [String: String], count: Int? = nil) throws -> Shard? {
        if let id = env["SLURM_ARRAY_TASK_ID"].flatMap({ Int($0) }) {
            let first = env["SLURM_ARRAY_TASK_MIN"].flatMap { Int($0) } ?? 0
            guard let n = count ?? env["SLURM_ARRAY_TASK_COUNT"].flatMap({ Int($0) }) else {
                throw QuernError(
                    .invalidValue, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard-count",
                    field: "shard")
            }
            return try Shard(index: id - first, count: n)
        }
        if let index = env["JOB_COMPLETION_INDEX"].flatMap({ Int($0) }) {
            guard let count else {
                throw QuernError(
                    .invalidValue,
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job); pass --shard-count with the job's completions",
                    field: "shard")
            }
            return try Shard(index: index, count: count)
        }
        return nil
    }

    /// `part-00002-of-00004`: the name of this shard's outputs, which sorts in shard order.
    public var name: String { "part-\(Self.pad(index))-of-\(Self.pad(count))" }
    public var description: String { "\(index)/\(count)" }

    static func pad(_ v: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, 5 - s.count)) + s
    }
}

/// How N shards split an input: whole archive members when there are at least N of them
/// (a shard then never decodes another's members), else contiguous ranges of records
/// (each shard decodes the records before its range to find it). Either way shard i
/// takes units `[units·i/N, units·(i+1)/N)`: no unit twice, none skipped, and the shards'
/// outputs in shard order are the input order.
public struct ShardPlan: Sendable, Equatable {
    public enum Mode: String, Sendable { case members, records }
    public let mode: Mode
    public let count: Int
    /// Members (that produce records or an error) or records (and record errors) in the input.
    public let units: Int

    public init(mode: Mode, count: Int, units: Int) {
        self.mode = mode
        self.count = count
        self.units = units
    }

    public func range(_ shard: Shard) -> Range<Int> {
        (units * shard.index / count)..<(units * (shard.index + 1) / count)
    }

    /// What a stream of this shard reads.
    public func selection(_ shard: Shard) -> RecordStream.Selection {
        mode == .members ? .members(range(shard)) : .records(range(shard))
    }

    /// Lists the input's members (headers only) and, when there are fewer than `count`,
    /// counts its records with a full decoding pass.
    public static func make(path: String, spec: RecordSpec, limits: StreamLimits, count: Int) throws -> ShardPlan {
        let members = try RecordStream.countMembers(path: path, spec: spec)
        if members >= count { return ShardPlan(mode: .members, count: count, units: members) }
        let stream = try RecordStream(path: path, spec: spec, limits: limits)
        var records = 0
        while try stream.next() != nil { records += 1 }
        return ShardPlan(mode: .records, count: count, units: records)
    }

    public var json: JSONValue {
        ["mode": .string(mode.rawValue), "count": .int(Int64(count)), "units": .int(Int64(units))]
    }

    public init(json: JSONValue) throws {
        guard let o = json.objectValue, let m = o["mode"]?.stringValue.flatMap(Mode.init(rawValue:)),
            let c = o["count"]?.intValue, let u = o["units"]?.intValue, c >= 1, u >= 0
        else {
            throw QuernError(.internalError, "a shard plan is not {mode, count, units}")
        }
        self.init(mode: m, count: Int(c), units: Int(u))
    }
}
