import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A real single-node Slurm (munged, slurmctld, slurmd) in a test's scratch directory,
/// started by `scripts/local-slurm.sh`. `scripts/setup.sh` installs the packages; without
/// them the tests fail, unless QUERN_SKIP_SLURM=1 says this machine cannot have them.
final class LocalSlurm: @unchecked Sendable {
    let dir: String
    let conf: String
    var env: [String: String] { ["SLURM_CONF": conf] }

    static var skipped: Bool { ProcessInfo.processInfo.environment["QUERN_SKIP_SLURM"] == "1" }

    private init(dir: String) {
        self.dir = dir
        conf = dir + "/slurm.conf"
    }

    static func up(_ scratch: Scratch) async throws -> LocalSlurm {
        let s = LocalSlurm(dir: scratch.file("slurm"))
        let r: RunResult
        do {
            r = try await scratch.run(
                "/bin/bash", [E2E.repoRoot + "/scripts/local-slurm.sh", "up", s.dir], timeout: 60, label: "slurm-up")
        } catch {
            s.down()
            throw error
        }
        guard r.status == 0 else { throw E2EFailure("local Slurm did not start: \(r)") }
        return s
    }

    /// Synchronous, for `defer`: stops the daemons whatever the test did.
    func down() {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [E2E.repoRoot + "/scripts/local-slurm.sh", "down", dir]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
    }

    /// `scontrol ARGS` (or another Slurm command); its output.
    func command(_ scratch: Scratch, _ tool: String, _ args: [String]) async throws -> RunResult {
        try await scratch.run("/usr/bin/env", [tool] + args, env: env, timeout: 30, label: tool)
    }

    /// `JobState=…` of one job (`12` or array task `12_3`).
    func state(_ scratch: Scratch, _ job: String) async throws -> String {
        let r = try await command(scratch, "scontrol", ["show", "job", "-o", job])
        return r.stdout.split(separator: " ").first { $0.hasPrefix("JobState=") }.map { String($0.dropFirst(9)) } ?? "?"
    }

    /// The state of `job` once it is no longer RUNNING or COMPLETING (the merge publishes
    /// its result a moment before its process ends), or its last state after 30 s.
    func finalState(_ scratch: Scratch, _ job: String) async throws -> String {
        var state = ""
        for _ in 0..<150 {
            state = try await self.state(scratch, job)
            if !["RUNNING", "COMPLETING", "PENDING", "?"].contains(state) { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return state
    }

    /// Waits for `path` (the merged job in done/ or failed/), moving any requeued task past
    /// the two minutes Slurm holds a requeued job back (`StartTime=now`).
    func waitFor(_ scratch: Scratch, _ paths: [String], arrayJob: String? = nil, tasks: Int = 0, timeout: Double = 240)
        async throws
    {
        let deadline = E2E.now() + timeout
        while !paths.contains(where: Files.exists) {
            if E2E.now() > deadline {
                let q = try await command(scratch, "squeue", ["-r", "-o", "%i %T %r"])
                throw E2EFailure("timed out after \(timeout) s waiting for \(paths); queue:\n\(q.stdout)")
            }
            if let arrayJob {
                for i in 0..<tasks where try await state(scratch, "\(arrayJob)_\(i)") == "PENDING" {
                    _ = try await command(scratch, "scontrol", ["update", "JobId=\(arrayJob)_\(i)", "StartTime=now"])
                }
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }
}

extension EndToEnd {
    /// `quern slurm submit` and `quern watch --executor slurm` against a real Slurm.
    @Suite("slurm", .disabled(if: LocalSlurm.skipped, "QUERN_SKIP_SLURM=1"))
    struct SlurmJobs {
        /// JSONL texts for tiny-bert, one bad line at `bad` (no text).
        static func texts(_ path: String, count: Int, bad: Int? = nil) throws {
            var lines: [String] = []
            lines.reserveCapacity(count)
            for i in 0..<count {
                lines.append(
                    i == bad
                        ? #"{"id": "t\#(i)"}"#
                        : #"{"id": "t\#(i)", "text": "package \#(i) provides tools and libraries for the system, release \#(i % 97)"}"#
                )
            }
            try Files.write(path, lines.joined(separator: "\n") + "\n")
        }

        static func embedManifest(id: String, input: String, _ extra: [String: Any] = [:]) -> [String: Any] {
            var m: [String: Any] = [
                "version": 1, "id": id, "task": "embed", "model": E2E.repoRoot + "/fixtures/models/tiny-bert",
                "input": ["path": input, "id_field": "id", "text_field": "text"]
            ]
            for (k, v) in extra { m[k] = v }
            return m
        }

        /// Runs `manifest` whole with `run --once` on its own spool; returns done/ID.
        static func runWhole(_ scratch: Scratch, _ manifest: [String: Any]) async throws -> String {
            let spool = try SpoolDir(scratch.file("whole"))
            let id = manifest["id"] as! String
            try spool.drop(id + ".json", try JSON.encode(manifest))
            let r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            #expect(r.status == 0, "run --once: \(r)")
            return spool.job("done", id)
        }

        /// `quern slurm submit`: its printed job directory and Slurm ids.
        static func submit(
            _ scratch: Scratch, _ slurm: LocalSlurm, _ manifest: [String: Any], spool: SpoolDir, tasks: Int,
            env: [String: String] = [:]
        ) async throws -> (dir: String, array: String, merge: String) {
            let path = scratch.file((manifest["id"] as! String) + ".json")
            try Files.write(path, try JSON.encode(manifest))
            let r = try await scratch.quern(
                ["slurm", "submit", path, spool.root, "--tasks", "\(tasks)"] + rootArgs(scratch),
                env: slurm.env.merging(env) { $1 })
            guard r.status == 0, let o = try? JSON.object(Data(r.stdout.utf8), what: "submit"),
                let dir = o["job_dir"] as? String, let a = o["array_job_id"] as? String,
                let m = o["merge_job_id"] as? String
            else {
                throw E2EFailure("slurm submit: \(r)")
            }
            return (dir, a, m)
        }

        @Test("embed as a 4-task Slurm array and an afterok merge equals the job run whole; status shows the Slurm ids")
        func arrayEqualsWholeRun() async throws {
            let scratch = try Scratch("slurm")
            defer { scratch.remove() }
            let slurm = try await LocalSlurm.up(scratch)
            defer { slurm.down() }
            try Self.texts(scratch.file("texts.jsonl"), count: 2000, bad: 1234)
            let manifest = Self.embedManifest(id: "emb", input: scratch.file("texts.jsonl"))
            let whole = try await Self.runWhole(scratch, manifest)

            let spool = try SpoolDir(scratch.file("spool"))
            let job = try await Self.submit(scratch, slurm, manifest, spool: spool, tasks: 4)
            #expect(job.dir == spool.job("cluster", "emb"))
            let status = try await scratch.quern(["status", spool.root, "--json"], env: slurm.env)
            if let cluster = (try JSON.object(Data(status.stdout.utf8), what: "status")["cluster"] as? [[String: Any]])?
                .first
            {
                #expect(JSON.string(cluster, "slurm.array_job_id") == job.array, "\(status)")
                #expect(JSON.string(cluster, "slurm.merge_job_id") == job.merge, "\(status)")
            }  // else the whole job was already merged: possible on a fast machine
            try await slurm.waitFor(scratch, [spool.job("done", "emb"), spool.job("failed", "emb")])
            let done = spool.job("done", "emb")
            for name in ["results.jsonl.gz", "errors.jsonl.gz"] {
                let a = try await scratch.gunzip(whole + "/" + name), b = try await scratch.gunzip(done + "/" + name)
                #expect(a == b, "\(name) differs from the single-node run")
            }
            let report = try Files.json(done + "/report.json"), reference = try Files.json(whole + "/report.json")
            for key in ["records.read", "records.succeeded", "records.failed"] {
                #expect(JSON.int(report, key) == JSON.int(reference, key), "\(key)")
            }
            #expect(JSON.int(report, "records.failed") == 1)
            #expect(JSON.int(report, "shards.count") == 4)
            #expect(JSON.string(report, "shards.mode") == "records")
            let submission = try Files.json(done + "/slurm/submission.json")
            #expect(
                submission["array_job_id"] as? String == job.array && submission["merge_job_id"] as? String == job.merge
            )
            for i in 0..<4 {
                #expect(try Files.text(done + "/slurm/shard-\(i).log").contains("shard \(i) of 4"), "shard \(i) log")
            }
            #expect(try await slurm.finalState(scratch, job.merge) == "COMPLETED")
        }

        @Test(
            "one task killed with SIGKILL (it requeues itself) and one requeued by scontrol: the merge equals the job run whole"
        )
        func killedAndRequeuedTasks() async throws {
            let scratch = try Scratch("slurm-requeue")
            defer { scratch.remove() }
            let slurm = try await LocalSlurm.up(scratch)
            defer { slurm.down() }
            try Self.texts(scratch.file("texts.jsonl"), count: 64_000)
            let manifest = Self.embedManifest(id: "big", input: scratch.file("texts.jsonl"))
            let whole = try await Self.runWhole(scratch, manifest)

            let spool = try SpoolDir(scratch.file("spool"))
            let job = try await Self.submit(
                scratch, slurm, manifest, spool: spool, tasks: 4, env: ["QUERN_CHECKPOINT_SECONDS": "0.2"])
            // Shards 0 and 1 run first (one CPU each on this 2-CPU node): once each has a
            // checkpoint, kill shard 1's quern outright and have Slurm requeue shard 0.
            func active(_ shard: Int) -> String { job.dir + "/shards/part-0000\(shard)-of-00004/active/big" }
            try await E2E.waitUntil("checkpoints of shards 0 and 1", timeout: 120) {
                Files.exists(active(0) + "/checkpoint.json") && Files.exists(active(1) + "/checkpoint.json")
            }
            let lease = try Files.json(active(1) + "/lease.json")
            let pid = try #require(lease["pid"] as? Int)
            #expect(kill(pid_t(pid), SIGKILL) == 0)
            let requeue = try await slurm.command(scratch, "scontrol", ["requeue", "\(job.array)_0"])
            #expect(requeue.status == 0, "\(requeue)")

            try await slurm.waitFor(
                scratch, [spool.job("done", "big"), spool.job("failed", "big")], arrayJob: job.array, tasks: 4)
            let done = spool.job("done", "big")
            #expect(Files.exists(done), "the merge failed: \(Files.list(spool.dir("failed")))")
            for name in ["results.jsonl.gz", "errors.jsonl.gz"] {
                let a = try await scratch.gunzip(whole + "/" + name), b = try await scratch.gunzip(done + "/" + name)
                #expect(a == b, "\(name) differs from the single-node run")
            }
            let report = try Files.json(done + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == 64_000)
            let parts = try #require(JSON.get(report, "shards.parts") as? [[String: Any]])
            #expect(
                parts.map { $0["resumed"] as? Int ?? 0 }[0...1] == [1, 1],
                "shards 0 and 1 resumed from their checkpoints")
            let log1 = try Files.text(done + "/slurm/shard-1.log")
            #expect(log1.contains("requeueing, restart 1 of 3") && log1.contains("attempt 2"), "\(log1)")
            #expect(try Files.text(done + "/slurm/shard-0.log").contains("attempt 2"))
        }

        @Test(
            "a task cancelled by scancel cancels the afterok merge; slurm resume runs only that shard again and a merge"
        )
        func cancelledTaskAndResume() async throws {
            let scratch = try Scratch("slurm-resume")
            defer { scratch.remove() }
            let slurm = try await LocalSlurm.up(scratch)
            defer { slurm.down() }
            try Self.texts(scratch.file("texts.jsonl"), count: 1000)
            let manifest = Self.embedManifest(id: "res", input: scratch.file("texts.jsonl"))
            let whole = try await Self.runWhole(scratch, manifest)
            let spool = try SpoolDir(scratch.file("spool"))
            // Held back ten minutes, so that task 2 can be cancelled before it starts.
            let path = scratch.file("res.json")
            try Files.write(path, try JSON.encode(manifest))
            let submitted = try await scratch.quern(
                ["slurm", "submit", path, spool.root, "--tasks", "4", "--sbatch-arg=--begin=now+600"]
                    + rootArgs(scratch), env: slurm.env)
            let first = try JSON.object(Data(submitted.stdout.utf8), what: "submit")
            let array = try #require(first["array_job_id"] as? String),
                merge = try #require(first["merge_job_id"] as? String)
            #expect(try await slurm.command(scratch, "scancel", ["\(array)_2"]).status == 0)
            #expect(
                try await slurm.command(scratch, "scontrol", ["update", "JobId=\(array)", "StartTime=now"]).status == 0)
            try await E2E.waitUntil("parts 0, 1 and 3 committed", timeout: 60, poll: 0.2) {
                Files.list(spool.job("cluster", "res") + "/parts").count == 3
            }
            #expect(try await slurm.finalState(scratch, merge) == "CANCELLED")
            #expect(!Files.exists(spool.job("done", "res")))
            let status = try await scratch.quern(["status", spool.root], env: slurm.env)
            #expect(
                status.stdout.contains("3/4 committed") && status.stdout.contains("shard 2: not started"), "\(status)")

            let resumed = try await scratch.quern(["slurm", "resume", "res", spool.root], env: slurm.env)
            let again = try JSON.object(Data(resumed.stdout.utf8), what: "resume")
            let array2 = try #require(again["array_job_id"] as? String),
                merge2 = try #require(again["merge_job_id"] as? String)
            #expect(array2 != array && merge2 != merge)
            for job in [array2, merge2] {
                _ = try await slurm.command(scratch, "scontrol", ["update", "JobId=\(job)", "StartTime=now"])
            }
            try await slurm.waitFor(scratch, [spool.job("done", "res"), spool.job("failed", "res")])
            let done = spool.job("done", "res")
            for name in ["results.jsonl.gz", "errors.jsonl.gz"] {
                let a = try await scratch.gunzip(whole + "/" + name), b = try await scratch.gunzip(done + "/" + name)
                #expect(a == b, "\(name) differs from the single-node run")
            }
            // Only shard 2 ran twice: once cancelled before it started, once now.
            #expect(try Files.text(done + "/slurm/shard-2.log").contains("attempt 1"))
            #expect(try Files.text(done + "/slurm/shard-0.log").components(separatedBy: "attempt").count == 2)
        }

        @Test(
            "a shard that fails for good is not requeued; the merge fails the job naming it and keeps the other parts")
        func permanentFailure() async throws {
            let scratch = try Scratch("slurm-fail")
            defer { scratch.remove() }
            let slurm = try await LocalSlurm.up(scratch)
            defer { slurm.down() }
            // Record 90 has no text and max_errors is 0: shard 2 of 4 (records 80..<120) fails.
            try Self.texts(scratch.file("texts.jsonl"), count: 160, bad: 90)
            let manifest = Self.embedManifest(
                id: "bad", input: scratch.file("texts.jsonl"), ["limits": ["max_errors": 0]])
            let spool = try SpoolDir(scratch.file("spool"))
            let job = try await Self.submit(scratch, slurm, manifest, spool: spool, tasks: 4)
            try await slurm.waitFor(scratch, [spool.job("done", "bad"), spool.job("failed", "bad")])
            let failed = spool.job("failed", "bad")
            let error = try Files.json(failed + "/error.json")
            let message = error["message"] as? String ?? ""
            #expect(
                message.contains("shard 2/4 failed (too_many_errors)") && message.contains("other parts are kept"),
                "\(error)")
            #expect(
                Files.list(failed + "/parts") == ["part-00000-of-00004", "part-00001-of-00004", "part-00003-of-00004"])
            #expect(try Files.text(failed + "/slurm/shard-2.log").contains("failed for good (exit 65); not requeued"))
            #expect(try await slurm.finalState(scratch, job.merge) == "FAILED")
            #expect(try Files.text(failed + "/slurm/shard-2.log").contains("attempt 2") == false)
        }

        @Test(
            "watch --executor slurm: dropped jobs run as arrays and land in done/; finetune runs as one task; a bad manifest fails at once"
        )
        func spoolOnSlurm() async throws {
            let scratch = try Scratch("slurm-watch")
            defer { scratch.remove() }
            let slurm = try await LocalSlurm.up(scratch)
            defer { slurm.down() }
            let spool = try SpoolDir(scratch.file("spool"))
            let daemon = try scratch.startQuern(
                ["watch", spool.root, "--executor", "slurm", "--tasks", "3", "--rescan", "0.2"]
                    + rootArgs(scratch), env: slurm.env)
            try spool.drop(
                "pred.json",
                try JSON.encode(Manifests.predict(id: "pred", input: E2E.digitsJSONL, input: ["id_field": "id"])))
            var ft = try JSON.object(Files.read(E2E.repoRoot + "/jobs/finetune-digits-mlp.json"), what: "finetune")
            ft["id"] = "ft"
            ft["model"] = E2E.repoRoot + "/" + (ft["model"] as! String)
            var input = ft["input"] as! [String: Any]
            input["path"] = E2E.repoRoot + "/" + (input["path"] as! String)
            ft["input"] = input
            ft["train"] = ["epochs": 3, "seed": 1]
            try spool.drop("ft.json", try JSON.encode(ft))
            try spool.drop("broken.json", Data("{\"version\": 1, \"task\": ".utf8))

            try await slurm.waitFor(scratch, [spool.job("failed", "broken")], timeout: 30)
            try await slurm.waitFor(scratch, [spool.job("done", "pred")], timeout: 120)
            try await slurm.waitFor(scratch, [spool.job("done", "ft")], timeout: 300)
            let pred = spool.job("done", "pred")
            let results = try await JSON.lines(scratch.gunzip(pred + "/results.jsonl.gz"), what: "results")
            let expected = try JSON.lines(Files.read(E2E.expectedJSONL), what: "expected")
            let same =
                results.count == 450 && results.map { $0["id"] as? String } == expected.map { $0["id"] as? String }
                && results.map { $0["label"] as? String } == expected.map { $0["label"] as? String }
            #expect(same, "predict on Slurm: ids and labels differ from digits-test.expected.jsonl")
            #expect(JSON.int(try Files.json(pred + "/report.json"), "shards.count") == 3)
            let ftDone = spool.job("done", "ft")
            #expect(Files.exists(ftDone + "/model/model.safetensors"), "\(Files.list(ftDone))")
            #expect(JSON.int(try Files.json(ftDone + "/report.json"), "shards.count") == 1)
            #expect(try Files.text(ftDone + "/slurm/array.sbatch").contains("--array=0-0"))
            #expect(Files.exists(spool.job("failed", "broken") + "/error.json"))
            daemon.signal(SIGTERM)
            #expect(try await daemon.wait(timeout: 30).status == 0)
        }
    }
}
