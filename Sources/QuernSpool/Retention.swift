import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// `quern gc`: old finished jobs removed from `done/` and `failed/`, or moved to an
/// archive directory. Active, incoming and cluster jobs are never touched.
public struct Retention: Sendable {
    /// Keep jobs that finished less than this many days ago (nil: age keeps none by itself).
    public var keepDays: Double?
    /// Keep the newest this many jobs of each state (nil: count keeps none by itself).
    public var keepLast: Int?
    /// Move removed jobs here (`ARCHIVE/done/JOB`, `ARCHIVE/failed/JOB`) instead of deleting.
    public var archive: String?

    public init(keepDays: Double? = nil, keepLast: Int? = nil, archive: String? = nil) {
        self.keepDays = keepDays
        self.keepLast = keepLast
        self.archive = archive
    }

    static let selectSuffix = ".select.jsonl"

    /// What one pass did, by state.
    public struct Outcome: Sendable {
        public var removed: [String] = []
        public var archived: [String] = []
        public var kept = 0

        public var json: JSONValue {
            [
                "removed": .array(removed.map { .string($0) }), "archived": .array(archived.map { .string($0) }),
                "kept": .int(Int64(kept))
            ]
        }
    }

    /// The jobs of `state` this policy lets go: a job goes when it is older than
    /// `keepDays` and not among the newest `keepLast` (either rule alone decides when the
    /// other is not set; with neither, nothing goes).
    func expired(_ jobs: [(id: String, finished: Double)], now: Double) -> [String] {
        guard keepDays != nil || keepLast != nil else { return [] }
        let newestFirst = jobs.sorted { $0.finished != $1.finished ? $0.finished > $1.finished : $0.id < $1.id }
        return newestFirst.enumerated().compactMap { rank, job in
            if let n = keepLast, rank < n { return nil }
            if let days = keepDays, now - job.finished < days * 86400 { return nil }
            return job.id
        }
    }

    /// One pass over `spool`. A job is first renamed out of its state directory (into the
    /// archive, or into `tmp/` and then deleted), so no half-removed job is ever visible.
    public func apply(to spool: Spool, now: Double) throws -> Outcome {
        var out = Outcome()
        // What an interrupted pass renamed away but did not finish deleting.
        for name in try Sys.listDirectory(spool.tmp) where name.hasPrefix(".gc.") {
            try Sys.removeTree(Path.join(spool.tmp, name))
        }
        for state in [JobState.done, .failed] {
            let jobs = try spool.jobs(state).compactMap { id -> (id: String, finished: Double)? in
                guard let st = Sys.linkStatus(spool.path(state, id)) else { return nil }
                return (id, Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9)
            }
            let expired = expired(jobs, now: now)
            out.kept += jobs.count - expired.count
            for id in expired {
                let source = spool.path(state, id), name = "\(state.rawValue)/\(id)"
                if let archive {
                    let dir = Path.join(archive, state.rawValue)
                    try Sys.mkdirs(dir)
                    var target = Path.join(dir, id)
                    if Sys.exists(target) { target += ".\(Spool.uniqueSuffix())" }
                    do {
                        try Sys.rename(source, target)
                    } catch let e as SystemError where e.errno == EXDEV {
                        throw QuernError(
                            .invalidValue,
                            "the archive \(archive) is on another file system than the spool; gc moves jobs by rename, so give an archive directory on the spool's file system",
                            field: "archive")
                    }
                    out.archived.append(name)
                } else {
                    let doomed = Path.join(spool.tmp, ".gc.\(id).\(Spool.uniqueSuffix())")
                    try Sys.rename(source, doomed)
                    try Sys.removeTree(doomed)
                    out.removed.append(name)
                }
            }
        }
        // A retry's record list goes once no job of that id is left anywhere.
        let retries = Path.join(spool.root, Commands.retriesDirectory)
        if Sys.isDirectory(retries) {
            for name in try Sys.listDirectory(retries) where name.hasSuffix(Self.selectSuffix) {
                let id = String(name.dropLast(Self.selectSuffix.count))
                if !spool.holdsJob(id) { try Sys.unlink(Path.join(retries, name)) }
            }
        }
        return out
    }
}
