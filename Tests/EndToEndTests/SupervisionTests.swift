import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// Each job runs in a child process the daemon supervises: a job that keeps dying
    /// ends in failed/ with `crashed`, one over its memory or time ends with
    /// `memory_limit` / `time_limit`, and the jobs behind them run.
    @Suite("supervised jobs")
    struct SupervisionTests {
        /// A training manifest from jobs/ with absolute paths and overrides.
        static func training(
            _ name: String, id: String, model: String? = nil, limits: [String: Any],
            train: [String: Any] = [:]
        ) throws -> Data {
            var m = try JSON.object(Files.read(E2E.repoRoot + "/jobs/\(name).json"), what: name)
            m["id"] = id
            m["model"] = model ?? E2E.repoRoot + "/" + (m["model"] as! String)
            var input = m["input"] as! [String: Any]
            input["path"] = E2E.repoRoot + "/" + (input["path"] as! String)
            m["input"] = input
            var t = m["train"] as? [String: Any] ?? [:]
            for (k, v) in train { t[k] = v }
            m["train"] = t
            m["limits"] = limits
            return try JSON.encode(m)
        }

        /// The job's worker process, from its lease, once it is a new one (not `after`).
        static func worker(_ spool: SpoolDir, _ id: String, after: Int32?) async throws -> Int32 {
            var pid: Int32 = 0
            try await E2E.waitUntil("a new worker process for \(id)", timeout: 60, poll: 0.01) {
                guard let lease = try? Files.json(spool.job("active", id) + "/lease.json"),
                    let p = (lease["worker_pid"] as? NSNumber)?.int32Value, p != after, kill(p, 0) == 0
                else { return false }
                pid = p
                return true
            }
            return pid
        }

        @Test("a job whose process is killed on each of its 3 attempts fails with crashed; the job behind it is done")
        func crashingJob() async throws {
            let scratch = try Scratch("crashed")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop(
                "a-poison.json",
                try Self.training(
                    "finetune-digits-mlp-wide", id: "a-poison", limits: ["max_attempts": 3],
                    train: ["epochs": 400]))
            try spool.drop(
                "b-good.json",
                try Manifests.bytes(
                    Manifests.predict(id: "b-good", input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"])))
            let daemon = try scratch.startQuern(["run", "--once", spool.root] + rootArgs(scratch))
            var last: Int32?
            for _ in 0..<3 {
                let pid = try await Self.worker(spool, "a-poison", after: last)
                #expect(kill(pid, SIGKILL) == 0)
                last = pid
            }
            let exit = try await daemon.wait(timeout: 120)
            #expect(exit.status == 1, "a job failed: \(exit)")
            #expect(spool.jobs("done") == ["b-good"])
            let error = try Files.json(spool.job("failed", "a-poison") + "/error.json")
            #expect(JSON.string(error, "code") == "crashed")
            #expect((JSON.string(error, "message") ?? "").contains("SIGKILL"), "\(error)")
            let attempts = try Files.json(spool.job("failed", "a-poison") + "/attempts.json")
            #expect(JSON.int(attempts, "attempts") == 3 && JSON.int(attempts, "crashes") == 3)
        }

        @Test(
            "a job over limits.max_memory_mb fails with memory_limit; over limits.max_seconds with time_limit, its partial outputs kept"
        )
        func limits() async throws {
            let scratch = try Scratch("limits")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // 64 → 16384 → 16384 → 10: a gigabyte of weights, in 768 MiB.
            try Files.write(
                scratch.file("big/config.json"),
                #"{"model_type": "mlp", "input_size": 64, "layers": [{"out_features": 16384, "activation": "relu"}, {"out_features": 16384, "activation": "relu"}, {"out_features": 10}]}"#
            )
            try spool.drop(
                "big.json",
                try Self.training(
                    "finetune-digits-mlp", id: "big", model: scratch.file("big"),
                    limits: ["max_memory_mb": 768]))
            try spool.drop(
                "slow.json",
                try Self.training(
                    "finetune-digits-mlp-wide", id: "slow", limits: ["max_seconds": 1],
                    train: ["epochs": 1000]))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 120)
            #expect(run.status == 1, "\(run)")
            let memory = try Files.json(spool.job("failed", "big") + "/error.json")
            #expect(JSON.string(memory, "code") == "memory_limit", "\(memory)")
            let slow = try Files.json(spool.job("failed", "slow") + "/error.json")
            #expect(JSON.string(slow, "code") == "time_limit", "\(slow)")
            #expect(Files.exists(spool.job("failed", "slow") + "/training.checkpoint"), "the checkpoint is kept")
        }
    }
}

extension EndToEnd.SupervisionTests {
    /// A spool on a tmpfs too small for the job's results: the job stops at its last
    /// checkpoint (nothing published, nothing failed) and `run --once` exits 75; once the
    /// file system has room, the next run resumes it to outputs byte-identical to an
    /// uninterrupted run's. Needs root, to mount the tmpfs (CI runs as root).
    @Test("disk full pauses the job; with room again it finishes byte-identical", .enabled(if: getuid() == 0))
    func diskFull() async throws {
        let scratch = try Scratch("disk-full")
        defer { scratch.remove() }
        let ref = try await EndToEnd.CrashTests.reference(scratch, id: "full", repetitions: 40)
        let mountPoint = scratch.file("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try await scratch.sh("mount -t tmpfs -o size=1m tmpfs '\(mountPoint)'")
        defer {
            _ = try? Process.run(URL(fileURLWithPath: "/bin/umount"), arguments: ["-l", mountPoint]).waitUntilExit()
        }
        let spool = try SpoolDir(mountPoint + "/spool")
        try spool.drop("full.json", ref.manifest)
        let args = ["run", "--once", spool.root, "--min-free-mb", "0"] + rootArgs(scratch)
        let env = ["QUERN_CHECKPOINT_SECONDS": "0"]
        let first = try await scratch.quern(args, env: env, timeout: 300)
        #expect(first.status == 75, "a paused job: try again later; \(first)")
        #expect(spool.jobs("active") == ["full"] && spool.jobs("done").isEmpty && spool.jobs("failed").isEmpty)
        #expect(Files.exists(spool.job("active", "full") + "/checkpoint.json"))
        #expect(first.stderr.contains("disk is full"))

        try await scratch.sh("mount -o remount,size=64m '\(mountPoint)'")
        let second = try await scratch.quern(args, env: env, timeout: 300)
        #expect(second.status == 0, "\(second)")
        try await EndToEnd.CrashTests.checkResumed(spool.job("done", "full"), ref, scratch: scratch, resumes: 1)
    }
}
