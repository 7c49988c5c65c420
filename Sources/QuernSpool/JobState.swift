import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// The states a job moves through, and every move between them. A job is one file
/// (while incoming) or one directory under the spool; each transition is a single
/// `rename(2)` of something fsynced first, then an fsync of both parent directories, so
/// a crash at any instant leaves the job wholly in one state (Maildir and Postfix's
/// `mail_queue_rename` are the models). Nothing else in Quern renames job files.
public enum JobState: String, CaseIterable, Sendable {
    /// `incoming/NAME.json`: published by a writer's rename (or `quern submit`); not yet
    /// claimed. Dot-files and names not ending in `.json` are never jobs.
    case incoming
    /// `active/JOB/`: claimed by a process that holds the `flock` on `JOB/lease.lock`.
    /// When that process dies the kernel drops the lock, which is how others know the
    /// job is orphaned and may resume it from `checkpoint.json`.
    case active
    /// `done/JOB/`: finished. Results, errors, report and log appear here all at once.
    case done
    /// `failed/JOB/`: could not run. `error.json` says what to fix; `manifest.json` is
    /// the manifest exactly as received.
    case failed
    /// `cluster/JOB/`: handed to a cluster scheduler (a Slurm array, a Kubernetes Indexed
    /// Job) by `quern stage` or `quern slurm submit`. No local process owns it, so no
    /// daemon adopts it: each array task runs one shard (`quern run-shard`) in a small
    /// spool of its own under `JOB/shards/` and commits `JOB/parts/part-I-of-N/` with one
    /// rename; `quern merge` assembles the parts and moves the job to `done/` with one
    /// rename (or to `failed/` when a shard failed for good).
    case cluster
}

/// Exclusive ownership of a job directory: an open, `flock`ed `lease.lock`.
public final class JobLock: @unchecked Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { Sys.close(fd) }

    /// Creates and locks `dir/lease.lock` (a fresh directory nobody else can see yet).
    static func create(in dir: String) throws -> JobLock {
        let fd = try Sys.open(Path.join(dir, "lease.lock"), O_RDWR | O_CREAT)
        let lock = JobLock(fd: fd)
        guard try Sys.tryLock(fd) else { throw QuernError(.internalError, "fresh lock in \(dir) is already held") }
        return lock
    }

    /// Whether a live process holds `dir/lease.lock` (for `status`; never creates it).
    static func isHeld(_ dir: String) -> Bool {
        guard let fd = try? Sys.open(Path.join(dir, "lease.lock"), O_RDWR) else { return false }
        defer { Sys.close(fd) }
        return (try? Sys.tryLock(fd)) == false
    }

    /// Takes over `dir/lease.lock` if its holder is gone; nil if someone holds it. Checks
    /// after locking that the file is still the one at that path: a job that was just
    /// published elsewhere leaves this process holding a lock on a moved inode.
    /// Callers hold the spool's names lock, under which a job directory without its
    /// lock file can only be one whose publisher died between unlinking the lock and
    /// the rename; such a job is orphaned, and the lock is recreated.
    static func takeOver(_ dir: String) -> JobLock? {
        let path = Path.join(dir, "lease.lock")
        guard let fd = try? Sys.open(path, O_RDWR | O_CREAT) else { return nil }
        let lock = JobLock(fd: fd)
        guard (try? Sys.tryLock(fd)) == true else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, let now = Sys.fileStatus(path), now.st_ino == st.st_ino, now.st_dev == st.st_dev
        else {
            return nil
        }
        return lock
    }
}

/// A manifest taken out of `incoming/` into this process's private `tmp/claim.*`
/// directory, before its id is known to be free.
public struct Claim: Sendable {
    public let dir: String
    public let sourceName: String
    let lock: JobLock
    public var manifestPath: String { Path.join(dir, "manifest.json") }
}

/// A job in `active/`, owned by this process.
public struct ActiveJob: Sendable {
    public let id: String
    public let dir: String
    /// The lock this process holds on the job; a supervised job process shares its
    /// supervisor's (an inherited descriptor of the same open file), so the job stays
    /// owned while either lives.
    let lock: JobLock
    /// True when this process adopted the job from a dead owner.
    public let adopted: Bool
    public var manifestPath: String { Path.join(dir, "manifest.json") }
    public func file(_ name: String) -> String { Path.join(dir, name) }
}

/// A spool directory and the transitions between its states.
public final class Spool: @unchecked Sendable {
    public let root: String
    let time: any TimeSource
    /// Age after which a lease heartbeat from another host counts as dead.
    public var staleAfter: Double = 120
    /// In a job process: the daemon supervising it, which leases name as the job's owner.
    public var supervisor: Int32?

    public init(root: String, time: any TimeSource = SystemTime()) throws {
        let absolute = Path.absolute(root, relativeTo: Sys.getcwd())
        for dir in JobState.allCases.map(\.rawValue) + ["tmp"] {
            try Sys.mkdirs(Path.join(absolute, dir))
        }
        self.root = (try? Sys.realpath(absolute)) ?? absolute
        self.time = time
    }

    public func directory(_ state: JobState) -> String { Path.join(root, state.rawValue) }

    /// The active job `id`, owned through `lockFD`: a lock on its `lease.lock` that a
    /// supervisor holds and handed down to this process.
    public func supervisedJob(_ id: String, lockFD: Int32) -> ActiveJob {
        ActiveJob(id: id, dir: path(.active, id), lock: JobLock(fd: lockFD), adopted: false)
    }
    public var tmp: String { Path.join(root, "tmp") }
    public func path(_ state: JobState, _ id: String) -> String { Path.join(directory(state), id) }

    /// Manifests waiting in `incoming/`, oldest name first.
    public func pending() throws -> [String] {
        try Sys.listDirectory(directory(.incoming)).filter { !$0.hasPrefix(".") && $0.hasSuffix(".json") }
    }

    public func jobs(_ state: JobState) throws -> [String] {
        try Sys.listDirectory(directory(state)).filter { !$0.hasPrefix(".") }
    }

    /// Serialises the moves that create names in `active/`, `done/` and `failed/`, so
    /// "is this id free?" and "take it" are one step even across daemons. Held for
    /// microseconds.
    func withNamesLock<T>(_ body: () throws -> T) throws -> T {
        let fd = try Sys.open(Path.join(root, ".names.lock"), O_RDWR | O_CREAT)
        defer { Sys.close(fd) }
        try Sys.lock(fd, path: root)
        return try body()
    }

    /// Refuses (`duplicate_id`) an id already active, done or staged for a cluster. Moves
    /// that create one of those names call it under the names lock; `quern submit` and
    /// `quern stage` call it early too, for an error before anything is written.
    public func checkIDFree(_ id: String) throws {
        for state in [JobState.active, .done, .cluster] where Sys.exists(path(state, id)) {
            throw QuernError(
                .duplicateID,
                "a job with id \"\(id)\" is already in \(state.rawValue)/; give this manifest another \"id\"",
                field: "id")
        }
    }

    /// Whether any state holds a job `id` (in `incoming/` as `id.json`): for names that
    /// must not meet an existing job, such as a retry's.
    public func holdsJob(_ id: String) -> Bool {
        JobState.allCases.contains { Sys.exists(path($0, id)) || Sys.exists(path($0, id + ".json")) }
    }

    // MARK: incoming → tmp (claim)

    /// Atomically takes `incoming/name` for this process. Returns nil when another
    /// process took it first (its rename won; ours finds no file).
    /// No fsync: after a crash the manifest is either still in `incoming/` or in a claim
    /// directory that `adoptClaims` finishes; both are safe.
    public func claim(_ name: String) throws -> Claim? {
        // A random suffix keeps claim directories apart across hosts, processes, threads
        // and Spool instances without shared state. The directory is made under a dot
        // name and renamed once its lock is held, so no one ever sees a claim unlocked.
        let suffix = "\(Sys.hostname).\(Sys.pid).\(Self.uniqueSuffix())"
        let staging = Path.join(tmp, ".claiming.\(suffix)"), dir = Path.join(tmp, "claim.\(suffix)")
        try Sys.mkdir(staging)
        let lock = try JobLock.create(in: staging)
        try writeLease(in: staging, started: time.now(), source: name)
        try Sys.rename(staging, dir)
        do {
            try Sys.rename(Path.join(directory(.incoming), name), Path.join(dir, "manifest.json"))
        } catch let e as SystemError where e.errno == ENOENT {
            try? Sys.removeTree(dir)
            return nil
        }
        return Claim(dir: dir, sourceName: name, lock: lock)
    }

    /// Manifests in `incoming/` whose names are not UTF-8 can never be claimed by name:
    /// each is moved aside to `failed/` under a sanitized id, with `bad_name`. Returns
    /// the ids.
    public func quarantineBadNames() throws -> [String] {
        var ids: [String] = []
        for raw in try Sys.listDirectoryBytes(directory(.incoming)) {
            guard raw.first != 0x2E, raw.count > 5, Array(raw.suffix(5)) == Array(".json".utf8),
                String(validating: raw, as: UTF8.self) == nil
            else { continue }
            let lossy = String(decoding: raw, as: UTF8.self)
            let id = Self.sanitizedID(Path.stem(lossy))
            // A dot name: no other daemon adopts it as a claim while it is moved aside.
            let dir = Path.join(tmp, ".claiming.\(Sys.hostname).\(Sys.pid).\(Self.uniqueSuffix())")
            try Sys.mkdir(dir)
            do {
                try Sys.rename(raw, in: directory(.incoming), to: Path.join(dir, "manifest.json"))
            } catch let e as SystemError where e.errno == ENOENT {
                try? Sys.removeTree(dir)  // another process moved it first
                continue
            }
            let printable = raw.map {
                $0 < 0x80 && $0 >= 0x20 ? String(UnicodeScalar($0)) : String(format: "\\x%02X", $0)
            }
            let e = QuernError(
                .badName,
                "the file name incoming/\(printable.joined()) is not UTF-8; name manifests in UTF-8 (the job was set aside as \(id))"
            )
            ids.append(Path.basename(try fail(dir: dir, id: id, error: e, keep: ["manifest.json"])))
        }
        return ids
    }

    /// A job id made of a name that is not one: characters outside the id alphabet become
    /// `_`, leading dots go, at most 128 remain.
    public static func sanitizedID(_ name: String) -> String {
        let cleaned = String(
            name.map { c -> Character in
                (c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-")) ? c : "_"
            }.drop(while: { $0 == "." }).prefix(128))
        return cleaned.isEmpty ? "job" : cleaned
    }

    // MARK: tmp → active

    /// Moves a claim to `active/id`. Refuses (`duplicate_id`) an id already active or done.
    /// No fsync: a lost rename leaves the claim in `tmp/`, where `adoptClaims` finds it.
    public func activate(_ claim: Claim, id: String) throws -> ActiveJob {
        let target = path(.active, id)
        try withNamesLock {
            try checkIDFree(id)
            try Sys.rename(claim.dir, target)
        }
        return ActiveJob(id: id, dir: target, lock: claim.lock, adopted: false)
    }

    // MARK: tmp/active → failed

    /// Moves a claim or an active job to `failed/` with `error.json` (and the `keep`
    /// files already in its directory). A name taken in `failed/` gets a `.2`, `.3`… suffix.
    @discardableResult
    public func fail(dir: String, id: String, error: QuernError, keep: Set<String>) throws -> String {
        try Sys.writeFileAtomically(Path.join(dir, "error.json"), JSONWriter.pretty(errorJSON(error, id: id)))
        // The lease stays until the move: it names the file a claim came from, which is
        // what a process adopting this directory (after we die here) takes the id from.
        try removeAllBut(keep.union(["error.json", "lease.json"]), in: dir)
        try Sys.fsyncDirectory(dir)
        let target: String = try withNamesLock {
            var candidate = path(.failed, id)
            var n = 2
            while Sys.exists(candidate) {
                candidate = path(.failed, "\(id).\(n)")
                n += 1
            }
            try? Sys.unlink(Path.join(dir, "lease.lock"))
            try Sys.rename(dir, candidate)
            return candidate
        }
        if !keep.contains("lease.json") { try? Sys.unlink(Path.join(target, "lease.json")) }
        try Sys.fsyncDirectory(directory(.failed))
        try Sys.fsyncDirectory(Path.dirname(dir))
        return target
    }

    /// Removes a job directory's files except `keep` and `lease.lock`. The lock file is
    /// unlinked only under the names lock, in the same step as the directory's rename,
    /// which is what lets `JobLock.takeOver` read a missing lock as a crash.
    func removeAllBut(_ keep: Set<String>, in dir: String) throws {
        for name in try Sys.listDirectory(dir) where !keep.contains(name) && name != "lease.lock" {
            try Sys.removeTree(Path.join(dir, name))
        }
    }

    public func errorJSON(_ error: QuernError, id: String) -> JSONValue {
        var o = JSONObject()
        o["code"] = .string(error.code.rawValue)
        o["message"] = .string(error.message)
        if let f = error.field { o["field"] = .string(f) }
        if let l = error.line { o["line"] = .int(Int64(l)) }
        if let m = error.member { o["member"] = .string(m) }
        o["id"] = .string(id)
        o["failed_at"] = .string(Timestamp.iso8601(time.now()))
        return .object(o)
    }

    // MARK: active → done

    /// Publishes a finished job: the files in `keep` are fsynced, everything else (lease,
    /// checkpoint) goes, then one rename makes the whole result visible in `done/` and an
    /// fsync of `done/` makes the publication durable. A crash before that fsync at worst
    /// puts the job back in `active/`, where it is run again to the same bytes.
    @discardableResult
    public func complete(_ job: ActiveJob, keep: Set<String>) throws -> String {
        try publishDone(
            dir: job.dir, id: job.id, keep: keep,
            taken: "done/\(job.id) appeared while the job ran; results kept in active/\(job.id)"
        ) {
            try Sys.unlink(job.file("lease.lock"))
        }
    }

    /// The move to `done/` that `complete` and `completeCluster` share: keep files
    /// fsynced, the rest removed, one rename under the names lock (after `beforeRename`,
    /// inside the lock), `done/` fsynced.
    private func publishDone(
        dir: String, id: String, keep: Set<String>, taken: String,
        beforeRename: () throws -> Void = {}
    ) throws -> String {
        try removeAllBut(keep, in: dir)
        try Sys.fsyncFiles(try Sys.listDirectory(dir).filter(keep.contains).map { Path.join(dir, $0) })
        let target = path(.done, id)
        try withNamesLock {
            if Sys.exists(target) { throw QuernError(.duplicateID, taken) }
            try beforeRename()
            try Sys.rename(dir, target)
        }
        try Sys.fsyncDirectory(directory(.done))
        return target
    }

    // MARK: manifest → cluster → done

    /// Publishes a manifest as the cluster job `cluster/id/manifest.json`, with `files`
    /// (relative paths: a scheduler's scripts) beside it: written and fsynced in `tmp/`,
    /// then renamed into place under the names lock. Refuses an id already active, done
    /// or staged.
    @discardableResult
    public func stage(_ bytes: [UInt8], id: String, files: [String: [UInt8]] = [:]) throws -> String {
        let staging = Path.join(tmp, "submit.stage.\(Sys.pid).\(Self.uniqueSuffix())")
        try Sys.mkdir(staging)
        do {
            for (name, content) in files {
                try Sys.mkdirs(Path.dirname(Path.join(staging, name)))
                try Sys.writeFileAtomically(Path.join(staging, name), content)
            }
            try Sys.writeFileAtomically(Path.join(staging, "manifest.json"), bytes)
            try Sys.fsyncDirectory(staging)
            let target = path(.cluster, id)
            try withNamesLock {
                try checkIDFree(id)
                try Sys.rename(staging, target)
            }
            try Sys.fsyncDirectory(directory(.cluster))
            return target
        } catch {
            try? Sys.removeTree(staging)
            throw error
        }
    }

    /// Publishes a merged cluster job: like `complete`, from `cluster/id`.
    @discardableResult
    public func completeCluster(id: String, keep: Set<String>) throws -> String {
        let target = try publishDone(
            dir: path(.cluster, id), id: id, keep: keep,
            taken: "done/\(id) already exists; the merged results stay in cluster/\(id)")
        try Sys.fsyncDirectory(directory(.cluster))
        return target
    }

    // MARK: recovery

    /// Active jobs whose owner is gone (its lock is free), now owned by this process.
    /// A lease from another host with a fresh heartbeat is left alone: flock does not
    /// cross every network file system, heartbeats do.
    public func adoptOrphans() throws -> [ActiveJob] {
        try withNamesLock { try adoptOrphansLocked() }
    }

    private func adoptOrphansLocked() throws -> [ActiveJob] {
        var adopted: [ActiveJob] = []
        for id in try jobs(.active) {
            let dir = path(.active, id)
            if let lease = try? JSONParser.parse(Sys.readFile(Path.join(dir, "lease.json"))).objectValue,
                let host = lease["host"]?.stringValue, host != Sys.hostname,
                let beat = lease["heartbeat"]?.doubleValue, time.now() - beat < staleAfter
            {
                continue
            }
            guard let lock = JobLock.takeOver(dir) else { continue }
            try writeLease(in: dir, started: time.now())
            adopted.append(ActiveJob(id: id, dir: dir, lock: lock, adopted: true))
        }
        return adopted
    }

    /// Claims left in `tmp/` by a dead process (it died between claim and activation).
    public func adoptClaims() throws -> [Claim] {
        try withNamesLock { try adoptClaimsLocked() }
    }

    private func adoptClaimsLocked() throws -> [Claim] {
        var claims: [Claim] = []
        for name in try Sys.listDirectory(tmp) where name.hasPrefix("claim.") {
            let dir = Path.join(tmp, name)
            guard let lock = JobLock.takeOver(dir) else { continue }
            if Sys.exists(Path.join(dir, "manifest.json")) {
                // The lease names the file the claim came from: its stem may be the job id.
                let lease = try? JSONParser.parse(Sys.readFile(Path.join(dir, "lease.json"))).objectValue
                let source = lease?["source"]?.stringValue ?? "job.json"
                claims.append(Claim(dir: dir, sourceName: source, lock: lock))
            } else {
                try? Sys.removeTree(dir)
            }
        }
        // Submissions and claims that died before publishing: never visible as jobs.
        for name in try Sys.listDirectory(tmp) where name.hasPrefix("submit.") || name.hasPrefix(".claiming.") {
            let p = Path.join(tmp, name)
            if let st = Sys.linkStatus(p), time.now() - Double(st.st_mtim.tv_sec) > 3600 { try? Sys.removeTree(p) }
        }
        return claims
    }

    static func uniqueSuffix() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    // MARK: lease

    /// Names this process in the job's lease as the worker of its supervisor.
    public func noteOwner(_ job: ActiveJob) throws {
        try writeLease(in: job.dir, started: time.now())
    }

    func writeLease(in dir: String, started: Double, progress: JSONValue? = nil, source: String? = nil) throws {
        var o = JSONObject()
        if let source { o["source"] = .string(source) }
        // The owner is the supervising daemon when there is one; this process its worker.
        o["pid"] = .int(Int64(supervisor ?? Sys.pid))
        if supervisor != nil { o["worker_pid"] = .int(Int64(Sys.pid)) }
        o["host"] = .string(Sys.hostname)
        o["started"] = .double(started)
        o["heartbeat"] = .double(time.now())
        if let progress { o["progress"] = progress }
        try Sys.writeFileAtomically(Path.join(dir, "lease.json"), JSONWriter.compact(.object(o)), durability: .none)
    }

    // MARK: submit → incoming

    /// Publishes manifest bytes as `incoming/NAME.json`: written and fsynced in `tmp/`,
    /// then linked into place without ever replacing an existing file.
    public func submit(_ bytes: [UInt8], name: String) throws -> String {
        let staged = Path.join(tmp, "submit.\(Sys.pid).\(Self.uniqueSuffix())")
        let fd = try Sys.open(staged, O_WRONLY | O_CREAT | O_EXCL)
        do {
            try Sys.writeAll(fd, bytes, path: staged)
            try Sys.fsync(fd, path: staged)
            Sys.close(fd)
        } catch {
            Sys.close(fd)
            try? Sys.unlink(staged)
            throw error
        }
        let target = Path.join(directory(.incoming), name)
        do {
            try Sys.linkNoReplace(staged, target)
        } catch let e as SystemError where e.errno == EEXIST {
            try? Sys.unlink(staged)
            throw QuernError(
                .duplicateID, "incoming/\(name) already exists: a job with this name is waiting", field: "id")
        }
        try Sys.fsyncDirectory(directory(.incoming))
        return target
    }
}
