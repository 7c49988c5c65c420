#if canImport(Glibc)
    import Glibc
#endif

/// systemd's notify protocol (`Type=notify`): one datagram to the socket named by
/// `$NOTIFY_SOCKET` ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=…"). Without that
/// variable (not started by systemd) every call does nothing.
public enum SystemdNotify {
    /// Sends `state`; false when there is no socket or the send failed.
    @discardableResult
    public static func send(_ state: String) -> Bool {
        guard var path = Sys.environment("NOTIFY_SOCKET"), !path.isEmpty else { return false }
        // "@name" is an abstract socket: its address starts with a NUL byte.
        let abstract = path.hasPrefix("@")
        if abstract { path.removeFirst() }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count + (abstract ? 1 : 0) < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let offset = abstract ? 1 : 0
            for (i, b) in bytes.enumerated() { raw[offset + i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 1 : 0))
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { m in sendto(fd, m.baseAddress, m.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return sent == message.count
    }

    /// Half the watchdog interval systemd asks for (`$WATCHDOG_USEC`, when `$WATCHDOG_PID`
    /// is this process or unset), in seconds: how often to send "WATCHDOG=1". Nil without one.
    public static var watchdogInterval: Double? {
        guard let usec = Sys.environment("WATCHDOG_USEC").flatMap(Double.init), usec > 0 else { return nil }
        if let pid = Sys.environment("WATCHDOG_PID").flatMap(Int32.init), pid != getpid() { return nil }
        return usec / 2e6
    }
}
