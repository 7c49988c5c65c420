import Foundation
import QuernCore
import QuernTestSupport
import Testing

@testable import QuernSpool

@Suite("Daemon")
struct DaemonTests {
    @Test("a manifest that cannot run goes to failed/ as received, with error.json; the jobs after it still run")
    func badManifestToFailed() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let clock = ManualTime()
        let spool = try Spool(root: tmp.path + "/s", time: clock)
        let bad = Array(
            #"{"version": 1, "task": "predict", "colour": "blue", "model": "m", "input": {"path": "x.csv"}}"#.utf8)
        _ = try spool.submit(bad, name: "a-bad.json")
        _ = try spool.submit(digitsPredict(id: "b-good"), name: "b-good.json")
        let daemon = Daemon(spool: spool, roots: [repoRoot], time: clock)
        #expect(try daemon.drain())
        #expect((daemon.failed, daemon.succeeded) == (1, 1))
        let failed = spool.path(.failed, "a-bad")
        #expect(try Sys.readFile(failed + "/manifest.json") == bad, "the manifest exactly as received")
        let error = try #require(try JSONParser.parse(Sys.readFile(failed + "/error.json")).objectValue)
        #expect(error["code"]?.stringValue == "unknown_key" && error["field"]?.stringValue == "colour")
        #expect(error["failed_at"]?.stringValue == Timestamp.iso8601(clock.now()))
        #expect(Sys.exists(spool.path(.done, "b-good") + "/results.jsonl.gz"))
        #expect(try spool.pending().isEmpty && spool.jobs(.active).isEmpty)
    }

    @Test("orphaned active jobs and claims of a dead daemon are adopted and finished")
    func adoptsOrphans() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        do {
            // A daemon that died holding an active job, and one that died holding a claim.
            _ = try activeJob(spool, digitsPredict(id: "active"), id: "active")
            _ = try spool.submit(digitsPredict(id: "claimed"), name: "claimed.json")
            _ = try #require(try spool.claim("claimed.json"))
        }
        #expect(try spool.jobs(.active) == ["active"] && spool.pending().isEmpty)
        let daemon = Daemon(spool: spool, roots: [repoRoot])
        #expect(try daemon.drain())
        #expect(daemon.succeeded == 2 && daemon.failed == 0)
        #expect(try spool.jobs(.done).sorted() == ["active", "claimed"])
        #expect(try spool.jobs(.active).isEmpty)
        #expect(try Sys.listDirectory(spool.tmp).filter { $0.hasPrefix("claim.") }.isEmpty)
    }
}
