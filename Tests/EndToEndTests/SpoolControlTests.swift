import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// Priorities, pause and resume, and drain, on the real binary.
    @Suite("spool control")
    struct SpoolControlTests {
        static func job(_ id: String, priority: Int? = nil) throws -> Data {
            try Manifests.bytes(
                Manifests.predict(
                    id: id, input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"],
                    priority.map { ["priority": $0] } ?? [:]))
        }

        @Test("higher priority first, ties in arrival order, whatever the names")
        func priorities() async throws {
            let scratch = try Scratch("priority")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // Arrival order: a, b, c, d (one second apart in modification time).
            for (i, (id, p)) in [("a-low", -1), ("b-none", nil), ("c-high", 5), ("d-none", nil)].enumerated() {
                try spool.drop(id + ".json", try Self.job(id, priority: p))
                let path = spool.root + "/incoming/\(id).json"
                var times = [
                    timespec(tv_sec: 1_700_000_000 + i, tv_nsec: 0), timespec(tv_sec: 1_700_000_000 + i, tv_nsec: 0)
                ]
                #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
            }
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0, "\(run)")
            #expect(spool.jobs("done").sorted() == ["a-low", "b-none", "c-high", "d-none"])
            // The daemon's log says what it claimed, in order.
            let claimed = run.stderr.split(separator: "\n").compactMap { line -> String? in
                guard line.contains("\"claimed job\""),
                    let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else { return nil }
                return o["job"] as? String
            }
            #expect(claimed == ["c-high", "b-none", "d-none", "a-low"], "\(run.stderr)")
        }

        @Test("pause: nothing new is claimed and status says so; resume: the job runs")
        func pauseAndResume() async throws {
            let scratch = try Scratch("pause")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            var r = try await scratch.quern(["pause", spool.root, "--reason", "disk swap"])
            #expect(r.status == 0, "\(r)")
            try spool.drop("waits.json", try Self.job("waits"))
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            #expect(spool.jobs("incoming") == ["waits.json"] && spool.jobs("done").isEmpty)
            #expect(r.stderr.contains("spool paused"), "\(r.stderr)")
            let status = try await scratch.quern(["status", spool.root, "--json"])
            let o = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            #expect((o?["paused"] as? [String: Any])?["reason"] as? String == "disk swap", "\(status.stdout)")
            let table = try await scratch.quern(["status", spool.root])
            #expect(table.stdout.contains("PAUSED since") && table.stdout.contains("disk swap"))

            r = try await scratch.quern(["resume", spool.root])
            #expect(r.status == 0 && r.stdout.contains("resumed"), "\(r)")
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0 && spool.jobs("done") == ["waits"], "\(r)")
            r = try await scratch.quern(["resume", spool.root])
            #expect(r.status == 0 && r.stdout.contains("was not paused"))
        }

        @Test("drain: the daemon finishes its job, claims nothing new and exits 0; SIGUSR1 does the same")
        func drain() async throws {
            let scratch = try Scratch("drain")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            for how in ["command", "signal"] {
                let daemon = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch-\(how)")
                try await E2E.waitUntil("the daemon registered", timeout: 30) {
                    (try? FileManager.default.contentsOfDirectory(atPath: spool.root + "/daemons"))?.isEmpty == false
                }
                try spool.drop("first-\(how).json", try Self.job("first-\(how)"))
                try await E2E.waitUntil("first-\(how) claimed", timeout: 30) {
                    spool.jobs("active").contains("first-\(how)") || spool.jobs("done").contains("first-\(how)")
                }
                if how == "command" {
                    let r = try await scratch.quern(["drain", spool.root, "--wait", "60"])
                    #expect(r.status == 0 && r.stdout.contains("asked 1 daemon"), "\(r)")
                } else {
                    daemon.signal(SIGUSR1)
                }
                let exit = try await daemon.wait(timeout: 60)
                #expect(!exit.signaled && exit.status == 0, "\(exit); \(daemon.stderrTail)")
                #expect(daemon.stderr.contains("drained"), "\(daemon.stderrTail)")
                #expect(spool.jobs("done").contains("first-\(how)"))
                #expect(
                    (try? FileManager.default.contentsOfDirectory(atPath: spool.root + "/daemons")) ?? [] == [],
                    "the daemon's entry is removed")
            }
            // With no daemon left, a new manifest waits.
            try spool.drop("later.json", try Self.job("later"))
            let r = try await scratch.quern(["drain", spool.root])
            #expect(r.status == 0 && r.stdout.contains("asked 0 daemon"), "\(r)")
            #expect(spool.jobs("incoming") == ["later.json"])
        }

        @Test("gc: old done and failed jobs go (or move to an archive), the newest and every active job stay")
        func gc() async throws {
            let scratch = try Scratch("gc")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            for id in ["old-1", "old-2", "new-1"] { try spool.drop(id + ".json", try Self.job(id)) }
            try spool.drop("bad.json", Data("{".utf8))
            var r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(spool.jobs("done").sorted() == ["new-1", "old-1", "old-2"] && spool.jobs("failed") == ["bad"])
            // An active job whose directory is as old as the oldest: never touched.
            try FileManager.default.createDirectory(
                atPath: spool.job("active", "running"), withIntermediateDirectories: true)
            func age(_ path: String, days: Int) {
                let t = Int(Date().timeIntervalSince1970) - days * 86400
                var times = [timespec(tv_sec: t, tv_nsec: 0), timespec(tv_sec: t, tv_nsec: 0)]
                #expect(utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0)
            }
            age(spool.job("done", "old-1"), days: 30)
            age(spool.job("done", "old-2"), days: 20)
            age(spool.job("failed", "bad"), days: 40)
            age(spool.job("active", "running"), days: 50)

            r = try await scratch.quern(["gc", spool.root])
            #expect(r.status != 0 && r.stderr.contains("--keep-days"), "gc without a rule: \(r)")
            // Kept: newer than 7 days, or among the newest 2 of its state. Only old-1 goes:
            // old-2 is the second newest done job, bad the only failed one.
            r = try await scratch.quern(["gc", spool.root, "--keep-days", "7", "--keep-last", "2"])
            #expect(r.status == 0, "\(r)")
            #expect(spool.jobs("done").sorted() == ["new-1", "old-2"] && spool.jobs("failed") == ["bad"])
            let first = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            #expect(first?["removed"] as? [String] == ["done/old-1"], "\(r.stdout)")

            let archive = scratch.file("archive")
            r = try await scratch.quern(["gc", spool.root, "--keep-days", "7", "--archive", archive])
            #expect(r.status == 0, "\(r)")
            #expect(spool.jobs("done") == ["new-1"] && spool.jobs("failed").isEmpty)
            #expect(
                Files.exists(archive + "/done/old-2/report.json") && Files.exists(archive + "/failed/bad/error.json"))
            #expect(spool.jobs("active") == ["running"])
            #expect((try? FileManager.default.contentsOfDirectory(atPath: spool.root + "/tmp")) ?? [] == [])
        }

        @Test(
            "quern.json: hooks with the job in their environment (a failing and a hanging one change nothing), a metrics textfile Prometheus parses, retention, manifest hooks only where allowed"
        )
        func configHooksMetrics() async throws {
            let scratch = try Scratch("config")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let log = scratch.file("hooks.log"), metrics = scratch.file("textfile/quern.prom")
            func config(_ o: [String: Any]) throws {
                try Files.write(spool.root + "/quern.json", String(decoding: try JSON.encode(o), as: UTF8.self))
            }
            try config([
                "hooks": [
                    "on_done": "echo \"done $QUERN_JOB_ID $QUERN_JOB_STATE $QUERN_JOB_DIR\" >> '\(log)'; exit 3",
                    "on_failed": "echo \"failed $QUERN_JOB_ID\" >> '\(log)'; sleep 30", "timeout_seconds": 1
                ],
                "metrics": metrics
            ])
            try spool.drop("good.json", try Self.job("good"))
            try spool.drop("broken.json", Data("{".utf8))
            var hooked = try Manifests.bytes(
                Manifests.predict(
                    id: "hooked", input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"],
                    ["hooks": ["on_done": "echo \"manifest $QUERN_JOB_ID\" >> '\(log)'"]]))
            try spool.drop("hooked.json", hooked)
            let started = Date()
            var r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 1, "a job failed: \(r)")
            #expect(Date().timeIntervalSince(started) < 20, "the hanging hook was killed after its timeout")
            let lines = try Files.text(log).split(separator: "\n").map(String.init).sorted()
            #expect(
                lines == ["done good done \(spool.job("done", "good"))", "failed broken", "failed hooked"],
                "\(lines)")
            let refused = try Files.json(spool.job("failed", "hooked") + "/error.json")
            #expect(JSON.string(refused, "field") == "hooks", "\(refused)")
            #expect(r.stderr.contains("hook failed") && r.stderr.contains("hook killed"), "\(r.stderr)")

            // Prometheus' own parser reads the file.
            let parse = try await scratch.run(
                "/usr/bin/python3",
                [
                    "-c",
                    """
                    import sys
                    from prometheus_client.parser import text_string_to_metric_families
                    for f in text_string_to_metric_families(open(sys.argv[1]).read()):
                        for s in f.samples:
                            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                            print(f"{s.name}|{labels}|{s.value}")
                    """, metrics
                ], label: "prometheus-parser")
            #expect(parse.status == 0, "\(parse)")
            let samples = Set(parse.stdout.split(separator: "\n").map(String.init))
            for expected in [
                "quern_jobs|state=done|1.0", "quern_jobs|state=failed|2.0", "quern_jobs|state=active|0.0",
                "quern_jobs_finished_total|state=done,task=predict|1.0",
                "quern_job_failures_total|code=invalid_json|1.0", "quern_job_failures_total|code=invalid_value|1.0",
                "quern_records_total|task=predict|450.0", "quern_paused||0.0"
            ] {
                #expect(samples.contains(expected), "\(expected) in \(samples.sorted())")
            }
            #expect(samples.contains { $0.hasPrefix("quern_last_success_timestamp_seconds|task=predict|") })

            // Manifest hooks where allowed; retention keeps the newest done job.
            try config(["allow_manifest_hooks": true, "retention": ["keep_last": 1]])
            hooked = try Manifests.bytes(
                Manifests.predict(
                    id: "hooked-2", input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"],
                    ["hooks": ["on_done": "echo \"manifest $QUERN_JOB_ID\" >> '\(log)'"]]))
            try spool.drop("hooked-2.json", hooked)
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            #expect(try Files.text(log).contains("manifest hooked-2"))
            #expect(spool.jobs("done") == ["hooked-2"] && spool.jobs("failed").count == 1, "retention kept the newest")

            try config(["hooks": ["on_done": "true"], "metrcs": "typo"])
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 2 && r.stderr.contains("metrcs"), "\(r)")
        }
    }
}
