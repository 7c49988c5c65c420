import QuernCore
import QuernTasks

#if canImport(Glibc)
    import Glibc
#endif

/// What an operator steers a spool with, besides its jobs: the order incoming manifests
/// are claimed in (`priority`), a pause (`quern pause` / `resume`: claim nothing new), and
/// the daemons' registry that `quern drain` signals.
extension Spool {
    /// `SPOOL/paused`: while it exists no process claims a new manifest. Jobs already
    /// running (or orphaned, which are resumed) go on.
    public var pauseMarker: String { Path.join(root, "paused") }
    /// `SPOOL/daemons/HOST.PID`: one file per running `quern watch`, locked for its life.
    public var daemonsDirectory: String { Path.join(root, "daemons") }

    public var isPaused: Bool { Sys.exists(pauseMarker) }

    /// Pauses the spool, recording who asked and why.
    public func pause(reason: String?, time: any TimeSource = SystemTime()) throws {
        var o = JSONObject()
        o["paused_at"] = .string(Timestamp.iso8601(time.now()))
        o["host"] = .string(Sys.hostname)
        if let reason { o["reason"] = .string(reason) }
        try Sys.writeFileAtomically(pauseMarker, JSONWriter.pretty(.object(o)))
    }

    /// Lifts a pause; false when the spool was not paused.
    @discardableResult
    public func resume() throws -> Bool {
        guard isPaused else { return false }
        try Sys.unlink(pauseMarker)
        return true
    }

    /// The priority a pending manifest asks for: its `priority` field, read without
    /// claiming it. Anything unreadable (not a regular file, too large, not JSON, no
    /// integer there) counts as 0: claiming it will say what is wrong.
    func priority(of name: String) -> Int {
        let path = Path.join(directory(.incoming), name)
        guard let st = Sys.linkStatus(path), (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= Self.priorityPeekBytes,
            let bytes = try? Sys.readFile(path, limit: Self.priorityPeekBytes),
            let value = (try? JSONParser.parse(bytes))?.objectValue?["priority"]?.intValue,
            let p = Int(exactly: value), Manifest.priorityRange.contains(p)
        else { return 0 }
        return p
    }

    /// Manifests larger than this are not read for their priority (a manifest is a few
    /// hundred bytes; its decoder bounds it anyway).
    static let priorityPeekBytes = 1 << 20

    /// Pending manifests in the order they are claimed: higher `priority` first, then
    /// in arrival order (oldest modification time, then name). `cache` keeps priorities
    /// across scans, keyed by name, inode and modification time.
    func queue(cache: inout [String: (key: [Int], priority: Int, mtime: Double)]) throws -> [String] {
        var entries: [(name: String, priority: Int, mtime: Double)] = []
        var seen: Set<String> = []
        for name in try pending() {
            guard let st = Sys.linkStatus(Path.join(directory(.incoming), name)) else { continue }
            let key = [Int(st.st_ino), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec), Int(st.st_size)]
            let mtime = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
            let p: Int
            if let c = cache[name], c.key == key {
                p = c.priority
            } else {
                p = priority(of: name)
                cache[name] = (key, p, mtime)
            }
            seen.insert(name)
            entries.append((name, p, mtime))
        }
        cache = cache.filter { seen.contains($0.key) }
        entries.sort { a, b in
            a.priority != b.priority
                ? a.priority > b.priority : (a.mtime != b.mtime ? a.mtime < b.mtime : a.name < b.name)
        }
        return entries.map(\.name)
    }

    /// Registers this process as a daemon of the spool: its entry, locked until the
    /// returned lock is closed (`unregister` then removes it; a crashed daemon's entry is
    /// removed by the next `quern drain`).
    func registerDaemon() throws -> (lock: JobLock, path: String) {
        try Sys.mkdirs(daemonsDirectory)
        let path = Path.join(daemonsDirectory, "\(Sys.hostname).\(Sys.pid)")
        let fd = try Sys.open(path, O_RDWR | O_CREAT)
        let lock = JobLock(fd: fd)
        _ = try Sys.tryLock(fd)
        return (lock, path)
    }

    /// `quern drain`: SIGUSR1 to every live daemon of this spool on this host (each
    /// finishes its running job, claims nothing new and exits 0); stale entries are
    /// removed. Returns the pids signalled, and the daemons on other hosts, which must
    /// be drained there.
    public func signalDaemons() throws -> (signalled: [Int32], elsewhere: [String]) {
        var signalled: [Int32] = [], elsewhere: [String] = []
        guard Sys.isDirectory(daemonsDirectory) else { return ([], []) }
        for name in try Sys.listDirectory(daemonsDirectory) where !name.hasPrefix(".") {
            let path = Path.join(daemonsDirectory, name)
            guard let dot = name.lastIndex(of: "."), let pid = Int32(name[name.index(after: dot)...]) else { continue }
            let host = String(name[..<dot])
            guard let fd = try? Sys.open(path, O_RDWR) else { continue }
            defer { Sys.close(fd) }
            if (try? Sys.tryLock(fd)) == true {
                try? Sys.unlink(path)  // its daemon is gone
                continue
            }
            if host != Sys.hostname {
                elsewhere.append(name)
            } else if kill(pid, SIGUSR1) == 0 {
                signalled.append(pid)
            }
        }
        return (signalled, elsewhere)
    }

    /// Whether a daemon registered as `HOST.PID` still holds its entry.
    public func daemonRunning(pid: Int32) -> Bool {
        let path = Path.join(daemonsDirectory, "\(Sys.hostname).\(pid)")
        guard let fd = try? Sys.open(path, O_RDWR) else { return false }
        defer { Sys.close(fd) }
        return (try? Sys.tryLock(fd)) == false
    }
}
