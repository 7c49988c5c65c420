#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An inotify watch on one directory, for the events that mean "a file arrived":
/// a rename into it (`IN_MOVED_TO`) or a writer closing a file it created there.
/// inotify can drop events (queue overflow), so callers also rescan periodically.
public final class DirectoryWatch {
    public let fd: Int32

    /// Arrivals by default; `departures` watches names leaving the directory instead
    /// (renamed away or deleted), which is how the benchmark sees a claim happen.
    public init(_ path: String, departures: Bool = false) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 { throw SystemError(call: "inotify_init1", errno: errno, path: path) }
        let mask = departures ? UInt32(IN_MOVED_FROM | IN_DELETE) : UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)
        if inotify_add_watch(fd, path, mask) < 0 {
            let e = errno
            Sys.close(fd)
            throw SystemError(call: "inotify_add_watch", errno: e, path: path)
        }
    }

    /// Reads and discards pending events; returns whether there were any.
    @discardableResult
    public func drain() -> Bool {
        var any = false
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while buf.withUnsafeMutableBytes({ Glibc.read(fd, $0.baseAddress, $0.count) }) > 0 { any = true }
        return any
    }

    deinit { Sys.close(fd) }
}
