import Foundation
import QuernCore
import QuernSpool
import QuernTestSupport
import Testing

let sampleManifest = Array(#"{"version": 1, "task": "predict", "model": "m", "input": {"path": "x.csv"}}"#.utf8)

func names(_ dir: String) throws -> [String] { try Sys.listDirectory(dir) }

@Suite("Spool transitions")
struct SpoolTests {
    @Test func creatingASpoolMakesItsDirectories() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        #expect(spool.root == tmp.path + "/s")
        for d in ["incoming", "active", "done", "failed", "tmp"] { #expect(Sys.isDirectory(tmp.path + "/s/" + d)) }
        _ = try Spool(root: tmp.path + "/s")  // again: existing directories are fine
    }

    @Test func submitPublishesAndNeverReplaces() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        let target = try spool.submit(sampleManifest, name: "job-1.json")
        #expect(target == spool.directory(.incoming) + "/job-1.json")
        #expect(try Sys.readFile(target) == sampleManifest)
        let e = quernError { _ = try spool.submit(Array("{}".utf8), name: "job-1.json") }
        #expect(e?.code == .duplicateID)
        #expect(try Sys.readFile(target) == sampleManifest, "the waiting manifest is untouched")
        #expect(try names(spool.tmp).isEmpty, "no staged file is left behind")
        #expect(try spool.pending() == ["job-1.json"])
    }

    @Test func pendingIgnoresDotFilesAndOtherNames() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        for n in ["b.json", ".partial.json", "a.json", "notes.txt", "c.json.tmp"] {
            try Sys.writeFile(spool.directory(.incoming) + "/" + n, sampleManifest)
        }
        #expect(try spool.pending() == ["a.json", "b.json"])
    }

    @Test func claimingAMissingFileReturnsNil() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        #expect(try spool.claim("nope.json") == nil)
        #expect(try names(spool.tmp).isEmpty, "the claim directory is removed again")
    }

    @Test func twoClaimsOfTheSameNameOnlyOneWins() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "j.json")
        let first = try spool.claim("j.json")
        let second = try spool.claim("j.json")
        let claim = try #require(first)
        #expect(second == nil)
        #expect(claim.sourceName == "j.json")
        #expect(try Sys.readFile(claim.manifestPath) == sampleManifest)
        #expect(try spool.pending().isEmpty)
        #expect(Path.dirname(claim.dir) == spool.tmp)
        #expect(Set(try names(claim.dir)) == ["lease.lock", "lease.json", "manifest.json"])
        let lease = try #require(try JSONParser.parse(Sys.readFile(claim.dir + "/lease.json")).objectValue)
        #expect(lease["pid"]?.intValue == Int64(Sys.pid))
        #expect(lease["host"]?.stringValue == Sys.hostname)
    }

    @Test
    func concurrentClaimersOnlyOneWinsEachManifest() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let a = try Spool(root: tmp.path + "/s")
        let b = try Spool(root: tmp.path + "/s")
        let n = 50
        for i in 0..<n { _ = try a.submit(sampleManifest, name: "j\(i).json") }
        final class Results: @unchecked Sendable {
            var won = [[Bool]](repeating: [false, false], count: 50)
            var errors: [String] = []
            var claims: [Claim] = []
            let lock = NSLock()
        }
        let results = Results()
        let spools = [a, b]
        DispatchQueue.concurrentPerform(iterations: 2) { who in
            for i in 0..<n {
                do {
                    if let c = try spools[who].claim("j\(i).json") {
                        results.lock.lock(); results.won[i][who] = true; results.claims.append(c); results.lock.unlock()
                    }
                } catch {
                    results.lock.lock(); results.errors.append("\(error)"); results.lock.unlock()
                }
            }
        }
        #expect(results.errors.isEmpty, "\(results.errors.prefix(3))")
        let winners = results.won.map { $0.filter { $0 }.count }
        #expect(winners == Array(repeating: 1, count: n))
    }

    @Test func activateRefusesAnIDAlreadyDoneOrActive() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        try Sys.mkdir(spool.path(.done, "dup"))
        _ = try spool.submit(sampleManifest, name: "dup.json")
        let claim = try #require(try spool.claim("dup.json"))
        let e = quernError { _ = try spool.activate(claim, id: "dup") }
        #expect(e?.code == .duplicateID)
        #expect(e?.field == "id")
        #expect(Sys.exists(claim.manifestPath), "the refused claim stays in tmp/ for fail()")

        let job = try spool.activate(claim, id: "fresh")
        #expect(job.dir == spool.path(.active, "fresh"))
        #expect(!job.adopted)
        #expect(try Sys.readFile(job.manifestPath) == sampleManifest)
        #expect(try names(spool.tmp).isEmpty)

        _ = try spool.submit(sampleManifest, name: "again.json")
        let other = try #require(try spool.claim("again.json"))
        let active = quernError { _ = try spool.activate(other, id: "fresh") }
        #expect(active?.code == .duplicateID)
        withExtendedLifetime(job) {}
    }

    @Test func failWritesErrorJSONAndKeepsTheManifest() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "bad.json")
        let claim = try #require(try spool.claim("bad.json"))
        let error = QuernError(.unknownKey, "unknown key \"input.text_feild\"", field: "input.text_feild", line: 4)
        let target = try spool.fail(dir: claim.dir, id: "bad", error: error, keep: ["manifest.json"])
        #expect(target == spool.path(.failed, "bad"))
        #expect(Set(try names(target)) == ["error.json", "manifest.json"])
        #expect(try Sys.readFile(target + "/manifest.json") == sampleManifest, "the manifest exactly as received")
        let o = try #require(try JSONParser.parse(Sys.readFile(target + "/error.json")).objectValue)
        #expect(o["code"] == "unknown_key")
        #expect(o["message"] == "unknown key \"input.text_feild\"")
        #expect(o["field"] == "input.text_feild")
        #expect(o["line"] == 4)
        #expect(o["id"] == "bad")
        #expect(o["failed_at"]?.stringValue?.hasSuffix("Z") == true)
        #expect(try names(spool.tmp).isEmpty)

        // The same id failing again gets a suffix rather than replacing the first.
        _ = try spool.submit(sampleManifest, name: "bad.json")
        let again = try #require(try spool.claim("bad.json"))
        let second = try spool.fail(
            dir: again.dir, id: "bad", error: QuernError(.invalidJSON, "x"), keep: ["manifest.json"])
        #expect(second == spool.path(.failed, "bad.2"))
        #expect(try names(spool.directory(.failed)) == ["bad", "bad.2"])
        let o2 = try #require(try JSONParser.parse(Sys.readFile(second + "/error.json")).objectValue)
        #expect(o2["field"] == nil)
    }

    @Test func completeLeavesOnlyTheKeptFiles() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "ok.json")
        let job = try spool.activate(try #require(try spool.claim("ok.json")), id: "ok")
        for f in ["results.jsonl.gz", "report.json", "checkpoint.json", "results.jsonl.gz.partial", "job.log"] {
            try Sys.writeFile(job.file(f), Array(f.utf8))
        }
        try Sys.mkdirs(job.file("scratch/deeper"))
        try Sys.writeFile(job.file("scratch/deeper/x"), [1])
        let target = try spool.complete(job, keep: ["manifest.json", "results.jsonl.gz", "report.json", "job.log"])
        #expect(target == spool.path(.done, "ok"))
        #expect(Set(try names(target)) == ["manifest.json", "results.jsonl.gz", "report.json", "job.log"])
        #expect(try Sys.readFile(target + "/report.json") == Array("report.json".utf8))
        #expect(try names(spool.directory(.active)).isEmpty)
    }

    @Test func completeRefusesToReplaceADoneJob() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "ok.json")
        let job = try spool.activate(try #require(try spool.claim("ok.json")), id: "ok")
        try Sys.writeFile(job.file("results.jsonl.gz"), [1, 2, 3])
        try Sys.mkdir(spool.path(.done, "ok"))
        let e = quernError { try spool.complete(job, keep: ["manifest.json", "results.jsonl.gz"]) }
        #expect(e?.code == .duplicateID)
        #expect(try Sys.readFile(job.file("results.jsonl.gz")) == [1, 2, 3], "results stay in active/")
        #expect(try names(spool.path(.done, "ok")).isEmpty)
    }

    @Test func adoptOrphansTakesOnlyJobsWhoseLockIsFree() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "held.json")
        _ = try spool.submit(sampleManifest, name: "orphan.json")
        let held = try spool.activate(try #require(try spool.claim("held.json")), id: "held")
        do {
            // The owner of this one "dies": its ActiveJob (and the flock) go away.
            let orphan = try spool.activate(try #require(try spool.claim("orphan.json")), id: "orphan")
            #expect(orphan.id == "orphan")
        }
        let adopted = try spool.adoptOrphans()
        #expect(adopted.map(\.id) == ["orphan"])
        #expect(adopted.first?.adopted == true)
        #expect(adopted.first?.dir == spool.path(.active, "orphan"))
        // Now this process holds both; nothing more to adopt.
        #expect(try spool.adoptOrphans().isEmpty)
        // A second spool object (another daemon) cannot take either while they are held.
        #expect(try Spool(root: spool.root).adoptOrphans().isEmpty)
        withExtendedLifetime((held, adopted)) {}
    }

    @Test func aFreshLeaseFromAnotherHostIsLeftAlone() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        let now = Date().timeIntervalSince1970
        for (id, beat) in [("remote-fresh", now), ("remote-stale", now - 3600)] {
            try Sys.mkdir(spool.path(.active, id))
            try Sys.writeFile(spool.path(.active, id) + "/manifest.json", sampleManifest)
            try Sys.writeFile(spool.path(.active, id) + "/lease.lock", [])
            let lease = JSONWriter.compact([
                "pid": 1, "host": "some-other-host.example", "started": .double(beat), "heartbeat": .double(beat)
            ])
            try Sys.writeFile(spool.path(.active, id) + "/lease.json", lease)
        }
        let adopted = try spool.adoptOrphans()
        #expect(adopted.map(\.id) == ["remote-stale"])
        withExtendedLifetime(adopted) {}
    }

    @Test func adoptClaimsFinishesClaimsOfDeadProcesses() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "live.json")
        _ = try spool.submit(sampleManifest, name: "dead.json")
        let live = try #require(try spool.claim("live.json"))
        var deadDir = ""
        do {
            let dead = try #require(try spool.claim("dead.json"))
            deadDir = dead.dir
        }
        let claims = try spool.adoptClaims()
        #expect(claims.map(\.dir) == [deadDir])
        #expect(Sys.exists(live.manifestPath))
        withExtendedLifetime((live, claims)) {}
    }

    @Test("a claim whose move to failed/ was cut short is adopted under the name it came from")
    func failCutShortKeepsTheSourceName() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let spool = try Spool(root: tmp.path + "/s")
        _ = try spool.submit(sampleManifest, name: "named.json")
        // failed/ that cannot take the directory: fail() stops after its clean-up, as a
        // process killed at that point would.
        let failed = spool.directory(.failed)
        try Sys.removeTree(failed)
        try Sys.writeFile(failed, [])
        do {
            let claim = try #require(try spool.claim("named.json"))
            #expect(throws: (any Error).self) {
                try spool.fail(
                    dir: claim.dir, id: "named", error: QuernError(.invalidJSON, "x"), keep: ["manifest.json"])
            }
        }
        try Sys.unlink(failed)
        try Sys.mkdir(failed)
        let claims = try spool.adoptClaims()
        #expect(claims.map(\.sourceName) == ["named.json"])
        let target = try spool.fail(
            dir: claims[0].dir, id: "named", error: QuernError(.invalidJSON, "x"), keep: ["manifest.json"])
        #expect(Set(try names(target)) == ["error.json", "manifest.json"])
        withExtendedLifetime(claims) {}
    }
}

@Suite("quern status table")
struct StatusTableTests {
    /// A running job's line shows its records/s and the rate of each unit its task
    /// counts besides records (generate: tokens), read from the lease's progress.
    @Test func runningJobsShowTheirRates() throws {
        let progress = JSONObject([
            ("records", .int(120)), ("bytes_read", .int(50)), ("bytes_total", .int(100)),
            ("records_per_second", .double(6.5)), ("tokens", .int(7680)), ("tokens_per_second", .double(412.7))
        ])
        let status = JSONValue.object(
            JSONObject([
                ("spool", .string("/s")), ("counts", .object(JSONObject([("active", .int(1))]))),
                (
                    "active",
                    .array([
                        .object(JSONObject([("id", .string("gen")), ("pid", .int(7)), ("progress", .object(progress))]))
                    ])
                )
            ]))
        let table = Commands.statusTable(status)
        let line = try #require(table.split(separator: "\n").first { $0.contains("gen") })
        #expect(line.contains(" 50%"), "\(line)")
        #expect(line.contains("120 records  6/s  412 tokens/s"), "\(line)")
    }
}
