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

    /// Removes a tree; used only on Quern's own directories under `tmp/` and `active/`.
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
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Shell-style glob match (`*.jsonl` also matches `dir/a.jsonl`: `*` crosses `/`).
    public static func globMatch(_ pattern: String, _ name: String) -> Bool {
        Glibc.fnmatch(pattern, name, 0) == 0
    }

    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    /// Reads a whole (small) file: manifests, configs, leases.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(fd, $0) }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit {
                throw QuernError(.invalidValue, "\(path) is larger than \(limit) bytes")
            }
        }
        return out
    }

    /// How much a write must survive. Each fsync costs a journal commit (about 2.5 ms
    /// on this class of disk), so each caller asks only for what its recovery needs.
    public enum Durability: Sendable {
        /// Readers see old or new; after a crash either may be there (leases, heartbeats).
        case none
        /// After a crash the file is old or wholly new, never empty or torn (checkpoints).
        case content
        /// The new file survives a crash once this returns (error.json, submissions).
        case full
    }

    /// Writes `bytes` to `path` so that readers see either the old file or the whole new
    /// one: write a sibling temporary, (fsync it), rename it over, (fsync the directory).
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], durability: Durability = .full) throws {
        let tmp = Path.dirname(path) + "/." + Path.basename(path) + ".tmp-\(pid)"
        let fd = try open(tmp, O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try writeAll(fd, bytes, path: tmp)
            if durability != .none { try fsync(fd, path: tmp) }
            close(fd)
        } catch {
            close(fd)
            try? unlink(tmp)
            throw error
        }
        try rename(tmp, path)
        if durability == .full { try fsyncDirectory(Path.dirname(path)) }
    }

    /// Writes a new file inside a directory that is not yet visible (a job about to be
    /// published); the publisher fsyncs it with the rest before the rename.
    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = try open(path, O_WRONLY | O_CREAT | O_TRUNC)
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
    }

    /// Appends the bytes of `source` from `offset` on to the open file `fd` (named `path`
    /// in errors), a megabyte at a time: joining gzip members and output parts.
    public static func appendFile(_ source: String, from offset: Int = 0, to fd: Int32, path: String) throws {
        let input = try open(source, O_RDONLY)
        defer { close(input) }
        if offset > 0 { _ = try lseek(input, offset, SEEK_SET) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try read(input, $0) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { try writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<n]), path: path) }
        }
    }

    /// fsyncs files by path. Done after all of them are written, the first fsync's
    /// journal commit carries the others' metadata too, so the rest cost little.
    public static func fsyncFiles(_ paths: [String]) throws {
        for p in paths {
            let fd = try open(p, O_RDONLY)
            defer { close(fd) }
            try fsync(fd, path: p)
        }
    }
}

/// A read-only memory map of a whole file (model weights): pages come from the page
/// cache on demand and are shared between processes scoring with the same model.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let fd = try Sys.open(path, O_RDONLY)
        defer { Sys.close(fd) }
        let size = try Sys.fileSize(fd)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SystemError(call: "mmap", errno: errno, path: path)
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

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

/// SIGTERM and SIGINT as a flag plus a wake-up descriptor: the handler only sets the
/// flag and writes a byte to a pipe (both async-signal-safe); the daemon polls the pipe
/// next to its inotify descriptor and checks the flag between batches.
public enum StopSignal {
    nonisolated(unsafe) private static var pipeFDs: [Int32] = [-1, -1]
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    nonisolated(unsafe) private static var writeEnd: Int32 = -1

    public static var requested: Bool { flag != 0 }
    public static var wakeFD: Int32 { pipeFDs[0] }

    public static func install() {
        guard pipeFDs[0] < 0 else { return }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        pipeFDs = fds
        writeEnd = fds[1]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            StopSignal.flag = 1
            var b: UInt8 = 1
            _ = Glibc.write(StopSignal.writeEnd, &b, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
        // A parent may have started us with these blocked (the mask is inherited);
        // a daemon that cannot be stopped cleanly is worse than one that can.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Waits until `fd` is readable, a stop is requested, or `timeout` seconds pass.
    /// Returns true if `fd` became readable.
    public static func wait(for fd: Int32, timeout: Double) -> Bool {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        if pipeFDs[0] >= 0 { fds.append(pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)) }
        let ms = Int32(max(0, min(timeout, 3600)) * 1000)
        let r = poll(&fds, nfds_t(fds.count), ms)
        return r > 0 && fds[0].revents & Int16(POLLIN) != 0
    }

    /// Sleeps up to `seconds`, returning early on a stop request.
    public static func sleep(_ seconds: Double) {
        var fds = [pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, pipeFDs[0] >= 0 ? 1 : 0, Int32(seconds * 1000))
    }
}

/// Path helpers on plain strings; paths here are POSIX byte strings.
public enum Path {
    public static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    public static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    public static func join(_ base: String, _ rest: String) -> String {
        if rest.hasPrefix("/") { return rest }
        if base.hasSuffix("/") { return base + rest }
        return base + "/" + rest
    }

    /// The file name without its last extension: `jobs/a.json` → `a`.
    public static func stem(_ path: String) -> String {
        let base = basename(path)
        guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return base }
        return String(base[..<dot])
    }

    public static func absolute(_ path: String, relativeTo base: String) -> String {
        normalize(join(base, path))
    }

    /// Removes `.` components and duplicate slashes (not `..`: callers refuse those).
    public static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }

    /// `path` equals `root` or lies below it.
    public static func isInside(_ path: String, _ root: String) -> Bool {
        if root == "/" { return true }
        return path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }
}
