import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    @Suite("crash and resume")
    struct CrashTests {
        /// Repetitions of the 450 digits rows in the crash input: 223 × 450 = 100,350
        /// records (≈ 23 MB of results, many 1 MiB gzip segments), enough that a debug
        /// build checkpointing after every batch needs a while, within the suite's time
        /// budget on two cores. `QUERN_E2E_CRASH_REPS` overrides it.
        static let repetitions = ProcessInfo.processInfo.environment["QUERN_E2E_CRASH_REPS"].flatMap { Int($0) } ?? 223
        /// A record every this many lines is broken, so errors.jsonl.gz has content too.
        static let badEvery = 2000
        /// Kill once the checkpoint is past this many records: past the first results
        /// segment, so the resume must truncate, re-buffer and append mid-file.
        static let killAfter = 5000

        /// A multi-batch input (the digits rows `repetitions` times with unique ids, a broken
        /// line every `badEvery`, as JSONL in a tar.gz), its manifest, and the outputs of an
        /// uninterrupted run of that manifest on a spool of its own.
        struct Reference {
            let id: String
            let manifest: Data
            let good: Int
            let bad: Int
            let done: String
            let report: [String: Any]
        }

        static func reference(_ scratch: Scratch, id: String, repetitions: Int) async throws -> Reference {
            let rows = try DigitsData.jsonl()
            var text = ""
            text.reserveCapacity(rows.count * repetitions * 200)
            var lineNumber = 0, good = 0, bad = 0
            for r in 0..<repetitions {
                for row in rows {
                    lineNumber += 1
                    if lineNumber % Self.badEvery == 0 {
                        text += "{\"id\":\"broken-\(lineNumber)\",\"features\":[1,2\n"
                        bad += 1
                    }
                    text += DigitsData.line(id: String(format: "r%03d-", r) + row.id, features: row.features) + "\n"
                    good += 1
                }
            }
            try Files.write(scratch.file("data/records.jsonl"), text)
            let archive = scratch.file("\(id)-input.tar.gz")
            try await scratch.tarGz(archive, from: scratch.file("data"), ["records.jsonl"])
            try FileManager.default.removeItem(atPath: scratch.file("data/records.jsonl"))

            let manifest = try Manifests.bytes(
                Manifests.predict(
                    id: id, input: archive, format: "jsonl", input: ["members": "*.jsonl", "id_field": "id"],
                    ["batch_size": 64, "limits": ["max_errors": 1000]]))

            let spool = try SpoolDir(scratch.file("reference"))
            try spool.drop("\(id).json", manifest)
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            guard run.status == 0 else { throw E2EFailure("reference run: \(run)") }
            let done = spool.job("done", id)
            #expect(Files.list(done) == doneFiles)
            let report = try Files.json(done + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == good)
            #expect(JSON.int(report, "records.failed") == bad)
            #expect(JSON.int(report, "resumed") == 0)
            let results = try await scratch.gunzip(done + "/results.jsonl.gz")
            #expect(Files.lines(results).count == good)
            #expect(results.count > 2 << 20, "results should span several 1 MiB gzip segments")
            return Reference(id: id, manifest: manifest, good: good, bad: bad, done: done, report: report)
        }

        /// The resumed job's outputs are byte-identical to the reference's, its report says so.
        static func checkResumed(_ done: String, _ ref: Reference, scratch: Scratch, resumes: Int) async throws {
            #expect(Files.list(done) == doneFiles)
            for name in ["results.jsonl.gz", "errors.jsonl.gz"] {
                let resumedBytes = try Files.read(done + "/" + name),
                    referenceBytes = try Files.read(ref.done + "/" + name)
                #expect(
                    resumedBytes == referenceBytes,
                    "\(name): \(resumedBytes.count) bytes after resume, \(referenceBytes.count) uninterrupted; must be byte-identical"
                )
                #expect(
                    JSON.output(try Files.json(done + "/report.json"), name).sha256
                        == JSON.output(ref.report, name).sha256)
            }
            let report = try Files.json(done + "/report.json")
            #expect(
                (JSON.int(report, "resumed") ?? 0) >= resumes,
                "report.json resumed: \(String(describing: JSON.get(report, "resumed")))")
            #expect(JSON.int(report, "records.succeeded") == ref.good)
            #expect(JSON.int(report, "records.failed") == ref.bad)
            let errors = try await JSON.lines(scratch.gunzip(done + "/errors.jsonl.gz"), what: "errors")
            #expect(errors.count == ref.bad)
            #expect(errors.allSatisfy { ($0["code"] as? String) == "invalid_record" })
            let log = try Files.text(done + "/job.log")
            #expect(
                log.components(separatedBy: "\"resuming from checkpoint\"").count - 1 == resumes, "job.log:\n\(log)")
            #expect(log.components(separatedBy: "\"job started\"").count - 1 == 1, "job.log:\n\(log)")
        }

        /// A daemon killed by SIGKILL mid-job leaves nothing in done/; the next daemon
        /// resumes from checkpoint.json and publishes results and errors byte-identical to
        /// an uninterrupted run of the same manifest on another spool.
        @Test("kill -9 mid-job, resume, byte-identical outputs")
        func killAndResume() async throws {
            let scratch = try Scratch("crash")
            defer { scratch.remove() }
            let ref = try await Self.reference(scratch, id: "crash-job", repetitions: Self.repetitions)
            let id = ref.id, manifest = ref.manifest, good = ref.good, bad = ref.bad

            // The run that is killed: a checkpoint after every batch.
            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("\(id).json", manifest)
            let checkpointEveryBatch = ["QUERN_CHECKPOINT_SECONDS": "0"]
            let first = try scratch.startQuern(
                ["watch", spool.root] + rootArgs(scratch), env: checkpointEveryBatch, label: "watch-killed")
            let checkpointPath = spool.job("active", id) + "/checkpoint.json"
            var seenConsumed = 0
            try await E2E.waitUntil("checkpoint.json past \(Self.killAfter) records", timeout: 120, poll: 0.02) {
                guard first.isRunning else { throw E2EFailure("daemon exited before the kill: \(first.stderrTail)") }
                if !spool.jobs("done").isEmpty {
                    throw E2EFailure("done/ is not empty before the job could finish: \(spool.jobs("done"))")
                }
                guard let data = FileManager.default.contents(atPath: checkpointPath),
                    let o = try? JSON.object(data, what: "checkpoint"), let consumed = JSON.int(o, "consumed")
                else { return false }
                seenConsumed = consumed
                return consumed >= Self.killAfter
            }
            #expect(kill(first.pid, SIGKILL) == 0)
            let killed = try await first.wait(timeout: 20)
            #expect(killed.signaled && killed.status == SIGKILL, "first daemon: \(killed)")
            #expect(!Files.exists(spool.job("done", id)), "a killed job must not be in done/")
            #expect(spool.jobs("done").isEmpty)
            #expect(spool.jobs("active") == [id])
            let atKill = try Files.json(checkpointPath)
            let consumedAtKill = try #require(JSON.int(atKill, "consumed"))
            #expect(consumedAtKill >= seenConsumed && consumedAtKill > 0)
            #expect(consumedAtKill < good + bad, "the job was killed before its end")
            // `quern status` sees the orphan: still active, its owner dead.
            let status = try await scratch.quern(["status", spool.root, "--json"])
            #expect(status.status == 0)
            let active = try JSON.object(Data(status.stdout.utf8), what: "status")["active"] as? [[String: Any]] ?? []
            #expect(active.count == 1 && active.first?["id"] as? String == id, "status: \(status.stdout)")
            #expect(active.first?["alive"] as? Bool == false, "status after kill -9: \(status.stdout)")
            #expect((active.first?["pid"] as? NSNumber)?.int32Value == first.pid)

            // A new daemon adopts the orphan and resumes it. done/ stays empty until the job
            // appears there whole.
            let second = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch-resume")
            try await E2E.waitUntil("done/\(id) after the resume", timeout: 300, poll: 0.02) {
                guard second.isRunning else { throw E2EFailure("resuming daemon exited: \(second.stderrTail)") }
                let done = spool.jobs("done")
                if done.isEmpty { return false }
                if done != [id] { throw E2EFailure("unexpected entries in done/: \(done)") }
                let files = Files.list(spool.job("done", id))
                if files != doneFiles { throw E2EFailure("done/\(id) appeared partial: \(files)") }
                return true
            }
            second.signal(SIGTERM)
            let stopped = try await second.wait(timeout: 30)
            #expect(!stopped.signaled && stopped.status == 0, "resuming daemon after SIGTERM: \(stopped)")

            #expect(spool.jobs("active").isEmpty && spool.jobs("failed").isEmpty)
            try await Self.checkResumed(spool.job("done", id), ref, scratch: scratch, resumes: 1)
            #expect(second.stderr.contains("resuming orphaned job"))
        }

        /// SIGTERM mid-job: the daemon finishes its batch, checkpoints, exits 0 and leaves the
        /// job in active/; `run --once` later completes it byte-identically.
        @Test("SIGTERM mid-job checkpoints, exits 0; run --once resumes byte-identically")
        func terminateAndResume() async throws {
            let scratch = try Scratch("term")
            defer { scratch.remove() }
            let ref = try await Self.reference(scratch, id: "term-job", repetitions: 40)
            let id = ref.id

            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("\(id).json", ref.manifest)
            let daemon = try scratch.startQuern(
                ["watch", spool.root] + rootArgs(scratch),
                env: ["QUERN_CHECKPOINT_SECONDS": "0"], label: "watch-term")
            let checkpointPath = spool.job("active", id) + "/checkpoint.json"
            try await E2E.waitUntil("checkpoint.json past 3000 records", timeout: 120, poll: 0.02) {
                guard daemon.isRunning else { throw E2EFailure("daemon exited early: \(daemon.stderrTail)") }
                if !spool.jobs("done").isEmpty { throw E2EFailure("done/ is not empty before the job could finish") }
                guard let data = FileManager.default.contents(atPath: checkpointPath),
                    let o = try? JSON.object(data, what: "checkpoint"), let consumed = JSON.int(o, "consumed")
                else { return false }
                return consumed >= 3000
            }
            // While it runs, `quern status` shows the job alive under the daemon's pid.
            let status = try await scratch.quern(["status", spool.root, "--json"])
            let active = try JSON.object(Data(status.stdout.utf8), what: "status")["active"] as? [[String: Any]] ?? []
            #expect(active.first?["id"] as? String == id, "status: \(status.stdout)")
            #expect(active.first?["alive"] as? Bool == true, "status while running: \(status.stdout)")
            #expect((active.first?["pid"] as? NSNumber)?.int32Value == daemon.pid)

            daemon.signal(SIGTERM)
            let exit = try await daemon.wait(timeout: 30)
            #expect(!exit.signaled && exit.status == 0, "daemon after SIGTERM mid-job: \(exit)")
            #expect(spool.jobs("done").isEmpty, "a stopped job must not be published")
            #expect(spool.jobs("active") == [id])
            let checkpoint = try Files.json(checkpointPath)
            let consumed = try #require(JSON.int(checkpoint, "consumed"))
            #expect(consumed >= 3000 && consumed < ref.good + ref.bad)
            let log = try Files.text(spool.job("active", id) + "/job.log")
            #expect(log.contains("stopped by signal; checkpointed"), "job.log:\n\(log)")

            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            #expect(run.status == 0, "run --once after SIGTERM: \(run)")
            #expect(spool.jobs("active").isEmpty && spool.jobs("failed").isEmpty)
            try await Self.checkResumed(spool.job("done", id), ref, scratch: scratch, resumes: 1)
        }

        @Test("a row-per-chunk NPY embed job stopped mid-way resumes byte-identically, its rows numbered on")
        func chunkRowsResume() async throws {
            let scratch = try Scratch("chunk-resume")
            defer { scratch.remove() }
            // Texts of about 30 tokens: windows of 14 text tokens give each record 3 rows.
            let input = scratch.file("texts.jsonl")
            try Files.write(
                input,
                (0..<12_000).map {
                    #"{"id": "r\#($0)", "text": "record \#($0) is a text long enough to be cut into a few overlapping windows of tokens by the chunker"}"#
                }.joined(separator: "\n") + "\n")
            func manifest(_ id: String) throws -> Data {
                try JSON.encode([
                    "version": 1, "id": id, "task": "embed", "model": E2E.repoRoot + "/fixtures/models/tiny-bert",
                    "input": ["path": input, "id_field": "id"], "output": ["format": "npy"],
                    "embed": ["chunk": ["tokens": 16, "overlap": 4, "rows": "chunk"]]
                ])
            }
            let whole = try SpoolDir(scratch.file("whole"))
            try whole.drop("job.json", try manifest("job"))
            var r = try await scratch.quern(["run", "--once", whole.root] + rootArgs(scratch), timeout: 300)
            #expect(r.status == 0, "\(r)")

            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("job.json", try manifest("job"))
            let daemon = try scratch.startQuern(
                ["watch", spool.root] + rootArgs(scratch), env: ["QUERN_CHECKPOINT_SECONDS": "0"], label: "watch")
            let checkpointPath = spool.job("active", "job") + "/checkpoint.json"
            try await E2E.waitUntil("checkpoint.json past 2000 records", timeout: 120, poll: 0.02) {
                guard daemon.isRunning else { throw E2EFailure("daemon exited early: \(daemon.stderrTail)") }
                if !spool.jobs("done").isEmpty { throw E2EFailure("the job finished before it could be stopped") }
                guard let data = FileManager.default.contents(atPath: checkpointPath),
                    let o = try? JSON.object(data, what: "checkpoint"), let consumed = JSON.int(o, "consumed")
                else { return false }
                return consumed >= 2000
            }
            daemon.signal(SIGTERM)
            let exit = try await daemon.wait(timeout: 30)
            #expect(!exit.signaled && exit.status == 0, "\(exit)")
            let checkpoint = try Files.json(checkpointPath)
            #expect((JSON.int(checkpoint, "lines") ?? 0) > (JSON.int(checkpoint, "succeeded") ?? 0), "\(checkpoint)")
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            #expect(r.status == 0 && spool.jobs("done") == ["job"], "\(r)")
            for name in ["results.jsonl.gz", "results.npy.gz"] {
                let a = try await scratch.gunzip(whole.job("done", "job") + "/" + name)
                let b = try await scratch.gunzip(spool.job("done", "job") + "/" + name)
                #expect(a == b && !a.isEmpty, "\(name) differs after the resume")
            }
            let report = try Files.json(spool.job("done", "job") + "/report.json")
            #expect(JSON.int(report, "resumed") == 1 && JSON.int(report, "records.succeeded") == 12_000)
            #expect(JSON.int(report, "records.result_lines") ?? 0 >= 36_000, "\(report)")
        }
    }
}
