#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// SIGTERM and SIGINT as a flag plus a wake-up descriptor: the handler only sets the
/// flag and writes a byte to a pipe (both async-signal-safe); the daemon polls the pipe
/// next to its inotify descriptor and checks the flag between batches.
public enum StopSignal {
    nonisolated(unsafe) private static var pipeFDs: [Int32] = [-1, -1]
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    nonisolated(unsafe) private static var drainFlag: sig_atomic_t = 0
    nonisolated(unsafe) private static var writeEnd: Int32 = -1

    public static var requested: Bool { flag != 0 }
    /// SIGUSR1 (`quern drain`): finish the running job, claim nothing new, exit 0.
    public static var drainRequested: Bool { drainFlag != 0 }

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
        // One handler: it records which signal came (each flag is set by one) and wakes
        // the poll; both steps are async-signal-safe.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in
            if signal == SIGUSR1 { StopSignal.drainFlag = 1 } else { StopSignal.flag = 1 }
            var b: UInt8 = 1
            _ = Glibc.write(StopSignal.writeEnd, &b, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        for signal in [SIGTERM, SIGINT, SIGUSR1] { sigaction(signal, &action, nil) }
        // A parent may have started us with these blocked (the mask is inherited);
        // a daemon that cannot be stopped cleanly is worse than one that can.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGUSR1)
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
