import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// contrib/systemd's units and the daemon's side of `Type=notify`.
    @Suite("systemd")
    struct SystemdTests {
        static let units = ["quern.service", "quern-once.service", "quern-once.timer", "quern.path"]

        @Test("the unit files pass systemd-analyze verify with no warning")
        func verify() async throws {
            let scratch = try Scratch("systemd-units")
            defer { scratch.remove() }
            // The units name /usr/local/bin/quern; verify wants an executable there.
            let binary = E2E.binary
            for unit in Self.units {
                let text = try Files.text(E2E.repoRoot + "/contrib/systemd/" + unit)
                #expect(!text.contains("\t"))
                try Files.write(scratch.file(unit), text.replacingOccurrences(of: "/usr/local/bin/quern", with: binary))
            }
            let r = try await scratch.run(
                "/usr/bin/env", ["systemd-analyze", "verify", "--man=no"] + Self.units.map { scratch.file($0) },
                env: ["SYSTEMD_LOG_LEVEL": "info"], label: "systemd-analyze")
            #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.isEmpty, "\(r)")
            let service = try Files.text(E2E.repoRoot + "/contrib/systemd/quern.service")
            for line in [
                "Type=notify", "WatchdogSec=", "ProtectSystem=strict", "ReadWritePaths=", "NoNewPrivileges=yes"
            ] {
                #expect(service.contains(line), "quern.service has \(line)")
            }
        }

        @Test("watch tells NOTIFY_SOCKET it is ready, pings the watchdog, and says when it stops")
        func notify() async throws {
            let scratch = try Scratch("systemd-notify")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let path = scratch.file("notify.sock")
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            #expect(fd >= 0)
            defer { close(fd) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            #expect(bound == 0)
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            func receive() -> String? {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buffer, buffer.count, 0)
                return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
            }

            let daemon = try scratch.startQuern(
                ["watch", spool.root, "--rescan", "0.05"], env: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"],
                label: "watch-notify")
            let ready = receive()
            #expect(ready?.hasPrefix("READY=1") == true, "\(ready ?? "nothing")")
            let ping = receive()
            #expect(ping == "WATCHDOG=1", "\(ping ?? "nothing")")
            daemon.signal(SIGTERM)
            var last: String?
            while let m = receive() {
                last = m
                if m == "STOPPING=1" { break }
            }
            #expect(last == "STOPPING=1")
            let exit = try await daemon.wait(timeout: 30)
            #expect(!exit.signaled && exit.status == 0)
        }
    }
}
