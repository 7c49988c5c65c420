import Foundation
import Testing

extension EndToEnd {
    /// Cluster jobs without a scheduler: `quern stage`, N `quern run-shard` processes,
    /// `quern merge`, against the same manifest run whole by `run --once`.
    @Suite("cluster jobs")
    struct ClusterJobs {
        /// Stages `manifest` (id `id`) in `spool`, runs shards `0..<n` as processes (and
        /// shard 0 a second time, which must change nothing), merges; returns done/ID.
        static func sharded(_ scratch: Scratch, _ spool: SpoolDir, _ manifest: [String: Any], id: String, shards n: Int)
            async throws -> String
        {
            var m = manifest
            m["id"] = id
            let path = scratch.file(id + ".json")
            try Files.write(path, try JSON.encode(m))
            let roots = ["--root", E2E.repoRoot, "--root", scratch.path]
            let staged = try await scratch.quern(["stage", path, spool.root] + roots)
            #expect(staged.status == 0, "stage: \(staged)")
            let dir = staged.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(dir == spool.job("cluster", id))
            for i in 0..<n {
                let r = try await scratch.quern(["run-shard", dir, "--shard", "\(i)/\(n)"] + roots)
                #expect(r.status == 0, "shard \(i)/\(n): \(r)")
            }
            let again = try await scratch.quern(["run-shard", dir + "/manifest.json", "--shard", "0/\(n)"] + roots)
            #expect(again.status == 0 && again.stderr.contains("already committed"), "duplicate shard run: \(again)")
            let merged = try await scratch.quern(["merge", id, spool.root])
            #expect(merged.status == 0, "merge: \(merged)")
            return spool.job("done", id)
        }

        @Test("predict as 1, 2 and 5 shards (members, then record ranges) equals the job run whole")
        func predictEqualsWholeRun() async throws {
            let scratch = try Scratch("cluster")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // Two members of digits, one bad record in the second: errors merge in order too.
            try await scratch.sh(
                "mkdir -p '\(scratch.path)/in' && cd '\(scratch.path)/in' && tar -xzf '\(E2E.digitsTarGz)' && "
                    + "echo '{\"id\": \"broken\", \"features\": [1, 2]}' >> digits/part-1.jsonl && tar -czf ../digits.tar.gz digits"
            )
            let manifest: [String: Any] = [
                "version": 1, "task": "evaluate", "model": E2E.model,
                "input": [
                    "path": scratch.file("digits.tar.gz"), "format": "jsonl", "members": "*.jsonl",
                    "id_field": "id", "label_field": "label"
                ]
            ]
            var whole = manifest
            whole["id"] = "whole"
            try spool.drop("whole.json", try JSON.encode(whole))
            let run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "run --once: \(run)")
            let reference = try await scratch.gunzip(spool.job("done", "whole") + "/results.jsonl.gz")
            let referenceErrors = try await scratch.gunzip(spool.job("done", "whole") + "/errors.jsonl.gz")
            let referenceReport = try Files.json(spool.job("done", "whole") + "/report.json")

            for (n, mode) in [(1, "members"), (2, "members"), (5, "records")] {
                let done = try await Self.sharded(scratch, spool, manifest, id: "s\(n)", shards: n)
                #expect(try await scratch.gunzip(done + "/results.jsonl.gz") == reference, "\(n) shards: results")
                let errors = try await JSON.lines(scratch.gunzip(done + "/errors.jsonl.gz"), what: "errors")
                let expected = try JSON.lines(referenceErrors, what: "errors")
                #expect(errors.map { $0["id"] as? String } == expected.map { $0["id"] as? String })
                let report = try Files.json(done + "/report.json")
                for key in ["records.read", "records.succeeded", "records.failed", "metrics.count"] {
                    #expect(JSON.int(report, key) == JSON.int(referenceReport, key), "\(n) shards: \(key)")
                }
                #expect(JSON.double(report, "metrics.accuracy") == JSON.double(referenceReport, "metrics.accuracy"))
                #expect(
                    (JSON.get(report, "metrics.confusion_matrix") as? [[Int]])
                        == (JSON.get(referenceReport, "metrics.confusion_matrix") as? [[Int]]))
                #expect(JSON.string(report, "shards.mode") == mode, "\(n) shards")
                #expect((JSON.get(report, "shards.parts") as? [Any])?.count == n)
                #expect(
                    Set(spool.jobs("done").first { $0 == "s\(n)" }.map { Files.list(spool.job("done", $0)) } ?? [])
                        == ["manifest.json", "report.json", "results.jsonl.gz", "errors.jsonl.gz"])
            }
            #expect(spool.jobs("cluster").isEmpty)
        }

        @Test(
            "embed with NPY output as 3 record-range shards: the same ids, rows and vectors; with a row per chunk too"
        )
        func embedNPY() async throws {
            let scratch = try Scratch("cluster-npy")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let texts =
                (0..<23).map {
                    #"{"id": "t\#($0)", "text": "text number \#($0) about packages and all of their many dependencies"}"#
                }
                + [#"{"id": "x"}"#]
            try Files.write(scratch.file("texts.jsonl"), texts.joined(separator: "\n") + "\n")
            // Windows of 6 text tokens: each record gives two rows, so parts' row numbers
            // are not their record counts.
            for (id, embed) in [
                ("npy", [String: Any]()), ("chunks", ["chunk": ["tokens": 8, "overlap": 2, "rows": "chunk"]])
            ] {
                let manifest: [String: Any] = [
                    "version": 1, "task": "embed", "model": E2E.repoRoot + "/fixtures/models/tiny-bert",
                    "input": ["path": scratch.file("texts.jsonl"), "id_field": "id", "text_field": "text"],
                    "output": ["format": "npy", "dtype": "float32"], "embed": embed
                ]
                var whole = manifest
                whole["id"] = "whole-" + id
                try spool.drop("whole-\(id).json", try JSON.encode(whole))
                let run = try await scratch.quern([
                    "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
                ])
                #expect(run.status == 0, "run --once: \(run)")
                let done = try await Self.sharded(scratch, spool, manifest, id: id, shards: 3)
                for name in ["results.jsonl.gz", "results.npy.gz", "errors.jsonl.gz"] {
                    let a = try await scratch.gunzip(spool.job("done", "whole-" + id) + "/" + name),
                        b = try await scratch.gunzip(done + "/" + name)
                    #expect(a == b, "\(id): \(name) differs")
                }
                let a = try Files.json(spool.job("done", "whole-" + id) + "/report.json"),
                    b = try Files.json(done + "/report.json")
                #expect(JSON.int(a, "records.result_lines") == JSON.int(b, "records.result_lines"))
                if id == "chunks" { #expect(JSON.int(b, "records.result_lines") ?? 0 > 23, "\(b)") }
            }
        }

        @Test(
            "merge names the shards not committed yet; a shard that fails for good sends the job to failed/ with its error"
        )
        func incompleteAndFailed() async throws {
            let scratch = try Scratch("cluster-fail")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // Part 1 of the input is not a record file at all, and max_errors 0 makes any bad record fatal.
            try Files.write(
                scratch.file("a.jsonl"),
                (0..<6).map { #"{"id": "a\#($0)", "features": [\#($0)]}"# }.joined(separator: "\n") + "\n")
            let manifest: [String: Any] = [
                "version": 1, "id": "f", "task": "predict", "model": E2E.model,
                "input": ["path": scratch.file("a.jsonl")], "limits": ["max_errors": 0]
            ]
            try Files.write(scratch.file("f.json"), try JSON.encode(manifest))
            let roots = ["--root", E2E.repoRoot, "--root", scratch.path]
            let staged = try await scratch.quern(["stage", scratch.file("f.json"), spool.root] + roots)
            #expect(staged.status == 0, "\(staged)")
            let dir = spool.job("cluster", "f")
            let first = try await scratch.quern(["run-shard", dir, "--shard", "0/3"] + roots)
            // Every record has one feature where the model wants 64: a permanent failure, exit 65.
            #expect(first.status == 65, "\(first)")
            let early = try await scratch.quern(["merge", "f", spool.root])
            #expect(early.status == 1)
            #expect(early.stdout.contains("shard 0/3 failed"), "\(early)")
            #expect(spool.jobs("failed") == ["f"])
            #expect(Files.exists(spool.job("failed", "f") + "/error.json"))

            // Shards from the environment, as a Slurm array task sees it; nothing run yet elsewhere.
            var m2 = manifest
            m2["id"] = "g"
            m2["input"] = ["path": E2E.digitsJSONL]
            try Files.write(scratch.file("g.json"), try JSON.encode(m2))
            _ = try await scratch.quern(["stage", scratch.file("g.json"), spool.root] + roots)
            let env = ["SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "3"]
            let one = try await scratch.quern(["run-shard", spool.job("cluster", "g")] + roots, env: env)
            #expect(one.status == 0, "\(one)")
            #expect(Files.exists(spool.job("cluster", "g") + "/parts/part-00001-of-00003/report.json"))
            let partial = try await scratch.quern(["merge", "g", spool.root])
            #expect(partial.status == 1)
            #expect(partial.stdout.contains("shards 0, 2 of 3 not committed yet"), "\(partial)")
            #expect(spool.jobs("cluster") == ["g"])
            let status = try await scratch.quern(["status", spool.root, "--json"])
            let cluster = try JSON.object(Data(status.stdout.utf8), what: "status")["cluster"] as? [[String: Any]]
            let states = (cluster?.first?["shards"] as? [[String: Any]])?.map { $0["state"] as? String }
            #expect(states == ["not_started", "committed", "not_started"], "\(status)")
        }
    }
}
