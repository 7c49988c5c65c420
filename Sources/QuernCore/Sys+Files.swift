#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whole files, built on the calls in `Sys`: reading a small one, writing one so readers
/// never see it torn (with only the fsyncs the caller's recovery needs), appending one to
/// another, and fsyncing many at once.
extension Sys {
    /// Reads a whole (small) file: manifests, configs, leases.
    /// A whole file. A path that is not a regular file (a FIFO would block the open, a
    /// device or a directory never ends) is refused before anything is read, unless
    /// `regularOnly` is false (standard input); errors name the file as `name` (the path
    /// the user knows) when given.
    public static func readFile(_ path: String, limit: Int = 64 << 20, name: String? = nil, regularOnly: Bool = true)
        throws -> [UInt8]
    {
        let fd = try open(path, O_RDONLY | (regularOnly ? O_NONBLOCK : 0))
        defer { close(fd) }
        if regularOnly {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw SystemError(call: "fstat", errno: errno, path: path) }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw QuernError(.notARegularFile, "\(name ?? path) is \(kind(st)), not a regular file")
            }
            guard Int(st.st_size) <= limit else {
                throw QuernError(
                    .invalidValue, "\(name ?? path) is \(st.st_size) bytes, more than the \(limit) allowed")
            }
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(fd, $0) }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit {
                throw QuernError(.invalidValue, "\(name ?? path) is larger than \(limit) bytes")
            }
        }
        return out
    }

    /// What kind of file `st` describes, for messages ("a FIFO", "a directory").
    public static func kind(_ st: stat) -> String {
        switch st.st_mode & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        case S_IFCHR, S_IFBLK: "a device"
        default: "a special file"
        }
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

    /// The first `count` bytes of a file (fewer if it is shorter; none if it cannot be
    /// read): enough to tell a format by its magic number.
    public static func readPrefix(_ path: String, count: Int) -> [UInt8] {
        guard let fd = try? open(path, O_RDONLY | O_NONBLOCK) else { return [] }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: count)
        let n = (try? head.withUnsafeMutableBytes { try read(fd, $0) }) ?? 0
        return Array(head.prefix(n))
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
