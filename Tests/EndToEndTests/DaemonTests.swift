import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    @Suite("daemon")
    struct DaemonTests {
        /// A malformed manifest dropped into a running `quern watch` lands in failed/ with
        /// error.json and the bytes as dropped; the next good manifest still runs; SIGTERM
        /// stops the daemon with exit 0.
        @Test("bad manifest then good one, then SIGTERM")
        func badManifestThenGood() async throws {
            let scratch = try Scratch("badgood")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let daemon = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch")

            // The syntax error is on line 4 (the doubled comma).
            let broken = Data(
                "{\n  \"version\": 1,\n  \"task\": \"predict\",\n  \"model\": \"x\",,\n  \"input\": {}\n}\n".utf8)
            try spool.drop("broken.json", broken)
            let good = try Manifests.bytes(
                Manifests.predict(
                    id: "good-after-broken", input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"]))
            try spool.drop("good-after-broken.json", good)

            try await E2E.waitUntil("failed/broken/error.json and done/good-after-broken", timeout: 60) {
                guard daemon.isRunning else { throw E2EFailure("daemon exited early: \(daemon.stderrTail)") }
                return Files.exists(spool.job("failed", "broken") + "/error.json")
                    && Files.exists(spool.job("done", "good-after-broken"))
            }

            let failed = spool.job("failed", "broken")
            #expect(Files.list(failed) == ["error.json", "job.log", "manifest.json"])
            #expect(
                try Files.read(failed + "/manifest.json") == broken,
                "failed/broken/manifest.json must be the bytes dropped")
            let error = try Files.json(failed + "/error.json")
            #expect(JSON.string(error, "code") == "invalid_json")
            #expect(JSON.int(error, "line") == 4, "error.json: \(error)")
            #expect(!(JSON.string(error, "message") ?? "").isEmpty)
            #expect(JSON.string(error, "id") == "broken")

            let done = spool.job("done", "good-after-broken")
            #expect(Files.list(done) == doneFiles)
            let report = try Files.json(done + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == 450)
            #expect(spool.jobs("incoming").isEmpty && spool.jobs("active").isEmpty)
            #expect(spool.jobs("failed") == ["broken"])

            daemon.signal(SIGTERM)
            let exit = try await daemon.wait(timeout: 30)
            #expect(!exit.signaled && exit.status == 0, "daemon after SIGTERM: \(exit); \(daemon.stderrTail)")
            #expect(daemon.stderr.contains("stopping: signal received"))
        }

        /// A daemon started by a parent whose thread blocks SIGTERM/SIGINT (a Dispatch worker,
        /// a supervisor's thread pool) inherits that mask across exec; it must still stop on
        /// SIGTERM, as README promises, by unblocking the signals it handles.
        @Test("watch stops on SIGTERM even when started with SIGTERM blocked")
        func sigtermWhenInheritedBlocked() async throws {
            let scratch = try Scratch("sigmask")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let daemon = try scratch.startQuern(["watch", spool.root], label: "watch-blocked", blockStopSignals: true)
            try await E2E.waitUntil("daemon watching", timeout: 30) {
                guard daemon.isRunning else { throw E2EFailure("daemon exited early: \(daemon.stderrTail)") }
                return daemon.stderr.contains("watching spool")
            }
            daemon.signal(SIGTERM)
            let exit = try await daemon.wait(timeout: 10)
            #expect(!exit.signaled && exit.status == 0, "daemon after SIGTERM: \(exit)")
        }

        /// Two daemons on one spool, 40 small jobs dropped while both run: every job ends in
        /// done/ exactly once (none failed, active or waiting; 40 "claimed job" lines shared
        /// by both daemons), and no daemon touches a job the other owns: done/JOB holds
        /// exactly the five published files, its job.log one "job started" line, and
        /// neither daemon logs an error, "resumes" a live job, or dies.
        @Test("two daemons share a spool: 40 jobs, each done exactly once")
        func twoDaemons() async throws {
            let scratch = try Scratch("two")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let csv = try DigitsData.csv()
            let jobs = 40, rowsPerJob = 10
            var manifests: [(String, Data)] = []
            for j in 0..<jobs {
                let id = String(format: "conc-%02d", j)
                let slice = csv.rows[(j * rowsPerJob)..<((j + 1) * rowsPerJob)]
                let path = scratch.file("data/\(id).csv")
                try Files.write(path, ([csv.header] + slice).joined(separator: "\n") + "\n")
                manifests.append(
                    (
                        id,
                        try Manifests.bytes(
                            Manifests.predict(
                                id: id, input: path, format: "csv", input: ["id_field": "id"], ["batch_size": 4]))
                    ))
            }

            let a = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch-a")
            let b = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch-b")
            try await E2E.waitUntil("both daemons watching", timeout: 30) {
                for d in [a, b] where !d.isRunning { throw E2EFailure("daemon exited early: \(d.stderrTail)") }
                return a.stderr.contains("watching spool") && b.stderr.contains("watching spool")
            }
            for (id, bytes) in manifests { try spool.drop("\(id).json", bytes) }

            try await E2E.waitUntil("40 jobs in done/", timeout: 120, poll: 0.1) {
                for d in [a, b] where !d.isRunning { throw E2EFailure("daemon exited early: \(d.stderrTail)") }
                if !spool.jobs("failed").isEmpty { throw E2EFailure("jobs failed: \(spool.jobs("failed"))") }
                return spool.jobs("done").count >= jobs
            }
            // Let anything still in flight settle before stopping the daemons.
            try await E2E.waitUntil("active/ and incoming/ empty", timeout: 30) {
                spool.jobs("active").isEmpty && spool.jobs("incoming").isEmpty
            }
            a.signal(SIGTERM)
            b.signal(SIGTERM)
            let exitA = try await a.wait(timeout: 30), exitB = try await b.wait(timeout: 30)
            #expect(!exitA.signaled && exitA.status == 0, "daemon a: \(exitA)")
            #expect(!exitB.signaled && exitB.status == 0, "daemon b: \(exitB)")

            #expect(spool.jobs("done") == manifests.map(\.0))
            #expect(spool.jobs("failed").isEmpty)
            #expect(spool.jobs("active").isEmpty)
            #expect(spool.jobs("incoming").isEmpty)
            #expect(Files.list(spool.dir("tmp")).filter { $0.hasPrefix("claim.") }.isEmpty, "claims left in tmp/")
            for (j, (id, bytes)) in manifests.enumerated() {
                let done = spool.job("done", id)
                #expect(try Files.read(done + "/manifest.json") == bytes)
                let report = try Files.json(done + "/report.json")
                #expect(JSON.int(report, "records.succeeded") == rowsPerJob, "done/\(id)")
                #expect(JSON.int(report, "resumed") == 0, "done/\(id)")
                if j % 8 == 0 {  // spot-check the results themselves
                    let rows = try await JSON.lines(scratch.gunzip(done + "/results.jsonl.gz"), what: id)
                    let ids = csv.rows[(j * rowsPerJob)..<((j + 1) * rowsPerJob)].map {
                        String($0.prefix(while: { $0 != "," }))
                    }
                    #expect(rows.map { $0["id"] as? String } == ids)
                }
                #expect(Files.list(done) == doneFiles, "done/\(id)")
                let log = try Files.text(done + "/job.log")
                #expect(log.components(separatedBy: "\"job started\"").count - 1 == 1, "done/\(id)/job.log:\n\(log)")
                #expect(!log.contains("\"level\":\"error\""), "done/\(id)/job.log:\n\(log)")
            }
            func count(_ d: Child, _ message: String) -> Int {
                d.stderr.components(separatedBy: "\"msg\":\"\(message)\"").count - 1
            }
            let claimsA = count(a, "claimed job"), claimsB = count(b, "claimed job")
            #expect(claimsA + claimsB == jobs, "claimed job lines: a \(claimsA), b \(claimsB)")
            #expect(claimsA > 0 && claimsB > 0, "both daemons should take jobs: a \(claimsA), b \(claimsB)")
            for (label, d) in [("a", a), ("b", b)] {
                #expect(count(d, "resuming orphaned job") == 0, "daemon \(label) adopted a live job:\n\(d.stderrTail)")
                #expect(!d.stderr.contains("\"level\":\"error\""), "daemon \(label):\n\(d.stderrTail)")
            }
        }

        /// `run --once` exits 75 and touches nothing while another holder has the spool's
        /// run lock (here util-linux `flock`), and runs normally once it is released.
        @Test("run --once exits 75 while the run lock is held")
        func runOnceLocked() async throws {
            let scratch = try Scratch("lock")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let lockPath = spool.root + "/.run.lock"
            let manifest = try Manifests.bytes(
                Manifests.predict(
                    id: "waits-for-lock", input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"]))
            try spool.drop("waits-for-lock.json", manifest)

            // --no-fork: the process holding the lock is the one we can kill.
            let holder = try scratch.start(
                "/usr/bin/env", ["flock", "--no-fork", lockPath, "sleep", "30"], label: "flock")
            try await E2E.waitUntil("flock to hold \(lockPath)", timeout: 20, poll: 0.05) {
                guard holder.isRunning else { throw E2EFailure("flock exited: \(holder.stderrTail)") }
                // A non-blocking flock attempt of our own tells whether flock has it yet.
                return Files.exists(lockPath) && probeLocked(lockPath)
            }
            let locked = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 30)
            #expect(locked.status == 75, "run --once under a held lock: \(locked)")
            #expect(spool.jobs("incoming") == ["waits-for-lock.json"], "a locked-out run must not claim anything")
            #expect(spool.jobs("done").isEmpty && spool.jobs("active").isEmpty)

            holder.signal(SIGKILL)
            try await holder.wait(timeout: 10)
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0, "run --once after the lock is released: \(run)")
            #expect(spool.jobs("done") == ["waits-for-lock"])
        }
    }
}

/// True if someone holds an flock on `path` (a non-blocking attempt fails).
func probeLocked(_ path: String) -> Bool {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    if flock(fd, LOCK_EX | LOCK_NB) == 0 {
        flock(fd, LOCK_UN)
        return false
    }
    return errno == EWOULDBLOCK
}
