import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// A job's log: JSON lines in the job's `job.log`, echoed to the process log.
public final class JobLog: @unchecked Sendable {
    let fd: Int32
    public let id: String

    public init(path: String, id: String) throws {
        fd = try Sys.open(path, O_WRONLY | O_CREAT | O_APPEND)
        self.id = id
    }

    deinit { Sys.close(fd) }

    public func log(_ level: Log.Level, _ message: String, _ fields: [(String, JSONValue)] = []) {
        let all = [("job", JSONValue.string(id))] + fields
        try? Sys.writeAll(fd, Log.line(level, message, all))
        Log.shared.log(level, message, all)
    }

    public func sync() { try? Sys.fsync(fd) }
}
