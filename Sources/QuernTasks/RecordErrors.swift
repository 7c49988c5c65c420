import QuernCore
import QuernData

/// A job's bad records: each is one line of `errors.jsonl.gz` saying where it was and
/// what was wrong with it; past `limits.max_errors` of them the job fails, naming the last.
public final class RecordErrors {
    public static let fileName = "errors.jsonl.gz"
    public let writer: ChunkedGzipWriter
    public let maxErrors: Int
    /// Bad records so far (a resumed job starts from its checkpoint's count).
    public private(set) var count: Int
    /// How a bad record is written, when a task's input format has its own error shape
    /// (OpenAI Batch); otherwise `line(id:member:line:_:)`.
    public typealias LineFormat = @Sendable (_ id: String?, _ member: String, _ line: Int?, _ e: QuernError) -> [UInt8]
    let format: LineFormat

    public init(writer: ChunkedGzipWriter, maxErrors: Int, count: Int = 0, format: LineFormat? = nil) {
        self.writer = writer
        self.maxErrors = maxErrors
        self.count = count
        self.format = format ?? Self.line
    }

    public func record(id: String?, member: String, line: Int?, _ e: QuernError) throws {
        count += 1
        try writer.append(format(id, member, line, e))
        if count > maxErrors {
            let at = line.map { "\(member), line \($0)" } ?? member
            throw QuernError(
                .tooManyErrors,
                "more than limits.max_errors (\(maxErrors)) bad records; the last, at \(at): \(e.message). See errors.jsonl.gz, fix the input or raise the limit",
                field: "limits.max_errors")
        }
    }

    /// A stream's failure item.
    public func record(_ f: RecordFailure) throws { try record(id: f.id, member: f.member, line: f.line, f.error) }

    /// A record the task refuses.
    public func record(_ r: Record, _ e: QuernError) throws { try record(id: r.id, member: r.member, line: r.line, e) }

    /// One line of errors.jsonl.gz.
    public static func line(id: String?, member: String, line: Int?, _ e: QuernError) -> [UInt8] {
        var o = JSONObject()
        if let id { o["id"] = .string(id) }
        o["member"] = .string(member)
        if let line { o["line"] = .int(Int64(line)) }
        o["code"] = .string(e.code.rawValue)
        o["message"] = .string(e.message)
        var entry = JSONWriter.compact(.object(o))
        entry.append(0x0A)
        return entry
    }
}

extension Record {
    /// `body`'s result for this record, or its error as a record-level `QuernError` that
    /// says where the record is (its line and member, unless the error names them).
    func attempt<T>(_ body: () throws -> T) -> Result<T, QuernError> {
        Result { try body() }.mapError { e in
            var q = (e as? QuernError) ?? QuernError(.invalidRecord, "\(e)")
            q.line = q.line ?? line
            q.member = q.member ?? member
            return q
        }
    }
}
