/// Every error a person may read (in `failed/JOB/error.json`, `errors.jsonl.gz` or on the
/// terminal) is a `QuernError`: a closed `code` a program can branch on, a `message` that
/// says what went wrong *and what to change*, and where it happened when that is known.
public struct QuernError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Code
    public var message: String
    /// Dotted manifest path (`input.path`) or record field the error is about.
    public var field: String?
    /// 1-based line in the manifest or archive member.
    public var line: Int?
    /// Archive member the error is about, for record-level errors.
    public var member: String?
    /// A read the system failed that may well succeed if tried again (a disk or network
    /// error: `SystemError.isTransient`); a job retries those before it fails.
    public var transient = false

    public init(_ code: Code, _ message: String, field: String? = nil, line: Int? = nil, member: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.line = line
        self.member = member
    }

    public var description: String {
        var s = "\(code.rawValue): \(message)"
        if let field { s += " [field \(field)]" }
        if let member { s += " [member \(member)]" }
        if let line { s += " [line \(line)]" }
        return s
    }

    /// The closed set of error codes. Job-level codes send a manifest to `failed/`;
    /// record-level codes go to the job's `errors.jsonl.gz` and the job goes on.
    public enum Code: String, Sendable, CaseIterable {
        // Manifest (job-level).
        case invalidJSON = "invalid_json"
        case unknownKey = "unknown_key"
        case invalidType = "invalid_type"
        case missingField = "missing_field"
        case invalidValue = "invalid_value"
        case unsupportedVersion = "unsupported_version"
        case unsupportedTask = "unsupported_task"
        case unsupportedFormat = "unsupported_format"
        case invalidID = "invalid_id"
        case duplicateID = "duplicate_id"
        case fileNotFound = "file_not_found"
        case pathEscape = "path_escape"
        /// Something in `incoming/` (or a file a job names) that is a FIFO, a socket, a
        /// device, a directory or a symbolic link: never opened as a file.
        case notARegularFile = "not_a_regular_file"
        /// A file name in `incoming/` that is not UTF-8.
        case badName = "bad_name"
        // Model (job-level).
        case modelInvalid = "model_invalid"
        case modelMismatch = "model_mismatch"
        // Input stream (job-level: the stream itself cannot go on).
        case archiveCorrupt = "archive_corrupt"
        case decompressionLimit = "decompression_limit"
        case emptyInput = "empty_input"
        case tooManyErrors = "too_many_errors"
        // The job's process (job-level, from its supervisor).
        /// It died (a signal, or an exit without finishing) on every allowed attempt.
        case crashed = "crashed"
        /// It needed more memory than `limits.max_memory_mb`.
        case memoryLimit = "memory_limit"
        /// It ran longer than `limits.max_seconds`.
        case timeLimit = "time_limit"
        // Records (record-level).
        case unsafeMember = "unsafe_member"
        case lineTooLong = "line_too_long"
        case invalidRecord = "invalid_record"
        case invalidUTF8 = "invalid_utf8"
        case missingValue = "missing_value"
        case featureCount = "feature_count"
        case nonFinite = "non_finite"
        case unknownLabel = "unknown_label"
        // Environment.
        case io = "io_error"
        case usage = "usage"
        case locked = "locked"
        /// A cluster scheduler's command (sbatch, squeue) is missing or refused.
        case scheduler = "scheduler_error"
        case internalError = "internal_error"

        /// Whether running the same job again may succeed: the environment failed (I/O, a
        /// lock, a scheduler, a bug that may not recur), not the job's input or model.
        public var retryable: Bool { [.io, .locked, .scheduler, .internalError].contains(self) }
    }
}
