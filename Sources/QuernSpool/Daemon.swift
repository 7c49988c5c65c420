import QuernCore
import QuernTasks

#if canImport(Glibc)
    import Glibc
#endif

/// Claims and runs jobs from one spool: the engine behind `quern watch` and
/// `quern run --once`. One job at a time per process; run several processes (or hosts)
/// on one spool to run several jobs at once — claiming keeps them apart.
public final class Daemon {
    public let spool: Spool
    public let runner: JobRunner
    let time: any TimeSource
    /// Seconds between full rescans in `watch` (inotify can drop events).
    public var rescanInterval: Double = 2
    /// Hands jobs to Slurm instead of running them here (`quern watch --executor slurm`).
    public var executor: SlurmExecutor?
    /// Runs each job in a child process (`quern watch` and `run --once`); without one,
    /// jobs run in this process.
    public var supervisor: JobSupervisor?
    /// Jobs whose process crashed, held (and locked) until their next attempt is due.
    var waiting: [(job: ActiveJob, at: Double)] = []
    /// Whether `drain` waits for those retries (`run --once`) or leaves them to the next
    /// scan (`watch`).
    var waitsForRetries = false
    /// Jobs that stopped themselves because the disk is full (left for a later run).
    public private(set) var paused = 0
    /// Whether a full disk kept jobs from starting or finishing: `run --once` exits 75.
    public var waitingForRoom: Bool { paused > 0 || diskFull }
    /// Free space the spool's file system must have before a job starts, in MiB.
    public var minFreeMB = 64
    /// The disk was found full: said once until it has room again.
    var diskFull = false
    /// After a job stopped on a full disk, no job starts before this time: room that
    /// comes back by a few megabytes is not room for the job that filled it.
    var quietUntil = 0.0
    /// Seconds to wait after a job stopped on a full disk.
    public var fullDiskPause: Double = 30

    public private(set) var succeeded = 0
    public private(set) var failed = 0
    /// Pending manifests' priorities, kept between scans (`Spool.queue`).
    var priorities: [String: (key: [Int], priority: Int, mtime: Double)] = [:]
    /// The spool's pause was said once (until it is lifted).
    var saidPaused = false
    /// `SPOOL/quern.json`: hooks, metrics, retention.
    public var config = SpoolConfig() {
        didSet { metrics = config.metrics.map(MetricsFile.init) }
    }
    var metrics: MetricsFile?
    /// When retention last ran (`watch` applies it hourly).
    var lastRetention = -Double.infinity
    public static let retentionInterval = 3600.0

    public init(spool: Spool, roots: [String], time: any TimeSource = SystemTime()) {
        self.spool = spool
        self.time = time
        runner = JobRunner(
            spool: spool,
            policy: PathPolicy(base: spool.root, roots: roots, zoo: ModelZoo.configured(spool: spool.root)), time: time)
    }

    /// Whether new manifests may be claimed: not after SIGUSR1 (drain), nor while the
    /// spool is paused (said once).
    func mayClaim() -> Bool {
        if StopSignal.drainRequested { return false }
        let paused = spool.isPaused
        if paused != saidPaused {
            Log.shared.info(
                paused ? "spool paused: no new job is claimed until `quern resume`" : "spool resumed",
                [("spool", .string(spool.root))])
            saidPaused = paused
        }
        return !paused
    }

    /// Processes everything runnable now: orphaned claims and jobs first, then incoming
    /// manifests, higher `priority` first and then in arrival order, the queue read again
    /// after each job (so a job submitted meanwhile with a higher priority goes next).
    /// Returns false if a stop was requested.
    @discardableResult
    public func drain() throws -> Bool {
        try executor?.submitPending(spool: spool)
        for id in try spool.quarantineBadNames() {
            Log.shared.error("a manifest's file name is not UTF-8; set aside", [("failed", .string(id))])
            failed += 1
        }
        for claim in try spool.adoptClaims() {
            guard !StopSignal.requested else { return false }
            Log.shared.info("finishing a claim left by a dead process", [("claim", .string(claim.dir))])
            handle(claim)
        }
        // No job starts on a full disk: it would only stop again at its first write.
        guard time.now() >= quietUntil, hasRoom(), paused == 0 || !waitsForRetries else { return true }
        for job in try spool.adoptOrphans() {
            guard !StopSignal.requested, !diskFull else { return false }
            Log.shared.info("resuming orphaned job", [("job", .string(job.id))])
            execute(job)
        }
        while true {
            guard !StopSignal.requested else { return false }
            // Retries that are due come before new claims, one each between them, so a
            // job that keeps crashing neither starves nor blocks the others.
            if let due = waiting.firstIndex(where: { $0.at <= time.now() }) {
                let job = waiting.remove(at: due).job
                Log.shared.info("trying a crashed job again", [("job", .string(job.id))])
                execute(job)
            }
            let names = mayClaim() ? try spool.queue(cache: &priorities) : []
            if names.isEmpty {
                if waiting.contains(where: { $0.at <= time.now() }) { continue }
                // Drained: a crashed job waiting for its retry stays in active/ for the next
                // daemon (and the signal's byte in the stop pipe would make this wait spin).
                guard waitsForRetries, !StopSignal.drainRequested, let next = waiting.map(\.at).min() else {
                    return true
                }
                StopSignal.sleep(max(0.05, next - time.now()))
                continue
            }
            var claimedAny = false
            for name in names {
                guard !StopSignal.requested else { return false }
                guard !diskFull, hasRoom() else { return true }
                let claim: Claim?
                do {
                    claim = try spool.claim(name)
                } catch {
                    Log.shared.error("cannot claim \(name): \(error)", [("spool", .string(spool.root))])
                    continue
                }
                guard let claim else { continue }  // another process won it
                claimedAny = true
                handle(claim)
                break
            }
            if !claimedAny {
                guard waitsForRetries, let next = waiting.map(\.at).min() else { return true }
                StopSignal.sleep(max(0.05, next - time.now()))
            }
        }
    }

    /// A job reached `done/` or `failed/`: counted in the metrics, then the spool's hook
    /// and the manifest's own (where quern.json allows them) run.
    func ended(_ id: String, _ state: JobState, dir: String) {
        metrics?.count(state, dir: dir)
        metrics?.write(spool)
        if let command = config.hooks.command(succeeded: state == .done) {
            HookRunner.run(
                command, id: id, state: state, dir: dir, spool: spool, timeout: config.hooks.timeoutSeconds,
                source: "quern.json")
        }
        guard config.allowManifestHooks,
            let manifest = try? Manifest.decode(Sys.readFile(Path.join(dir, "manifest.json"), limit: 1 << 20)),
            let hooks = manifest.hooks, let command = hooks.command(succeeded: state == .done)
        else { return }
        HookRunner.run(
            command, id: id, state: state, dir: dir, spool: spool, timeout: hooks.timeoutSeconds, source: "manifest")
    }

    /// Retention from quern.json, at most once per `interval` seconds (0: now).
    func applyRetention(every interval: Double) {
        guard let retention = config.retention, time.monotonic() - lastRetention >= interval else { return }
        lastRetention = time.monotonic()
        do {
            let outcome = try retention.apply(to: spool, now: time.now())
            if !outcome.removed.isEmpty || !outcome.archived.isEmpty {
                Log.shared.info(
                    "retention",
                    [("removed", .int(Int64(outcome.removed.count))), ("archived", .int(Int64(outcome.archived.count)))]
                )
            }
        } catch {
            Log.shared.error("retention failed: \(error)", [("spool", .string(spool.root))])
        }
    }

    /// Runs a job, supervised in a child process when there is a supervisor.
    func execute(_ job: ActiveJob) {
        guard let supervisor else {
            record(runner.run(job))
            return
        }
        switch supervisor.run(job) {
        case .done(let dir):
            succeeded += 1
            ended(job.id, .done, dir: dir)
        case .failed(let dir, _):
            failed += 1
            ended(job.id, .failed, dir: dir)
        case .interrupted: break
        case .retry(let at): waiting.append((job, at))
        case .paused: noteFullDisk(job: job.id)
        }
    }

    /// Decides the id of a claimed manifest, refuses what cannot run, runs the rest.
    func handle(_ claim: Claim) {
        let stem = Path.stem(claim.sourceName)
        var id = Manifest.isValidID(stem) ? stem : Spool.sanitizedID(stem)
        let manifest: Manifest
        let source = "incoming/\(claim.sourceName)"
        do {
            // Only a regular file is a manifest: a FIFO would block the read, a link could
            // point anywhere, a directory cannot be one.
            guard let st = Sys.linkStatus(claim.manifestPath), (st.st_mode & S_IFMT) == S_IFREG else {
                let kind = Sys.linkStatus(claim.manifestPath).map(Sys.kind) ?? "gone"
                throw QuernError(
                    .notARegularFile,
                    "\(source) is \(kind), not a regular file: a manifest is a JSON file, published with `quern submit` or written elsewhere and renamed into incoming/"
                )
            }
            manifest = try Manifest.decode(Sys.readFile(claim.manifestPath, name: source))
            if let mid = manifest.id { id = mid }
            if manifest.hooks != nil && !config.allowManifestHooks {
                throw QuernError(
                    .invalidValue,
                    "this spool does not run a manifest's own hooks (they would run as the daemon's user); its operator can allow them with \"allow_manifest_hooks\": true in \(SpoolConfig.name), or set hooks there",
                    field: "hooks")
            }
            guard Manifest.isValidID(id) else {
                throw QuernError(
                    .invalidID,
                    "the file name \"\(claim.sourceName)\" does not make a valid job id (\(Manifest.idPattern)); set \"id\" in the manifest",
                    field: "id")
            }
        } catch {
            reject(claim, id: id, error)
            return
        }
        if let executor {
            do {
                try executor.handOff(claim, id: id, spool: spool)
            } catch {
                reject(claim, id: id, error)
            }
            return
        }
        let job: ActiveJob
        do {
            job = try spool.activate(claim, id: id)
        } catch {
            reject(claim, id: id, error)
            return
        }
        Log.shared.info("claimed job", [("job", .string(id)), ("task", .string(manifest.task.name))])
        execute(job)
    }

    func reject(_ claim: Claim, id: String, _ error: Error) {
        let e = (error as? QuernError) ?? QuernError(.io, "\(error)")
        do {
            let logLine = Log.line(
                .error, "job refused: \(e.message)", [("job", .string(id)), ("code", .string(e.code.rawValue))])
            try Sys.writeFileAtomically(Path.join(claim.dir, "job.log"), logLine)
            let target = try spool.fail(dir: claim.dir, id: id, error: e, keep: ["manifest.json", "job.log"])
            Log.shared.error(
                "job refused: \(e.message)",
                [
                    ("job", .string(id)), ("code", .string(e.code.rawValue)),
                    ("failed", .string(target))
                ])
            ended(Path.basename(target), .failed, dir: target)
        } catch {
            Log.shared.error("cannot move a refused manifest to failed/: \(error)", [("claim", .string(claim.dir))])
        }
        failed += 1
    }

    func record(_ outcome: JobOutcome) {
        switch outcome {
        // The runner has already logged the outcome, in the job's log and here.
        case .done(let dir):
            succeeded += 1
            ended(Path.basename(dir), .done, dir: dir)
        case .failed(let dir, _):
            failed += 1
            ended(Path.basename(dir), .failed, dir: dir)
        case .interrupted:
            break
        case .paused:
            noteFullDisk(job: nil)
        }
    }

    /// A job stopped because the disk is full: counted (run --once then exits 75), said
    /// once, and no more claims until there is room again.
    func noteFullDisk(job: String?) {
        paused += 1
        if !diskFull {
            Log.shared.error(
                "the disk is full: the job stays in active/ at its last checkpoint and resumes when there is room; no new job starts until then",
                [("job", job.map { .string($0) } ?? .null), ("spool", .string(spool.root))])
        }
        diskFull = true
        quietUntil = time.now() + fullDiskPause
    }

    /// Whether the spool's file system has `minFreeMB` free (said once when it has not).
    func hasRoom() -> Bool {
        guard let free = Sys.freeBytes(spool.root) else { return true }
        let room = free >= minFreeMB << 20
        if !room && !diskFull {
            Log.shared.error(
                "the spool's disk has \(free >> 20) MiB free, under \(minFreeMB): waiting for room before starting jobs",
                [("spool", .string(spool.root))])
        }
        if room && diskFull { Log.shared.info("the spool's disk has room again", [("spool", .string(spool.root))]) }
        diskFull = !room
        return room
    }

    /// `quern watch`: inotify on `incoming/` plus a periodic rescan, until SIGTERM/SIGINT.
    public func watch() throws {
        StopSignal.install()
        let watch = try DirectoryWatch(spool.directory(.incoming))
        let registration = try spool.registerDaemon()
        defer { withExtendedLifetime(registration.lock) { try? Sys.unlink(registration.path) } }
        Log.shared.info("watching spool", [("spool", .string(spool.root)), ("pid", .int(Int64(Sys.pid)))])
        // systemd (Type=notify): ready once registered, then watchdog pings from the
        // scan loop and while a job runs, so a hung daemon is restarted.
        let watchdog = SystemdNotify.watchdogInterval
        var lastPing = time.monotonic()
        func ping() {
            guard let watchdog, time.monotonic() - lastPing >= watchdog else { return }
            lastPing = time.monotonic()
            SystemdNotify.send("WATCHDOG=1")
        }
        SystemdNotify.send("READY=1\nSTATUS=watching \(spool.root)")
        defer { SystemdNotify.send("STOPPING=1") }
        supervisor?.whileRunning = { [weak self] in
            guard let self else { return }
            self.metrics?.write(self.spool, atMostEvery: 10)
            ping()
        }
        while !StopSignal.requested && !StopSignal.drainRequested {
            ping()
            applyRetention(every: Self.retentionInterval)
            metrics?.write(spool, atMostEvery: 10)
            do {
                try drain()
            } catch {
                // A spool-level I/O problem (a full disk, a directory gone) must not end
                // the daemon: say so, back off, and try again on the next scan.
                Log.shared.error("spool scan failed: \(error)", [("spool", .string(spool.root))])
                StopSignal.sleep(rescanInterval)
            }
            if StopSignal.requested { break }
            if StopSignal.wait(for: watch.fd, timeout: rescanInterval) { watch.drain() }
        }
        Log.shared.info(
            StopSignal.drainRequested
                ? "drained: the running job finished, nothing new claimed" : "stopping: signal received",
            [("spool", .string(spool.root))])
    }

    /// `quern run --once`: process everything pending under the spool's run lock.
    /// Returns nil if another run holds the lock.
    public func runOnce() throws -> Bool? {
        StopSignal.install()
        let fd = try Sys.open(Path.join(spool.root, ".run.lock"), O_RDWR | O_CREAT)
        defer { Sys.close(fd) }
        guard try Sys.tryLock(fd) else { return nil }
        waitsForRetries = true
        try drain()
        applyRetention(every: 0)
        metrics?.write(spool)
        return failed == 0
    }
}
