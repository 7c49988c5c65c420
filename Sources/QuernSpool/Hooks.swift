import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the commands a spool (or a job's manifest) asks for when a job ends: each under
/// `/bin/sh -c`, in a process group of its own, with the job in its environment, its
/// output on the daemon's stderr, killed (the whole group) after its timeout. A hook's
/// failure is logged and never changes the job or stops the daemon.
enum HookRunner {
    /// Runs `command` for job `id` now in `state` at `dir`; returns how it ended, for logs.
    @discardableResult
    static func run(
        _ command: String, id: String, state: JobState, dir: String, spool: Spool, timeout: Double,
        source: String
    ) -> String {
        let environment =
            Sys.environmentEntries.filter { !$0.hasPrefix("QUERN_JOB_") }
            + [
                "QUERN_JOB_ID=\(id)", "QUERN_JOB_STATE=\(state.rawValue)", "QUERN_JOB_DIR=\(dir)",
                "QUERN_SPOOL=\(spool.root)"
            ]
        let fields: [(String, JSONValue)] = [
            ("job", .string(id)), ("state", .string(state.rawValue)), ("hook", .string(source))
        ]
        let pid: pid_t
        do {
            pid = try Sys.spawn("/bin/sh", ["-c", command], environment: environment, processGroup: true)
        } catch {
            Log.shared.error("hook could not start: \(error)", fields)
            return "not started"
        }
        let deadline = SystemTime().monotonic() + timeout
        while true {
            if let exit = try? Sys.reap(pid, block: false) {
                if exit.code == 0 {
                    Log.shared.info("hook ran", fields)
                } else {
                    Log.shared.error("hook failed (\(exit)); the job is \(state.rawValue) regardless", fields)
                }
                return exit.description
            }
            if SystemTime().monotonic() >= deadline {
                kill(-pid, SIGKILL)
                _ = try? Sys.reap(pid, block: true)
                Log.shared.error("hook killed after \(timeout) s; the job is \(state.rawValue) regardless", fields)
                return "timed out"
            }
            // Not StopSignal.sleep: after SIGTERM or SIGUSR1 its pipe stays readable, and
            // this wait would spin until the hook ends.
            usleep(20_000)
        }
    }
}
