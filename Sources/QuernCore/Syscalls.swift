#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call: which call, on which path, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32
    public let path: String?

    public var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(call)(\(path)): \(reason)" }
        return "\(call): \(reason)"
    }

    /// Errors of the disk or the network that may pass (EIO, ETIMEDOUT, ESTALE from an NFS
    /// server, a reset connection…), as opposed to refusals that will not (EACCES, ENOENT).
    public static let transientErrnos: Set<Int32> = [
        EIO, EAGAIN, ETIMEDOUT, ESTALE, ENETDOWN, ENETRESET, ENETUNREACH, ECONNRESET, ECONNABORTED, EHOSTUNREACH,
        ENOLINK
    ]
    public var isTransient: Bool { Self.transientErrnos.contains(errno) }

    public var asQuernError: QuernError {
        QuernError(errno == ENOENT ? .fileNotFound : .io, description)
    }
}

/// The one door to POSIX. Every call retries `EINTR` (signals are part of normal life
/// here: SIGTERM asks the daemon to checkpoint) and throws an error naming the call and
/// the path, so a failure in a job log says exactly what the kernel refused.
public enum Sys {
    @discardableResult
    static func retrying<T: BinaryInteger>(_ call: String, _ path: String?, _ body: () -> T) throws -> T {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            throw SystemError(call: call, errno: e, path: path)
        }
    }

    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// `close` is not retried on `EINTR`: on Linux the descriptor is released even when
    /// close is interrupted, and retrying could close a descriptor another thread just got.
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try retrying("read", nil) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String? = nil) throws {
        var done = 0
        while done < bytes.count {
            let n = try retrying("write", path) { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
            done += n
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String? = nil) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) }
    }

    public static func fsync(_ fd: Int32, path: String? = nil) throws {
        try retrying("fsync", path) { Glibc.fsync(fd) }
    }

    public static func ftruncate(_ fd: Int32, _ length: Int, path: String? = nil) throws {
        try retrying("ftruncate", path) { Glibc.ftruncate(fd, off_t(length)) }
    }

    public static func lseek(_ fd: Int32, _ offset: Int, _ whence: Int32) throws -> Int {
        Int(try retrying("lseek", nil) { Glibc.lseek(fd, off_t(offset), whence) })
    }

    /// Opens a directory and fsyncs it, which makes the renames and creations inside it durable.
    public static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    public static func rename(_ from: String, _ to: String) throws {
        try retrying("rename", "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    /// Publishes `from` as `to` without ever replacing an existing `to` (Maildir's
    /// link-then-unlink): fails with `EEXIST` if `to` is already there.
    public static func linkNoReplace(_ from: String, _ to: String) throws {
        try retrying("link", "\(from) -> \(to)") { Glibc.link(from, to) }
        try unlink(from)
    }

    public static func mkdir(_ path: String, _ mode: mode_t = 0o755) throws {
        try retrying("mkdir", path) { Glibc.mkdir(path, mode) }
    }

    /// `mkdir -p`; existing directories are fine.
    public static func mkdirs(_ path: String) throws {
        if isDirectory(path) { return }
        let parent = Path.dirname(path)
        if parent != path && !parent.isEmpty { try mkdirs(parent) }
        do { try mkdir(path) } catch let e as SystemError where e.errno == EEXIST {}
    }

    public static func unlink(_ path: String) throws {
        try retrying("unlink", path) { Glibc.unlink(path) }
    }

    public static func rmdir(_ path: String) throws {
        try retrying("rmdir", path) { Glibc.rmdir(path) }
    }

    /// Removes a tree; symbolic links inside it are removed, never followed. Meant for
    /// directories Quern created itself (job and staging directories, scratch spools).
    public static func removeTree(_ path: String) throws {
        guard let st = linkStatus(path) else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in try listDirectory(path) { try removeTree(path + "/" + name) }
            try rmdir(path)
        } else {
            try unlink(path)
        }
    }

    /// Blocking exclusive `flock`, for locks held only for microseconds.
    public static func lock(_ fd: Int32, path: String? = nil) throws {
        try retrying("flock", path) { flock(fd, LOCK_EX) }
    }

    /// Non-blocking `flock`. Returns false when another open file description holds it.
    public static func tryLock(_ fd: Int32, exclusive: Bool = true, path: String? = nil) throws -> Bool {
        while true {
            if flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 { return true }
            let e = errno
            if e == EINTR { continue }
            if e == EWOULDBLOCK { return false }
            throw SystemError(call: "flock", errno: e, path: path)
        }
    }

    public static func fileStatus(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? st : nil
    }

    public static func linkStatus(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    public static func fileSize(_ fd: Int32) throws -> Int {
        var st = Glibc.stat()
        try retrying("fstat", nil) { fstat(fd, &st) }
        return Int(st.st_size)
    }

    /// Size of the file at `path`, 0 if it cannot be read.
    public static func fileSize(path: String) -> Int {
        guard let st = fileStatus(path) else { return 0 }
        return Int(st.st_size)
    }

    public static func exists(_ path: String) -> Bool { linkStatus(path) != nil }

    public static func isDirectory(_ path: String) -> Bool {
        guard let st = fileStatus(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func isRegularFile(_ path: String) -> Bool {
        guard let st = fileStatus(path) else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Directory entries except `.` and `..`, sorted so every scan sees jobs in the same order.
    public static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw SystemError(call: "opendir", errno: errno, path: path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Directory entries as the bytes the file system holds (names need not be UTF-8).
    public static func listDirectoryBytes(_ path: String) throws -> [[UInt8]] {
        guard let dir = opendir(path) else {
            throw SystemError(call: "opendir", errno: errno, path: path)
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
            if name != [0x2E] && name != [0x2E, 0x2E] { names.append(name) }
        }
        return names
    }

    /// Renames the entry of `directory` whose name is the bytes `name` (not UTF-8, say).
    public static func rename(_ name: [UInt8], in directory: String, to target: String) throws {
        let from = Array(directory.utf8) + [0x2F] + name + [0]
        try retrying("rename", directory) {
            from.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { Glibc.rename($0.baseAddress!, target) }
            }
        }
    }

    /// Bytes free for an unprivileged writer on the file system holding `path`.
    public static func freeBytes(_ path: String) -> Int? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    public static func realpath(_ path: String) throws -> String {
        guard let p = Glibc.realpath(path, nil) else {
            throw SystemError(call: "realpath", errno: errno, path: path)
        }
        defer { free(p) }
        return String(cString: p)
    }

    public static func getcwd() -> String {
        guard let p = Glibc.getcwd(nil, 0) else { return "." }
        defer { free(p) }
        return String(cString: p)
    }

    public static var pid: Int32 { getpid() }

    public static var hostname: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether a process with this pid exists on this host (EPERM still means it exists).
    public static func processExists(_ pid: Int32) -> Bool {
        Glibc.kill(pid, 0) == 0 || errno == EPERM
    }

    /// Shell-style glob match (`*.jsonl` also matches `dir/a.jsonl`: `*` crosses `/`).
    public static func globMatch(_ pattern: String, _ name: String) -> Bool {
        Glibc.fnmatch(pattern, name, 0) == 0
    }

    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// This process's environment as "NAME=value" entries (what a spawned child gets
    /// unless given another).
    public static var environmentEntries: [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(String(cString: entry))
            p += 1
        }
        return out
    }

    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}
