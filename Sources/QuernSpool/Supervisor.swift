import Foundation
import QuernCore
import QuernTasks

#if canImport(Glibc)
    import Glibc
#endif

/// Runs each job in a child process (`quern run-job`), so that nothing a job or its files
/// do — a trap, a signal, memory running out — ends the daemon. The supervisor keeps the
/// spool: it claimed the job and holds its lock, which the child shares through an
/// inherited descriptor, so the job stays owned while either process lives (a killed
/// daemon does not free a job its child is still running). The child runs the job as the
/// daemon used to, checkpoints and publishes included.
///
/// Before each attempt the attempt is counted in the job's `attempts.json`, written
/// durably. A child that dies by a signal, or exits without finishing, is a crash: the job
/// is tried again after a growing pause, and after `limits.max_attempts` crashes it fails
/// with `crashed`, the way it died and the last lines it wrote. A child over
/// `limits.max_memory_mb` fails the job with `memory_limit`; one over `limits.max_seconds`
/// is stopped (SIGTERM: it checkpoints), killed after a grace period if it does not stop,
/// and fails the job with `time_limit`; both keep the partial outputs in `failed/JOB/`.
public final class JobSupervisor {
    let spool: Spool
    let roots: [String]
    let executable: String
    let time: any TimeSource
    /// Seconds a child has to stop after SIGTERM before SIGKILL.
    public var grace: Double = 30
    /// The pause before the retry after crash n (1-based): base · 4^(n−1) seconds.
    public var retryBase: Double = 1
    /// Called every 20 ms while a job's process runs (the daemon refreshes its metrics).
    public var whileRunning: (() -> Void)?

    public static let attemptsName = "attempts.json"

    /// What became of one attempt.
    public enum Outcome: Sendable, Equatable {
        case done(String)
        case failed(String, QuernError)
        /// Stopped by a signal to the daemon after a checkpoint; stays in `active/`.
        case interrupted
        /// Crashed; try again once `now() >= at`.
        case retry(at: Double)
        /// The job stopped itself at its checkpoint because the disk is full; stays in
        /// `active/` until there is room.
        case paused
    }

    /// `executable` is the quern binary (`/proc/self/exe` of the daemon).
    public init(spool: Spool, roots: [String], executable: String, time: any TimeSource = SystemTime()) {
        self.spool = spool
        self.roots = roots
        self.executable = executable
        self.time = time
    }

    /// In a job process: ends this process as soon as its supervisor is gone (it is then
    /// re-parented), so a killed daemon leaves its job in `active/` for the next one to
    /// resume, exactly as when jobs ran inside the daemon.
    public static func dieWithParent() {
        let parent = getppid()
        Thread.detachNewThread {
            while getppid() == parent { usleep(20_000) }
            Glibc.kill(getpid(), SIGKILL)
        }
    }

    /// The counts a job directory keeps across attempts, daemons and hosts.
    struct Attempts {
        var attempts = 0
        var crashes = 0
        var last: String?

        var json: JSONValue {
            [
                "attempts": .int(Int64(attempts)), "crashes": .int(Int64(crashes)),
                "last": last.map { .string($0) } ?? .null
            ]
        }

        static func load(_ job: ActiveJob) -> Attempts {
            guard let o = try? JSONParser.parse(Sys.readFile(job.file(attemptsName))).objectValue else {
                return Attempts()
            }
            return Attempts(
                attempts: Int(o["attempts"]?.intValue ?? 0), crashes: Int(o["crashes"]?.intValue ?? 0),
                last: o["last"]?.stringValue)
        }

        func save(_ job: ActiveJob) throws {
            try Sys.writeFileAtomically(job.file(attemptsName), JSONWriter.pretty(json), durability: .full)
        }
    }

    /// Runs one attempt of `job` in a child process and deals with how it ended.
    public func run(_ job: ActiveJob) -> Outcome {
        // The limits come from the manifest; one that does not decode fails in the child,
        // which says why.
        let limits = (try? Manifest.decode(Sys.readFile(job.manifestPath)))?.limits ?? Manifest.Limits()
        var record = Attempts.load(job)
        record.attempts += 1
        do {
            try record.save(job)
            let (exit, stopped, timedOut, tail) = try attempt(job, limits: limits)
            return try conclude(
                job, record: record, exit: exit, stopped: stopped, timedOut: timedOut, tail: tail, limits: limits)
        } catch {
            // The supervisor itself could not do its part (a full disk, say): leave the
            // job where it is, to be tried again.
            Log.shared.error("cannot run job \(job.id): \(error)", [("job", .string(job.id))])
            return .paused
        }
    }

    /// Starts the child and waits for it, relaying its output and holding it to its time.
    func attempt(_ job: ActiveJob, limits: Manifest.Limits) throws -> (
        Sys.ChildExit, stopped: Bool, timedOut: Bool, tail: [String]
    ) {
        // A copy of the lock's descriptor without close-on-exec, for the child to inherit.
        let lockFD = try Sys.duplicate(job.lock.fd)
        defer { Sys.close(lockFD) }
        let output = try Sys.pipe()
        let pipeFDs = [output.read, output.write]
        var arguments = [
            "run-job", spool.root, job.id, "--lock-fd", String(lockFD), "--max-memory-mb", String(limits.maxMemoryMB)
        ]
        for root in roots { arguments += ["--root", root] }
        let pid: pid_t
        do {
            pid = try Sys.spawn(executable, arguments, inherit: [lockFD], output: pipeFDs[1])
        } catch {
            Sys.close(pipeFDs[0])
            Sys.close(pipeFDs[1])
            throw error
        }
        Sys.close(pipeFDs[1])
        let relay = OutputRelay(fd: pipeFDs[0])
        let started = time.monotonic()
        var stopped = false, timedOut = false, termAt: Double?
        while true {
            if let exit = try Sys.reap(pid, block: false) {
                relay.finish()
                return (exit, stopped, timedOut, relay.tail)
            }
            let now = time.monotonic()
            if termAt == nil && StopSignal.requested {
                stopped = true
                termAt = now
                Sys.kill(pid, SIGTERM)
            } else if termAt == nil && now - started > Double(limits.maxSeconds) {
                timedOut = true
                termAt = now
                Sys.kill(pid, SIGTERM)
            } else if let t = termAt, now - t > grace {
                Sys.kill(pid, SIGKILL)
            }
            whileRunning?()
            usleep(20_000)
        }
    }

    func conclude(
        _ job: ActiveJob, record: Attempts, exit: Sys.ChildExit, stopped: Bool, timedOut: Bool, tail: [String],
        limits: Manifest.Limits
    ) throws -> Outcome {
        // Where the child left the job says what it did.
        if !Sys.exists(job.dir) {
            if Sys.exists(spool.path(.done, job.id)) { return .done(spool.path(.done, job.id)) }
            if let failed = try latestFailed(job.id) {
                let e =
                    (try? JSONParser.parse(Sys.readFile(Path.join(failed, "error.json"))).objectValue) ?? JSONObject()
                return .failed(
                    failed,
                    QuernError(
                        QuernError.Code(rawValue: e["code"]?.stringValue ?? "") ?? .internalError,
                        e["message"]?.stringValue ?? "the job failed", field: e["field"]?.stringValue))
            }
        }
        var record = record
        record.last = exit.description
        if timedOut {
            return try fail(
                job,
                QuernError(
                    .timeLimit,
                    "the job ran longer than limits.max_seconds (\(limits.maxSeconds)); it was stopped (\(exit)). Its partial outputs are kept here; raise the limit or split the input"
                ),
                keepAll: true)
        }
        if exit.code == 75 { return stopped ? .interrupted : .paused }
        if stopped && exit.signal != nil { return .interrupted }
        // Out of memory: the allocation failed in the child (its last words say so).
        if tail.contains(where: { $0.contains("failed to allocate") || $0.contains("Cannot allocate memory") }) {
            return try fail(
                job,
                QuernError(
                    .memoryLimit,
                    "the job needed more memory than limits.max_memory_mb (\(limits.maxMemoryMB) MiB); it was stopped (\(exit)). Raise the limit, lower batch_size, or use a smaller model"
                ),
                keepAll: true)
        }
        record.crashes += 1
        try record.save(job)
        if record.crashes >= limits.maxAttempts {
            let last = tail.suffix(10).joined(separator: "\n")
            return try fail(
                job,
                QuernError(
                    .crashed,
                    "the job's process died on each of its \(record.crashes) attempts (limits.max_attempts); the last was \(exit). Last output:\n\(last)"
                ),
                keepAll: false)
        }
        let pause = retryBase * pow(4, Double(record.crashes - 1))
        Log.shared.warning(
            "job process \(exit); trying again in \(Int(pause)) s",
            [("job", .string(job.id)), ("crashes", .int(Int64(record.crashes)))])
        return .retry(at: time.now() + pause)
    }

    /// The job to `failed/` with `error`, its partial outputs kept when `keepAll`.
    func fail(_ job: ActiveJob, _ error: QuernError, keepAll: Bool) throws -> Outcome {
        let keep: Set<String> =
            keepAll
            ? Set(try Sys.listDirectory(job.dir)) : ["manifest.json", "job.log", "errors.jsonl.gz", Self.attemptsName]
        let target = try spool.fail(dir: job.dir, id: job.id, error: error, keep: keep)
        Log.shared.error(
            "job failed: \(error.message)", [("job", .string(job.id)), ("code", .string(error.code.rawValue))])
        return .failed(target, error)
    }

    /// The newest `failed/` directory of this id (`id`, `id.2`, …).
    func latestFailed(_ id: String) throws -> String? {
        let names = try spool.jobs(.failed).filter { $0 == id || $0.hasPrefix(id + ".") }
        return names.map { spool.path(.failed, $0) }.max {
            (Sys.fileStatus($0)?.st_mtim.tv_sec ?? 0) < (Sys.fileStatus($1)?.st_mtim.tv_sec ?? 0)
        }
    }
}

/// A child's output, passed on to this process's stderr as it comes, with its last lines
/// kept for the error message when the child dies.
final class OutputRelay: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private let finished = DispatchSemaphore(value: 0)
    private var lines: [String] = []
    private var partial: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        DispatchQueue.global().async { self.pump() }
    }

    private func pump() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            _ = buffer.withUnsafeBytes { write(2, $0.baseAddress, n) }
            keep(buffer[0..<n])
        }
        Sys.close(fd)
        finished.signal()
    }

    private func keep(_ bytes: ArraySlice<UInt8>) {
        lock.withLock {
            for b in bytes {
                if b == 0x0A {
                    lines.append(String(decoding: partial, as: UTF8.self))
                    partial.removeAll(keepingCapacity: true)
                    if lines.count > 200 { lines.removeFirst(lines.count - 100) }
                } else if partial.count < 4096 {
                    partial.append(b)
                }
            }
        }
    }

    /// Waits until the child's end of the pipe is closed (it has exited).
    func finish() { finished.wait() }

    var tail: [String] { lock.withLock { lines + (partial.isEmpty ? [] : [String(decoding: partial, as: UTF8.self)]) } }
}
