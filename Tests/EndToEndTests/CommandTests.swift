import Foundation
import Testing

extension EndToEnd {
    @Suite("commands")
    struct CommandTests {
        /// `quern validate`: 0 and a JSON summary with "valid": true for a good manifest;
        /// 1 and the error as JSON for a bad one.
        @Test("validate good and bad manifests")
        func validate() async throws {
            let scratch = try Scratch("validate")
            defer { scratch.remove() }
            let good = scratch.file("good.json")
            try Files.write(
                good,
                try Manifests.bytes(
                    Manifests.predict(
                        id: "v-good", input: E2E.digitsTarGz, format: "jsonl",
                        input: ["members": "*.jsonl", "id_field": "id"])))
            let ok = try await scratch.quern(["validate", good, "--root", E2E.repoRoot], cwd: scratch.path)
            #expect(ok.status == 0, "validate good: \(ok)")
            let summary = try JSON.object(Data(ok.stdout.utf8), what: "validate stdout")
            #expect(summary["valid"] as? Bool == true)
            #expect(JSON.string(summary, "task") == "predict")
            #expect(JSON.string(summary, "input") == E2E.digitsTarGz)
            #expect(JSON.string(summary, "model") == E2E.model)
            #expect(JSON.string(summary, "model_family") == "mlp")
            #expect(JSON.int(summary, "sampled_bad_records") == 0)

            let bad = scratch.file("bad.json")
            try Files.write(
                bad,
                try Manifests.bytes(
                    Manifests.predict(
                        id: "v-bad", input: E2E.digitsCSV, format: "csv", ["batch_size": 0])))
            let refused = try await scratch.quern(["validate", bad, "--root", E2E.repoRoot], cwd: scratch.path)
            #expect(refused.status == 1, "validate bad: \(refused)")
            let error = try JSON.object(Data(refused.stdout.utf8), what: "validate stdout")
            #expect(JSON.string(error, "code") == "invalid_value")
            #expect(JSON.string(error, "field") == "batch_size")
            #expect(!(JSON.string(error, "message") ?? "").isEmpty)
            #expect(error["valid"] == nil)

            // A path outside every root is refused before anything runs.
            let outside = scratch.file("outside.json")
            try Files.write(
                outside, try Manifests.bytes(Manifests.predict(id: "v-out", input: "/etc/passwd", format: "csv")))
            let escaped = try await scratch.quern(["validate", outside, "--root", E2E.repoRoot], cwd: scratch.path)
            #expect(escaped.status == 1, "validate outside: \(escaped)")
            #expect(JSON.string(try JSON.object(Data(escaped.stdout.utf8), what: "stdout"), "code") == "path_escape")

            let malformed = scratch.file("malformed.json")
            try Files.write(malformed, "{\"version\": 1,\n\"task\": }\n")
            let syntax = try await scratch.quern(["validate", malformed], cwd: scratch.path)
            #expect(syntax.status == 1)
            let syntaxError = try JSON.object(Data(syntax.stdout.utf8), what: "stdout")
            #expect(JSON.string(syntaxError, "code") == "invalid_json")
            #expect(JSON.int(syntaxError, "line") == 2)
        }

        /// `quern status --json` counts each state as the directories hold it.
        @Test("status --json matches the spool directories")
        func status() async throws {
            let scratch = try Scratch("status")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            func job(_ id: String, _ extra: [String: Any] = [:]) throws -> Data {
                try Manifests.bytes(
                    Manifests.predict(id: id, input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"], extra))
            }
            try spool.drop("s-done-1.json", job("s-done-1"))
            try spool.drop("s-done-2.json", job("s-done-2"))
            try spool.drop("s-failed.json", job("s-failed", ["surprise": true]))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 1, "run --once with a failed job exits 1: \(run)")
            try spool.drop("s-waiting-1.json", job("s-waiting-1"))
            try spool.drop("s-waiting-2.json", job("s-waiting-2"))
            // Not jobs: dot-files and names without .json.
            try Files.write(spool.dir("incoming") + "/.hidden.json", "{}")
            try Files.write(spool.dir("incoming") + "/notes.txt", "hello")

            let status = try await scratch.quern(["status", spool.root, "--json"])
            #expect(status.status == 0, "status: \(status)")
            let o = try JSON.object(Data(status.stdout.utf8), what: "status stdout")
            let counts = try #require(o["counts"] as? [String: Any])
            let incoming = spool.jobs("incoming").filter { $0.hasSuffix(".json") }
            #expect(JSON.int(counts, "incoming") == incoming.count)
            #expect(incoming.count == 2)
            for state in ["active", "done", "failed"] {
                #expect(JSON.int(counts, state) == spool.jobs(state).count, "\(state): \(counts)")
            }
            #expect(JSON.int(counts, "done") == 2)
            #expect(JSON.int(counts, "failed") == 1)
            #expect(JSON.int(counts, "active") == 0)
            let failures = try #require(o["recent_failures"] as? [[String: Any]])
            #expect(failures.map { $0["id"] as? String } == ["s-failed"])
            #expect(failures.first?["code"] as? String == "unknown_key")
            #expect(JSON.string(o, "spool") == E2E.realpath(spool.root))

            let table = try await scratch.quern(["status", spool.root])
            #expect(table.status == 0)
            #expect(table.stdout.contains("s-failed"))
        }

        /// `quern submit` from the repository root resolves a manifest's relative paths and
        /// publishes incoming/ID.json with absolute ones; the same id twice is refused.
        @Test("submit records absolute paths and refuses a duplicate id")
        func submit() async throws {
            let scratch = try Scratch("submit")
            defer { scratch.remove() }
            let spool = scratch.file("spool")  // quern creates it
            let source = try Files.json(E2E.repoRoot + "/jobs/predict-digits.json")
            let id = try #require(source["id"] as? String)
            #expect(JSON.string(source, "input.path")?.hasPrefix("/") == false, "the example should use relative paths")

            let first = try await scratch.quern(
                ["submit", "jobs/predict-digits.json", spool, "--root", E2E.repoRoot], cwd: E2E.repoRoot)
            #expect(first.status == 0, "submit: \(first)")
            let published = spool + "/incoming/\(id).json"
            #expect(
                first.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == E2E.realpath(spool)
                    + "/incoming/\(id).json")
            let m = try Files.json(published)
            #expect(JSON.string(m, "input.path") == E2E.repoRoot + "/fixtures/data/digits.tar.gz")
            #expect(JSON.string(m, "model") == E2E.repoRoot + "/fixtures/models/digits-mlp")
            // Everything else is as written.
            #expect(JSON.string(m, "id") == id)
            #expect(JSON.string(m, "input.members") == JSON.string(source, "input.members"))
            #expect(JSON.int(m, "batch_size") == JSON.int(source, "batch_size"))
            #expect(JSON.int(m, "limits.max_errors") == JSON.int(source, "limits.max_errors"))
            #expect(Files.list(spool + "/tmp").isEmpty, "submit leaves nothing staged in tmp/")

            let publishedBytes = try Files.read(published)
            let again = try await scratch.quern(
                ["submit", "jobs/predict-digits.json", spool, "--root", E2E.repoRoot], cwd: E2E.repoRoot)
            #expect(again.status == 1, "second submit: \(again)")
            let error = try JSON.object(Data(again.stdout.utf8), what: "submit stdout")
            #expect(JSON.string(error, "code") == "duplicate_id")
            #expect(JSON.string(error, "field") == "id")
            #expect(try Files.read(published) == publishedBytes, "a refused submit must not touch the waiting manifest")

            // Once it has run, the id is taken by done/ and submit still refuses it.
            let run = try await scratch.quern(["run", "--once", spool, "--root", E2E.repoRoot])
            #expect(run.status == 0, "run --once: \(run)")
            #expect(Files.exists(spool + "/done/\(id)/report.json"))
            let third = try await scratch.quern(
                ["submit", "jobs/predict-digits.json", spool, "--root", E2E.repoRoot], cwd: E2E.repoRoot)
            #expect(third.status == 1, "submit after done: \(third)")
            #expect(JSON.string(try JSON.object(Data(third.stdout.utf8), what: "stdout"), "code") == "duplicate_id")
        }
    }
}
