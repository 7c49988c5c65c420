#if canImport(Glibc)
    import Glibc
#endif

/// Child processes, through `posix_spawn` and `wait4`: what a supervisor needs and
/// Foundation's `Process` does not give (a descriptor handed down on purpose, resource
/// usage of the finished child).
extension Sys {
    /// How a child process ended.
    public struct ChildExit: Sendable, Equatable, CustomStringConvertible {
        /// The exit status, when it exited.
        public let code: Int32?
        /// The signal that killed it, when one did.
        public let signal: Int32?
        /// Its peak resident set, in KiB.
        public let maxResidentKB: Int

        public var description: String {
            if let signal { return "killed by \(Sys.signalName(signal))" }
            return "exit \(code ?? -1)"
        }
    }

    /// Starts `path` with `arguments` (argv[0] is `path`) and the current environment.
    /// `inherit` are descriptors the child receives at the same numbers (every other
    /// descriptor Quern opens is close-on-exec); `output` (a descriptor, a pipe's write
    /// end say) receives its stdout and stderr, else it shares this process's.
    /// `environment` replaces the inherited environment ("NAME=value" entries);
    /// `processGroup` starts the child in a group of its own, so `kill(-pid, …)` reaches
    /// everything it starts (a shell command's children).
    public static func spawn(
        _ path: String, _ arguments: [String], inherit: [Int32] = [], output: Int32? = nil,
        environment: [String]? = nil, processGroup: Bool = false
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 onto the same number clears close-on-exec in the child only.
        for fd in inherit { posix_spawn_file_actions_adddup2(&actions, fd, fd) }
        if let output {
            posix_spawn_file_actions_adddup2(&actions, output, 1)
            posix_spawn_file_actions_adddup2(&actions, output, 2)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if processGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        let argv = ([path] + arguments).map { strdup($0) }
        let envp = environment?.map { strdup($0) }
        defer {
            for p in argv { free(p) }
            for p in envp ?? [] { free(p) }
        }
        var pid: pid_t = 0
        let status = (argv + [nil]).withUnsafeBufferPointer { p in
            guard let envp else { return posix_spawn(&pid, path, &actions, &attributes, p.baseAddress!, environ) }
            return (envp + [nil]).withUnsafeBufferPointer { e in
                posix_spawn(&pid, path, &actions, &attributes, p.baseAddress!, e.baseAddress!)
            }
        }
        guard status == 0 else { throw SystemError(call: "posix_spawn", errno: status, path: path) }
        return pid
    }

    /// A second descriptor of the same open file, not closed on exec: what a child is
    /// handed to share a lock held on that file.
    public static func duplicate(_ fd: Int32) throws -> Int32 {
        let copy = dup(fd)
        guard copy >= 0 else { throw SystemError(call: "dup", errno: errno, path: nil) }
        return copy
    }

    /// A pipe, both ends close-on-exec: (read, write).
    public static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw SystemError(call: "pipe", errno: errno, path: nil) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// The child's end, if it has ended (`block: false` returns nil while it runs).
    public static func reap(_ pid: pid_t, block: Bool) throws -> ChildExit? {
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let r = wait4(pid, &status, block ? 0 : WNOHANG, &usage)
            if r == pid { break }
            if r == 0 { return nil }
            if errno == EINTR { continue }
            throw SystemError(call: "wait4", errno: errno, path: nil)
        }
        let signal = status & 0x7F
        return signal == 0
            ? ChildExit(code: (status >> 8) & 0xFF, signal: nil, maxResidentKB: usage.ru_maxrss)
            : ChildExit(code: nil, signal: signal, maxResidentKB: usage.ru_maxrss)
    }

    /// This process's peak resident memory so far, in KiB (getrusage's ru_maxrss).
    public static var peakResidentKB: Int {
        var usage = rusage()
        return getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 ? usage.ru_maxrss : 0
    }

    /// Sends `signal` to `pid`; false when there is no such process.
    @discardableResult
    public static func kill(_ pid: pid_t, _ signal: Int32) -> Bool { Glibc.kill(pid, signal) == 0 }

    /// `SIGKILL`, `SIGSEGV`…: a signal's name, for messages.
    public static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
            SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ"
        ]
        return names[signal] ?? "signal \(signal)"
    }

    /// Limits this process's address space (a job's memory limit, set by the job process
    /// on itself before it loads anything).
    public static func limitAddressSpace(bytes: Int) throws {
        var limit = rlimit(rlim_cur: rlim_t(bytes), rlim_max: rlim_t(bytes))
        guard setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0 else {
            throw SystemError(call: "setrlimit", errno: errno, path: nil)
        }
    }
}
