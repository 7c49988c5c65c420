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

        /// A JSON Lines file of `n` prompts for the tiny Llama, ids p0, p1, ….
        static func prompts(_ scratch: Scratch, _ n: Int) throws -> String {
            let path = scratch.file("prompts-\(n).jsonl")
            try Files.write(
                path,
                (0..<n).map { #"{"id": "p\#($0)", "prompt": "tell me \#($0 % 97)"}"# }.joined(separator: "\n") + "\n")
            return path
        }

        static func generate(_ id: String, _ input: String, _ extra: [String: Any] = [:]) throws -> Data {
            var m: [String: Any] = [
                "version": 1, "id": id, "task": "generate", "model": E2E.repoRoot + "/fixtures/models/tiny-llama",
                "input": ["path": input, "id_field": "id"], "generate": ["max_tokens": 12, "temperature": 0]
            ]
            for (k, v) in extra { m[k] = v }
            return try JSON.encode(m)
        }

        @Test("cancel a running 10,000-record job: its finished results and counts are published, the rest listed")
        func cancelRunning() async throws {
            let scratch = try Scratch("cancel")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let input = try Self.prompts(scratch, 10_000)
            let daemon = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch-cancel")
            try spool.drop("big.json", try Self.generate("big", input))
            // Once the first batch is written, cancel.
            try await E2E.waitUntil("the job's first batch", timeout: 120) {
                guard let lease = try? Files.json(spool.job("active", "big") + "/lease.json") else { return false }
                return (JSON.int(lease, "progress.records") ?? 0) > 0
            }
            let r = try await scratch.quern(["cancel", "big", spool.root])
            #expect(r.status == 0 && r.stdout.contains("stops at its next batch"), "\(r)")
            try await E2E.waitUntil("done/big", timeout: 120) {
                Files.exists(spool.job("done", "big") + "/report.json")
            }
            daemon.signal(SIGTERM)
            _ = try await daemon.wait(timeout: 30)

            let done = spool.job("done", "big")
            let report = try Files.json(done + "/report.json")
            #expect(JSON.string(report, "status") == "cancelled")
            let succeeded = JSON.int(report, "records.succeeded") ?? -1,
                cancelled = JSON.int(report, "records.cancelled") ?? -1
            #expect(succeeded > 0 && cancelled > 0 && succeeded + cancelled == 10_000, "\(succeeded) + \(cancelled)")
            #expect(JSON.int(report, "records.failed") == 0)
            let results = try await JSON.lines(scratch.gunzip(done + "/results.jsonl.gz"), what: "results")
            let unrun = try await JSON.lines(scratch.gunzip(done + "/unrun.jsonl.gz"), what: "unrun")
            #expect(results.map { $0["id"] as? String } == (0..<succeeded).map { "p\($0)" })
            #expect(unrun.map { $0["id"] as? String } == (succeeded..<10_000).map { "p\($0)" })
            #expect(unrun.first?["line"] as? Int == succeeded + 1 && unrun.first?["member"] as? String != nil)
            #expect(!Files.exists(done + "/cancel"), "the cancel marker is not published")
        }

        @Test(
            "cancel a pending job, and deadlines (a past time, a duration since submission): nothing runs, every record listed"
        )
        func cancelPendingAndDeadlines() async throws {
            let scratch = try Scratch("deadline")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let input = try Self.prompts(scratch, 50)
            try spool.drop("waiting.json", try Self.generate("waiting", input))
            var r = try await scratch.quern(["cancel", "waiting", spool.root] + rootArgs(scratch))
            #expect(r.status == 0 && r.stdout.contains("cancelled pending job"), "\(r)")
            var report = try Files.json(spool.job("done", "waiting") + "/report.json")
            #expect(JSON.string(report, "status") == "cancelled" && JSON.int(report, "records.cancelled") == 50)
            #expect(JSON.int(report, "records.succeeded") == 0)

            try spool.drop("past.json", try Self.generate("past", input, ["deadline": "2001-02-03T04:05:06Z"]))
            try spool.drop("soon.json", try Self.generate("soon", input, ["deadline": "30s"]))
            try spool.drop("later.json", try Self.generate("later", input, ["deadline": "24h"]))
            // "soon" was submitted a minute ago: its 30 s are over.
            let t = Int(Date().timeIntervalSince1970) - 60
            var times = [timespec(tv_sec: t, tv_nsec: 0), timespec(tv_sec: t, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, spool.root + "/incoming/soon.json", &times, 0) == 0)
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            for id in ["past", "soon"] {
                report = try Files.json(spool.job("done", id) + "/report.json")
                #expect(JSON.string(report, "status") == "expired", "\(id)")
                #expect(JSON.int(report, "records.cancelled") == 50 && JSON.int(report, "records.succeeded") == 0)
                let unrun = try await JSON.lines(scratch.gunzip(spool.job("done", id) + "/unrun.jsonl.gz"), what: id)
                #expect(unrun.count == 50)
            }
            report = try Files.json(spool.job("done", "later") + "/report.json")
            #expect(JSON.string(report, "status") == "done" && JSON.int(report, "records.succeeded") == 50)

            // A whole-input task cancelled: its report and errors only.
            try spool.drop("tune.json", try TrainingTests.manifest("quantize-digits-mlp", id: "tune"))
            r = try await scratch.quern(["cancel", "tune", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            report = try Files.json(spool.job("done", "tune") + "/report.json")
            #expect(JSON.string(report, "status") == "cancelled" && !Files.exists(spool.job("done", "tune") + "/model"))

            r = try await scratch.quern(["cancel", "later", spool.root])
            #expect(r.status != 0 && r.stderr.contains("finished already"), "\(r)")
            r = try await scratch.quern(["cancel", "nothing", spool.root])
            #expect(r.status != 0 && r.stderr.contains("no pending or active job"), "\(r)")
        }

        /// A C shim loaded with LD_PRELOAD into quern's processes: the read() calls on one
        /// file fail with EIO, as a disk or an NFS server does, `QUERN_TEST_EIO_FAILURES`
        /// times in each process, after its first `QUERN_TEST_EIO_AFTER` reads of the file.
        static func eioShim(_ scratch: Scratch) async throws -> String {
            let source = scratch.file("eio.c"), library = scratch.file("libeio.so")
            try Files.write(
                source,
                #"""
                #define _GNU_SOURCE
                #include <dlfcn.h>
                #include <errno.h>
                #include <stdio.h>
                #include <stdlib.h>
                #include <string.h>
                #include <unistd.h>
                static long seen = 0, left = -1;
                ssize_t read(int fd, void *buf, size_t n) {
                    static ssize_t (*real)(int, void *, size_t);
                    if (!real) real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
                    const char *target = getenv("QUERN_TEST_EIO_PATH");
                    char link[64], path[4096];
                    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
                    ssize_t k = target ? readlink(link, path, sizeof path - 1) : -1;
                    if (k > 0) {
                        path[k] = 0;
                        if (strcmp(path, target) == 0) {
                            if (left < 0) left = atol(getenv("QUERN_TEST_EIO_FAILURES"));
                            if (++seen > atol(getenv("QUERN_TEST_EIO_AFTER")) && left > 0) {
                                left--;
                                errno = EIO;
                                return -1;
                            }
                        }
                    }
                    return real(fd, buf, n);
                }
                """#)
            try await scratch.sh("clang -shared -fPIC -O1 -o '\(library)' '\(source)' -ldl")
            return library
        }

        @Test(
            "a read that fails with EIO: the job resumes from its checkpoint after a wait and ends as an unbroken run would; past limits.io_retries it fails with io_error"
        )
        func transientReadErrors() async throws {
            let scratch = try Scratch("eio")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let shim = try await Self.eioShim(scratch)
            // About 3 MB of texts: the reader takes it in 1 MB blocks.
            let input = scratch.file("texts.jsonl")
            try Files.write(
                input,
                (0..<30_000).map {
                    #"{"id": "r\#($0)", "text": "record \#($0) of a long input that is read in blocks, with some words"}"#
                }
                .joined(separator: "\n") + "\n")
            func job(_ id: String, retries: Int? = nil) throws -> Data {
                var m: [String: Any] = [
                    "version": 1, "id": id, "task": "embed", "model": E2E.repoRoot + "/fixtures/models/tiny-bert",
                    "input": ["path": input, "id_field": "id"]
                ]
                if let retries { m["limits"] = ["io_retries": retries] }
                return try JSON.encode(m)
            }
            try spool.drop("clean.json", try job("clean"))
            var r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")

            // Fails once, on the third read of the input: retried, and the same results.
            let env = [
                "LD_PRELOAD": shim, "QUERN_TEST_EIO_PATH": input, "QUERN_TEST_EIO_AFTER": "3",
                "QUERN_TEST_EIO_FAILURES": "1"
            ]
            try spool.drop("flaky.json", try job("flaky"))
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), env: env)
            #expect(r.status == 0 && spool.jobs("done").contains("flaky"), "\(r)")
            let clean = try await scratch.gunzip(spool.job("done", "clean") + "/results.jsonl.gz")
            let flaky = try await scratch.gunzip(spool.job("done", "flaky") + "/results.jsonl.gz")
            #expect(clean == flaky && !clean.isEmpty)
            let log = try Files.text(spool.job("done", "flaky") + "/job.log")
            #expect(log.contains("transient I/O error") && log.contains("retry 1 of 3"), "\(log)")
            let report = try Files.json(spool.job("done", "flaky") + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == 30_000 && JSON.int(report, "records.failed") == 0)

            // A disk that keeps failing: one retry allowed, then io_error.
            var failing = env
            failing["QUERN_TEST_EIO_FAILURES"] = "1000"
            try spool.drop("broken.json", try job("broken", retries: 1))
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), env: failing)
            #expect(r.status == 1, "\(r)")
            let error = try Files.json(spool.job("failed", "broken") + "/error.json")
            #expect(JSON.string(error, "code") == "io_error", "\(error)")
            #expect(JSON.string(error, "message")?.contains("Input/output error") == true, "\(error)")
            let brokenLog = try Files.text(spool.job("failed", "broken") + "/job.log")
            #expect(brokenLog.contains("retry 1 of 1") && !brokenLog.contains("retry 2"), "\(brokenLog)")
        }

        @Test("retry: a new job reads only the bad records (and a cancelled job's unrun ones) from the same input")
        func retry() async throws {
            let scratch = try Scratch("retry")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let lines = try Files.text(E2E.digitsCSV).split(separator: "\n").map(String.init)
            let header = lines[0], rows = Array(lines[1...12])
            // Rows 3 and 8 (file lines 4 and 9) are broken: a feature that is not a number.
            var broken = rows
            for i in [2, 7] { broken[i] = broken[i].replacingOccurrences(of: ",", with: ",x", options: [], range: nil) }
            let input = scratch.file("digits.csv")
            try Files.write(input, ([header] + broken).joined(separator: "\n") + "\n")
            func job(_ id: String) throws -> Data {
                try Manifests.bytes(
                    Manifests.predict(
                        id: id, input: input, format: "csv", input: ["id_field": "id", "label_field": "label"]))
            }
            try spool.drop("first.json", try job("first"))
            var r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            var report = try Files.json(spool.job("done", "first") + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == 10 && JSON.int(report, "records.failed") == 2)

            // The input is fixed; the retry reads those two records only.
            try Files.write(input, ([header] + rows).joined(separator: "\n") + "\n")
            r = try await scratch.quern(["retry", "first", spool.root])
            #expect(r.status == 0 && r.stdout.contains("first-retry"), "\(r)")
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            report = try Files.json(spool.job("done", "first-retry") + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == 2 && JSON.int(report, "records.failed") == 0)
            let results = try await JSON.lines(
                scratch.gunzip(spool.job("done", "first-retry") + "/results.jsonl.gz"), what: "retry")
            let ids = [2, 7].map { rows[$0].split(separator: ",")[0] }.map(String.init)
            #expect(results.map { $0["id"] as? String } == ids)

            // Nothing left to retry; a second retry of the first job gets its own id.
            r = try await scratch.quern(["retry", "first-retry", spool.root])
            #expect(r.status != 0 && r.stderr.contains("no bad or unrun records"), "\(r)")
            r = try await scratch.quern(["retry", "first", spool.root])
            #expect(r.status == 0 && r.stdout.contains("first-retry-2"), "\(r)")

            // A cancelled job's unrun records are retried too.
            try spool.drop("stopped.json", try job("stopped"))
            r = try await scratch.quern(["cancel", "stopped", spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            r = try await scratch.quern(["retry", "stopped", spool.root])
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            report = try Files.json(spool.job("done", "stopped-retry") + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == 12, "\(report)")

            // Once gc has taken the jobs, their record lists go too; a pending retry's stays.
            r = try await scratch.quern(["retry", "first", spool.root])
            #expect(spool.jobs("incoming") == ["first-retry-3.json"], "\(r)")
            r = try await scratch.quern(["gc", spool.root, "--keep-last", "0"])
            #expect(r.status == 0 && spool.jobs("done").isEmpty, "\(r)")
            let left = try FileManager.default.contentsOfDirectory(atPath: spool.root + "/retries")
            #expect(left == ["first-retry-3.select.jsonl"], "\(left)")
        }
    }
}
