import Foundation
import QuernCore
import QuernTasks
import QuernTestSupport
import Testing

@testable import QuernData
@testable import QuernSpool

/// A predict job on the digits fixture (450 records), in batches of 16 so it makes many
/// checkpoints.
func digitsPredict(id: String) -> [UInt8] {
    JSONWriter.pretty([
        "version": 1, "id": .string(id), "task": "predict", "batch_size": 16,
        "model": .string(repoRoot + "/fixtures/models/digits-mlp"),
        "input": ["path": .string(repoRoot + "/fixtures/data/digits-test.csv"), "id_field": "id"]
    ])
}

/// Submits, claims and activates one manifest: the job as a daemon would hold it.
func activeJob(_ spool: Spool, _ bytes: [UInt8], id: String) throws -> ActiveJob {
    _ = try spool.submit(bytes, name: id + ".json")
    return try spool.activate(try #require(try spool.claim(id + ".json")), id: id)
}

func gunzip(_ path: String) throws -> [UInt8] { try Zlib.gunzip(Sys.readFile(path, limit: 1 << 30)) }

@Suite("JobRunner")
struct RunnerTests {
    @Test("a job stopped after a checkpoint is resumed by the next owner and publishes what an uninterrupted run does")
    func resumesFromACheckpoint() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let clock = ManualTime()
        let policy = { (spool: Spool) in PathPolicy(base: spool.root, roots: [repoRoot]) }

        let reference = try Spool(root: tmp.path + "/reference", time: clock)
        let straight = JobRunner(spool: reference, policy: policy(reference), time: clock)
        #expect(
            straight.run(try activeJob(reference, digitsPredict(id: "p"), id: "p")) == .done(reference.path(.done, "p"))
        )

        let spool = try Spool(root: tmp.path + "/spool", time: clock)
        do {
            let job = try activeJob(spool, digitsPredict(id: "p"), id: "p")
            let runner = JobRunner(spool: spool, policy: policy(spool), time: clock)
            runner.checkpointInterval = 0
            var asked = 0
            runner.shouldStop = {
                asked += 1; return asked > 200
            }
            #expect(runner.run(job) == .interrupted)
            #expect(Sys.exists(job.file("checkpoint.json")))
            let checkpoint = try #require(try JSONParser.parse(Sys.readFile(job.file("checkpoint.json"))).objectValue)
            #expect(checkpoint["consumed"]?.intValue == 200, "the batch in hand is finished, then checkpointed")
        }
        // That owner is gone, and its lock with it: the next one adopts the job.
        let adopted = try spool.adoptOrphans()
        #expect(adopted.map(\.id) == ["p"])
        clock.advance(5)
        let outcome = JobRunner(spool: spool, policy: policy(spool), time: clock).run(adopted[0])
        #expect(outcome == .done(spool.path(.done, "p")))

        for name in ["results.jsonl.gz", "errors.jsonl.gz"] {
            #expect(
                try gunzip(spool.path(.done, "p") + "/" + name) == gunzip(reference.path(.done, "p") + "/" + name),
                "\(name)")
        }
        let report = try #require(
            try JSONParser.parse(Sys.readFile(spool.path(.done, "p") + "/report.json")).objectValue)
        #expect(report["resumed"]?.intValue == 1)
        #expect(report["records"]?.objectValue?["succeeded"]?.intValue == 450)
        // Timings come from the injected clock: the resumed run started 5 s after the first.
        let timings = try #require(report["timings"]?.objectValue)
        #expect(timings["started_at"]?.stringValue == Timestamp.iso8601(clock.now()))
        #expect(timings["wall_seconds"]?.doubleValue == 0)
        #expect(report.keys.prefix(7) == ["id", "task", "status", "model", "precision", "input", "records"])
    }

    @Test("a job that cannot run goes to failed/ with error.json naming the field, keeping its log")
    func failsWithAnErrorNamingTheField() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        var manifest = try #require(try JSONParser.parse(digitsPredict(id: "bad")).objectValue)
        manifest["model"] = .string(tmp.path + "/no-such-model")
        let job = try activeJob(spool, JSONWriter.pretty(.object(manifest)), id: "bad")
        guard
            case .failed(let dir, let e) = JobRunner(
                spool: spool, policy: PathPolicy(base: spool.root, roots: [repoRoot, tmp.path])
            ).run(job)
        else { Issue.record("the job did not fail"); return }
        #expect(e.field == "model" && e.code == .fileNotFound)
        #expect(dir == spool.path(.failed, "bad"))
        #expect(Set(try Sys.listDirectory(dir)) == ["manifest.json", "job.log", "error.json"])
    }
    @Test("an input.path that is missing or not a regular file fails naming the field and what the path is")
    func inputThatIsNotAFile() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        try Sys.mkdir(tmp.path + "/data.csv")
        let policy = PathPolicy(base: spool.root, roots: [repoRoot, tmp.path])
        for (name, path, code, words) in [
            ("dir", tmp.path + "/data.csv", QuernError.Code.notARegularFile, "is a directory"),
            ("gone", tmp.path + "/none.csv", QuernError.Code.fileNotFound, "does not exist")
        ] {
            var manifest = try #require(try JSONParser.parse(digitsPredict(id: name)).objectValue)
            var input = try #require(manifest["input"]?.objectValue)
            input["path"] = .string(path)
            manifest["input"] = .object(input)
            let job = try activeJob(spool, JSONWriter.pretty(.object(manifest)), id: name)
            guard case .failed(_, let e) = JobRunner(spool: spool, policy: policy).run(job) else {
                Issue.record("\(name): the job did not fail")
                continue
            }
            #expect(e.field == "input.path" && e.code == code, "\(name): \(e)")
            #expect(e.message.contains(words) && e.message.contains(path), "\(name): \(e.message)")
        }
    }
}
