import Foundation
import QuernData
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One row of the bad-input table: a manifest (and the files it names) dropped into a
/// running daemon, and where the job must end up.
struct BadCase {
    enum Outcome {
        /// `failed/DIR/` with error.json carrying `code` (and `field`, `line` when given).
        case failed(code: String, field: String?, line: Int? = nil)
        /// `done/DIR/`: `succeeded` results, and these record errors in errors.jsonl.gz, in order.
        case done(succeeded: Int, errors: [(code: String, line: Int?)])
    }

    /// The file name in incoming/ is `name.json`.
    let name: String
    let manifest: Data
    /// The directory the job lands in (failed/ or done/); the name unless the manifest's id differs.
    let dir: String
    let outcome: Outcome

    init(_ name: String, _ manifest: Data, dir: String? = nil, _ outcome: Outcome) {
        self.name = name
        self.manifest = manifest
        self.dir = dir ?? name
        self.outcome = outcome
    }

    var state: String {
        if case .failed = outcome { return "failed" }
        return "done"
    }
}

extension EndToEnd {
    @Suite("bad inputs")
    struct BadInputTests {
        /// The first good job: its id is reused by the duplicate-id case.
        static let firstID = "table-first"

        /// Builds the inputs and manifests of every case in `scratch`.
        static func cases(_ scratch: Scratch) async throws -> [BadCase] {
            let csv = try DigitsData.csv()
            let records = try DigitsData.jsonl()
            func manifest(_ m: [String: Any]) throws -> Data { try Manifests.bytes(m) }
            func predict(
                _ id: String?, _ input: String, _ format: String?, input extraInput: [String: Any] = [:],
                task: String = "predict", model: String = E2E.model, _ extra: [String: Any] = [:]
            ) throws -> Data {
                try manifest(
                    Manifests.predict(
                        id: id, input: input, format: format, input: extraInput, task: task, model: model, extra))
            }
            func csvFile(_ name: String, header: String? = nil, _ rows: [String]) throws -> String {
                let path = scratch.file("inputs/\(name)")
                try Files.write(path, ([header ?? csv.header] + rows).joined(separator: "\n") + "\n")
                return path
            }
            /// The first ten CSV rows with `edit` applied to their fields.
            func editedRows(_ edit: (Int, inout [String]) -> Void) -> [String] {
                csv.rows.prefix(10).enumerated().map { i, row in
                    var fields = row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                    edit(i, &fields)
                    return fields.joined(separator: ",")
                }
            }
            let goodCSV = E2E.digitsCSV
            var cases: [BadCase] = []

            // --- Manifests that do not decode -------------------------------------------------
            cases.append(
                BadCase(
                    "t-invalid-json",
                    Data("{\n  \"version\": 1,\n  \"task\": \"predict\"\n  \"model\": \"x\"\n}\n".utf8),
                    .failed(code: "invalid_json", field: nil, line: 4)))
            cases.append(
                BadCase(
                    "t-unknown-key", try predict("t-unknown-key", goodCSV, "csv", ["colour": "blue"]),
                    .failed(code: "unknown_key", field: "colour")))
            cases.append(
                BadCase(
                    "t-unknown-key-nested",
                    try predict(
                        "t-unknown-key-nested", goodCSV, "csv", ["output": ["format": "jsonl", "colour": "red"]]),
                    .failed(code: "unknown_key", field: "output.colour")))
            cases.append(
                BadCase(
                    "t-wrong-type", try predict("t-wrong-type", goodCSV, "csv", ["batch_size": "64"]),
                    .failed(code: "invalid_type", field: "batch_size")))
            var noTask = Manifests.predict(id: "t-missing-task", input: goodCSV, format: "csv")
            noTask["task"] = nil
            cases.append(BadCase("t-missing-task", try manifest(noTask), .failed(code: "missing_field", field: "task")))
            cases.append(
                BadCase(
                    "t-version-2", try predict("t-version-2", goodCSV, "csv", ["version": 2]),
                    .failed(code: "unsupported_version", field: "version")))
            cases.append(
                BadCase(
                    "t-unknown-task", try predict("t-unknown-task", goodCSV, "csv", task: "transmogrify"),
                    .failed(code: "unsupported_task", field: "task")))
            cases.append(
                BadCase(
                    "t-embed-tabular-model", try predict("t-embed-tabular-model", goodCSV, "csv", task: "embed"),
                    .failed(code: "model_invalid", field: "model")))
            cases.append(
                BadCase(
                    "t-bad-value",
                    try predict("t-bad-value", goodCSV, "csv", ["output": ["compression_level": 12]]),
                    .failed(code: "invalid_value", field: "output.compression_level")))
            cases.append(
                BadCase(
                    "t-unsupported-format", try predict("t-unsupported-format", goodCSV, "parquet"),
                    .failed(code: "unsupported_format", field: "input.format")))
            cases.append(
                BadCase(
                    "t-invalid-id", try predict("bad id!", goodCSV, "csv"),
                    .failed(code: "invalid_id", field: "id")))
            cases.append(
                BadCase(
                    "t-duplicate-id", try predict(firstID, goodCSV, "csv"), dir: firstID,
                    .failed(code: "duplicate_id", field: "id")))

            // --- Paths and models ---------------------------------------------------------------
            cases.append(
                BadCase(
                    "t-model-missing",
                    try predict("t-model-missing", goodCSV, "csv", model: scratch.file("no-such-model")),
                    .failed(code: "file_not_found", field: "model")))
            let badModel = scratch.file("bad-model")
            try Files.write(
                badModel + "/config.json", "{\"model_type\": \"mlp\", \"input_size\": \"sixty-four\", \"layers\": []}\n"
            )
            try FileManager.default.copyItem(
                atPath: E2E.model + "/model.safetensors", toPath: badModel + "/model.safetensors")
            cases.append(
                BadCase(
                    "t-model-bad-config", try predict("t-model-bad-config", goodCSV, "csv", model: badModel),
                    .failed(code: "model_invalid", field: "model")))
            cases.append(
                BadCase(
                    "t-escape-dotdot", try predict("t-escape-dotdot", scratch.path + "/../../etc/passwd", "csv"),
                    .failed(code: "path_escape", field: "input.path")))
            let link = scratch.file("inputs/escape.csv")
            try Files.mkdir(scratch.file("inputs"))
            try Files.symlink(link, to: "/etc/passwd")
            cases.append(
                BadCase(
                    "t-escape-symlink", try predict("t-escape-symlink", link, "csv"),
                    .failed(code: "path_escape", field: "input.path")))

            // --- Archives and streams -----------------------------------------------------------
            let fixtureArchive = try Files.read(E2E.digitsTarGz)
            let truncated = scratch.file("inputs/truncated.tar.gz")
            try Files.write(truncated, fixtureArchive.prefix(fixtureArchive.count / 2))
            cases.append(
                BadCase(
                    "t-truncated-gzip", try predict("t-truncated-gzip", truncated, "jsonl", input: ["id_field": "id"]),
                    .failed(code: "archive_corrupt", field: nil)))
            let garbage = scratch.file("inputs/garbage.tar")
            try Files.write(garbage, pseudoRandomBytes(8192, seed: 42))
            cases.append(
                BadCase(
                    "t-corrupt-tar", try predict("t-corrupt-tar", garbage, "jsonl"),
                    .failed(code: "archive_corrupt", field: nil)))
            // ~100 MB of zeros in ~100 KB of gzip: past 64 MiB it expands > 1000x.
            let bomb = scratch.file("inputs/zeros.jsonl.gz")
            try await scratch.sh("head -c 100000000 /dev/zero | gzip -6 > '\(bomb)'")
            cases.append(
                BadCase(
                    "t-zip-bomb", try predict("t-zip-bomb", bomb, "jsonl"),
                    .failed(code: "decompression_limit", field: "limits.max_expansion_ratio")))
            let emptyArchive = scratch.file("inputs/empty.tar.gz")
            let r = try await scratch.run(
                "/usr/bin/env", ["tar", "czf", emptyArchive, "--files-from", "/dev/null"], label: "tar")
            guard r.status == 0 else { throw E2EFailure("tar (empty) failed: \(r)") }
            cases.append(
                BadCase(
                    "t-empty-archive", try predict("t-empty-archive", emptyArchive, "jsonl"),
                    .failed(code: "empty_input", field: "input.path")))
            cases.append(
                BadCase(
                    "t-no-member-matches",
                    try predict(
                        "t-no-member-matches", E2E.digitsTarGz, "jsonl", input: ["members": "*.csv", "id_field": "id"]),
                    .failed(code: "empty_input", field: "input.members")))

            // A link member beside a regular one: skipped with a record error, the rest runs.
            let linkDir = scratch.file("inputs/links")
            try Files.write(
                linkDir + "/good.jsonl",
                records.prefix(5).map { DigitsData.line(id: $0.id, features: $0.features) }.joined(separator: "\n")
                    + "\n")
            try Files.symlink(linkDir + "/link.jsonl", to: "/etc/passwd")
            let links = scratch.file("inputs/links.tar.gz")
            try await scratch.tarGz(links, from: linkDir, ["link.jsonl", "good.jsonl"])
            cases.append(
                BadCase(
                    "t-link-member", try predict("t-link-member", links, "jsonl", input: ["id_field": "id"]),
                    .done(succeeded: 5, errors: [("unsafe_member", nil)])))
            // Only a link member: what Quern does is finish the job (done/, no results, one
            // unsafe_member record error), not fail it with empty_input: the skipped member
            // counts as a bad record, and 1 ≤ max_errors.
            let linkOnly = scratch.file("inputs/link-only.tar.gz")
            try await scratch.tarGz(linkOnly, from: linkDir, ["link.jsonl"])
            cases.append(
                BadCase(
                    "t-link-only", try predict("t-link-only", linkOnly, "jsonl", input: ["id_field": "id"]),
                    .done(succeeded: 0, errors: [("unsafe_member", nil)])))

            // --- Records ------------------------------------------------------------------------
            var utf8 = Data()
            for rec in records.prefix(2) {
                utf8 += Data((DigitsData.line(id: rec.id, features: rec.features) + "\n").utf8)
            }
            utf8 +=
                Data("{\"id\":\"bad-utf8\",\"note\":\"".utf8) + Data([0xFF, 0xFE, 0x41])
                + Data("\",\"features\":[".utf8)
            utf8 += Data((records[2].features.map(String.init).joined(separator: ",") + "]}\n").utf8)
            let utf8Path = scratch.file("inputs/invalid-utf8.jsonl")
            try Files.write(utf8Path, utf8)
            cases.append(
                BadCase(
                    "t-invalid-utf8", try predict("t-invalid-utf8", utf8Path, "jsonl", input: ["id_field": "id"]),
                    .done(succeeded: 2, errors: [("invalid_utf8", 3)])))
            let columns = try csvFile("column-count.csv", editedRows { i, f in if i == 2 { f.removeLast(3) } })
            cases.append(
                BadCase(
                    "t-csv-column-count", try predict("t-csv-column-count", columns, "csv", input: ["id_field": "id"]),
                    .done(succeeded: 9, errors: [("invalid_record", 4)])))
            let nan = try csvFile("nan.csv", editedRows { i, f in if i == 3 { f[5] = "NaN" } })
            cases.append(
                BadCase(
                    "t-csv-nan", try predict("t-csv-nan", nan, "csv", input: ["id_field": "id"]),
                    .done(succeeded: 9, errors: [("non_finite", 5)])))
            let ten = try csvFile(
                "ten-features.csv", header: "id," + (0..<10).map { "f\($0)" }.joined(separator: ",") + ",label",
                csv.rows.prefix(10).map { row in
                    let f = row.split(separator: ",").map(String.init)
                    return ([f[0]] + f[1...10] + [f.last!]).joined(separator: ",")
                })
            cases.append(
                BadCase(
                    "t-feature-count",
                    try predict("t-feature-count", ten, "csv", input: ["id_field": "id", "label_field": "label"]),
                    .done(
                        succeeded: 0, errors: (2...11).map { i -> (code: String, line: Int?) in ("feature_count", i) }))
            )
            let unknownLabel = try csvFile(
                "unknown-label.csv", editedRows { i, f in if i == 4 { f[f.count - 1] = "11" } })
            cases.append(
                BadCase(
                    "t-unknown-label",
                    try predict(
                        "t-unknown-label", unknownLabel, "csv", input: ["id_field": "id", "label_field": "label"],
                        task: "evaluate"),
                    .done(succeeded: 9, errors: [("unknown_label", 6)])))
            var long = records.prefix(3).map { DigitsData.line(id: $0.id, features: $0.features) }
            long.insert(
                "{\"id\":\"long\",\"pad\":\"" + String(repeating: "x", count: 3000) + "\",\"features\":[]}", at: 1)
            let longPath = scratch.file("inputs/long-line.jsonl")
            try Files.write(longPath, long.joined(separator: "\n") + "\n")
            cases.append(
                BadCase(
                    "t-line-too-long",
                    try predict(
                        "t-line-too-long", longPath, "jsonl", input: ["id_field": "id"],
                        ["limits": ["max_line_bytes": 1024]]),
                    .done(succeeded: 3, errors: [("line_too_long", 2)])))
            let tooMany = try csvFile("too-many.csv", editedRows { i, f in if i < 5 { f[7] = "abc" } })
            cases.append(
                BadCase(
                    "t-too-many-errors",
                    try predict(
                        "t-too-many-errors", tooMany, "csv", input: ["id_field": "id"], ["limits": ["max_errors": 2]]),
                    .failed(code: "too_many_errors", field: "limits.max_errors")))
            return cases
        }

        /// Every case dropped into one running daemon; each lands where it must with an
        /// error that says what is wrong, and a good job afterwards still runs.
        @Test("bad-input table through one daemon")
        func table() async throws {
            let scratch = try Scratch("table")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try await Self.cases(scratch)
            #expect(cases.count >= 20)
            #expect(Set(cases.map(\.name)).count == cases.count)

            let daemon = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch")
            func alive() throws {
                if !daemon.isRunning { throw E2EFailure("daemon exited: \(daemon.stderrTail)") }
            }

            let first = try Manifests.bytes(
                Manifests.predict(
                    id: Self.firstID, input: E2E.digitsCSV, format: "csv",
                    input: ["id_field": "id"]))
            try spool.drop("\(Self.firstID).json", first)
            try await E2E.waitUntil("done/\(Self.firstID)", timeout: 60) {
                try alive()
                return Files.exists(spool.job("done", Self.firstID))
            }

            for c in cases { try spool.drop("\(c.name).json", c.manifest) }
            try await E2E.waitUntil("every case in failed/ or done/", timeout: 120, poll: 0.1) {
                try alive()
                let pending = cases.filter { c in
                    c.state == "failed"
                        ? !Files.exists(spool.job("failed", c.dir) + "/error.json")
                        : !Files.exists(spool.job("done", c.dir) + "/report.json")
                }
                return pending.isEmpty && spool.jobs("incoming").isEmpty && spool.jobs("active").isEmpty
            }

            // The daemon is still serving: a good job dropped after all of that runs.
            let last = try Manifests.bytes(
                Manifests.predict(
                    id: "zz-last-good", input: E2E.digitsTarGz, format: "jsonl",
                    input: ["members": "*.jsonl", "id_field": "id"]))
            try spool.drop("zz-last-good.json", last)
            try await E2E.waitUntil("done/zz-last-good", timeout: 60) {
                try alive()
                return Files.exists(spool.job("done", "zz-last-good"))
            }
            let lastReport = try Files.json(spool.job("done", "zz-last-good") + "/report.json")
            #expect(JSON.int(lastReport, "records.succeeded") == 450)

            for c in cases { try await Self.check(c, spool: spool, scratch: scratch) }

            let failedDirs = Set(cases.filter { $0.state == "failed" }.map(\.dir))
            let doneDirs = Set(cases.filter { $0.state == "done" }.map(\.dir)).union([Self.firstID, "zz-last-good"])
            #expect(Set(spool.jobs("failed")) == failedDirs, "failed/: \(spool.jobs("failed"))")
            #expect(Set(spool.jobs("done")) == doneDirs, "done/: \(spool.jobs("done"))")
            // The refused duplicate did not disturb the job that owns the id.
            #expect(try Files.read(spool.job("done", Self.firstID) + "/manifest.json") == first)

            daemon.signal(SIGTERM)
            let exit = try await daemon.wait(timeout: 30)
            #expect(!exit.signaled && exit.status == 0, "daemon after SIGTERM: \(exit)")
        }

        static func check(_ c: BadCase, spool: SpoolDir, scratch: Scratch) async throws {
            let name = "case \(c.name)"
            switch c.outcome {
            case .failed(let code, let field, let line):
                let dir = spool.job("failed", c.dir)
                let files = Set(Files.list(dir))
                #expect(
                    files.isSuperset(of: ["error.json", "manifest.json", "job.log"]),
                    "\(name): failed/\(c.dir) has \(files.sorted())")
                // Runner failures also keep errors.jsonl.gz (the bad records read before the failure).
                #expect(
                    files.isSubset(of: ["error.json", "manifest.json", "job.log", "errors.jsonl.gz"]),
                    "\(name): \(files.sorted())")
                #expect(
                    try Files.read(dir + "/manifest.json") == c.manifest,
                    "\(name): manifest.json must be the bytes dropped")
                let error = try Files.json(dir + "/error.json")
                #expect(JSON.string(error, "code") == code, "\(name): error.json \(error)")
                #expect(!(JSON.string(error, "message") ?? "").isEmpty, "\(name): empty message")
                if let field { #expect(JSON.string(error, "field") == field, "\(name): error.json \(error)") }
                if let line { #expect(JSON.int(error, "line") == line, "\(name): error.json \(error)") }
                #expect(JSON.string(error, "id") == c.dir, "\(name)")
                let log = try Files.text(dir + "/job.log")
                #expect(log.contains(code), "\(name): job.log does not name \(code):\n\(log)")
                if code == "too_many_errors" {
                    #expect(files.contains("errors.jsonl.gz"), "\(name): errors.jsonl.gz must be kept in failed/")
                }
                if files.contains("errors.jsonl.gz") {  // when kept, it is a whole gzip file of error records
                    let errors = try await JSON.lines(
                        scratch.gunzip(dir + "/errors.jsonl.gz"), what: "errors of \(c.name)")
                    if code == "too_many_errors" {
                        #expect(errors.map { ($0["line"] as? NSNumber)?.intValue } == [2, 3, 4], "\(name): \(errors)")
                    }
                }
            case .done(let succeeded, let expectedErrors):
                let dir = spool.job("done", c.dir)
                #expect(Files.list(dir) == doneFiles, "\(name)")
                #expect(try Files.read(dir + "/manifest.json") == c.manifest, "\(name)")
                let report = try Files.json(dir + "/report.json")
                #expect(JSON.int(report, "records.succeeded") == succeeded, "\(name): report \(report)")
                #expect(JSON.int(report, "records.failed") == expectedErrors.count, "\(name): report \(report)")
                let results = try await scratch.gunzip(dir + "/results.jsonl.gz")
                #expect(Files.lines(results).count == succeeded, "\(name)")
                let errors = try await JSON.lines(scratch.gunzip(dir + "/errors.jsonl.gz"), what: "errors of \(c.name)")
                #expect(errors.map { $0["code"] as? String } == expectedErrors.map(\.code), "\(name): \(errors)")
                #expect(
                    errors.map { ($0["line"] as? NSNumber)?.intValue } == expectedErrors.map(\.line),
                    "\(name): \(errors)")
                for e in errors {
                    #expect(!((e["message"] as? String) ?? "").isEmpty, "\(name): \(e)")
                    #expect(!((e["member"] as? String) ?? "").isEmpty, "\(name): \(e)")
                }
                if expectedErrors.first?.code == "unsafe_member" {
                    #expect(errors.first?["member"] as? String == "link.jsonl", "\(name): \(errors)")
                }
            }
        }

        /// `too_many_errors` keeps the bad records in failed/JOB/errors.jsonl.gz, which must
        /// be a complete gzip file holding them (README: "with the bad records in
        /// errors.jsonl.gz"). Other runner failures must not leave a broken one behind.
        @Test("failed/JOB/errors.jsonl.gz is a complete gzip file with the bad records")
        func tooManyErrorsKeepsReadableErrors() async throws {
            let scratch = try Scratch("toomany")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let csv = try DigitsData.csv()
            let rows = csv.rows.prefix(10).enumerated().map { i, row -> String in
                guard i < 5 else { return row }
                var f = row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                f[7] = "abc"
                return f.joined(separator: ",")
            }
            let path = scratch.file("too-many.csv")
            try Files.write(path, ([csv.header] + rows).joined(separator: "\n") + "\n")
            let manifest = try Manifests.bytes(
                Manifests.predict(
                    id: "too-many", input: path, format: "csv",
                    input: ["id_field": "id"], ["limits": ["max_errors": 2]]))
            try spool.drop("too-many.json", manifest)
            let bomb = scratch.file("zeros.jsonl.gz")
            try await scratch.sh("head -c 80000000 /dev/zero | gzip -6 > '\(bomb)'")
            try spool.drop(
                "zz-bomb.json", Manifests.bytes(Manifests.predict(id: "zz-bomb", input: bomb, format: "jsonl")))

            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 1, "run --once with failing jobs: \(run)")
            let failed = spool.job("failed", "too-many")
            #expect(JSON.string(try Files.json(failed + "/error.json"), "code") == "too_many_errors")
            let test = try await scratch.run(
                "/usr/bin/env", ["gzip", "-t", failed + "/errors.jsonl.gz"], label: "gzip-t")
            #expect(test.status == 0, "gzip -t failed/too-many/errors.jsonl.gz: \(test)")
            if test.status == 0 {
                let errors = try await JSON.lines(scratch.gunzip(failed + "/errors.jsonl.gz"), what: "errors")
                // max_errors 2: the third bad record (line 4) fails the job.
                #expect(errors.map { ($0["line"] as? NSNumber)?.intValue } == [2, 3, 4])
                #expect(errors.allSatisfy { ($0["code"] as? String) == "invalid_record" })
            }
            let bombDir = spool.job("failed", "zz-bomb")
            #expect(JSON.string(try Files.json(bombDir + "/error.json"), "code") == "decompression_limit")
            if Files.exists(bombDir + "/errors.jsonl.gz") {
                let t = try await scratch.run(
                    "/usr/bin/env", ["gzip", "-t", bombDir + "/errors.jsonl.gz"], label: "gzip-t")
                #expect(t.status == 0, "failed/zz-bomb/errors.jsonl.gz exists but is not a gzip file: \(t)")
            }
        }
    }
}

extension EndToEnd.BadInputTests {
    /// What a writer can leave in incoming/ that is not a manifest file: a FIFO (whose
    /// open would block forever), a directory named `.json`, a symbolic link to a manifest
    /// outside the spool, a file name that is not UTF-8. Each lands in failed/ with a code
    /// saying so; the good job dropped after them runs; `run --once` ends.
    @Test("a FIFO, a directory, a symlink and a non-UTF-8 name in incoming/ are set aside; the job behind them runs")
    func notManifestFiles() async throws {
        let scratch = try Scratch("not-files")
        defer { scratch.remove() }
        let spool = try SpoolDir(scratch.file("spool"))
        let good = try Manifests.bytes(
            Manifests.predict(id: "zz-good", input: E2E.digitsCSV, format: "csv", input: ["id_field": "id"]))
        guard mkfifo(spool.root + "/incoming/a-fifo.json", 0o644) == 0 else { throw E2EFailure("mkfifo: \(errno)") }
        try FileManager.default.createDirectory(
            atPath: spool.root + "/incoming/b-dir.json", withIntermediateDirectories: false)
        try Files.write(scratch.file("outside/c.json"), good)
        guard symlink(scratch.file("outside/c.json"), spool.root + "/incoming/c-link.json") == 0 else {
            throw E2EFailure("symlink: \(errno)")
        }
        let badName: [UInt8] = Array((spool.root + "/incoming/d-").utf8) + [0xFF, 0xFE] + Array(".json".utf8) + [0]
        let fd = badName.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_WRONLY | O_CREAT, 0o644) }
        }
        guard fd >= 0 else { throw E2EFailure("open: \(errno)") }
        _ = good.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        try spool.drop("zz-good.json", good)

        let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 120)
        #expect(run.status == 1, "one or more jobs failed: \(run)")
        #expect(spool.jobs("done") == ["zz-good"])
        #expect(spool.jobs("incoming").isEmpty)
        for (dir, kind) in [("a-fifo", "a FIFO"), ("b-dir", "a directory"), ("c-link", "a symbolic link")] {
            let error = try Files.json(spool.job("failed", dir) + "/error.json")
            #expect(JSON.string(error, "code") == "not_a_regular_file", "\(dir): \(error)")
            let message = JSON.string(error, "message") ?? ""
            #expect(message.contains("incoming/\(dir).json") && message.contains(kind), "\(message)")
        }
        let link = try FileManager.default.destinationOfSymbolicLink(
            atPath: spool.job("failed", "c-link") + "/manifest.json")
        #expect(link == scratch.file("outside/c.json"), "the link is set aside as it was, never followed")
        let named = spool.jobs("failed").filter { $0.hasPrefix("d-") }
        #expect(named.count == 1, "\(spool.jobs("failed"))")
        let error = try Files.json(spool.job("failed", named.first ?? "?") + "/error.json")
        #expect(JSON.string(error, "code") == "bad_name")
        #expect((JSON.string(error, "message") ?? "").contains("\\xFF\\xFE"))
    }
}

extension EndToEnd.BadInputTests {
    /// A PNG whose header claims 16384 x 16384 RGB (768 MiB of pixels, 3 GiB as floats) in
    /// an archive of real digits, under a 2 GiB memory limit: the image is a bad record
    /// from its header alone, and the job finishes with the other 450 images.
    @Test("a PNG header claiming 16384x16384 is a bad record, refused before any allocation")
    func hugePNGHeader() async throws {
        let scratch = try Scratch("huge-png")
        defer { scratch.remove() }
        let spool = try SpoolDir(scratch.file("spool"))
        let tree = scratch.file("png")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try await scratch.sh("tar -xzf '\(E2E.dataDir)/digits-png.tar.gz' -C '\(tree)'")
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            let crc = typed.withUnsafeBytes { Zlib.crc32(0, $0) }
            return withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + typed
                + withUnsafeBytes(of: crc.bigEndian) { Array($0) }
        }
        let side = withUnsafeBytes(of: UInt32(16384).bigEndian) { Array($0) }
        let png =
            [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", side + side + [8, 2, 0, 0, 0])
            + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])
        try Files.write(tree + "/test/7/huge.png", Data(png))
        try await scratch.sh("cd '\(tree)' && tar -czf ../digits-huge.tar.gz test")
        try spool.drop(
            "huge.json",
            try Manifests.bytes(
                Manifests.predict(
                    id: "huge", input: scratch.file("digits-huge.tar.gz"), format: "png",
                    input: ["members": "*.png", "scale": 0.0625], task: "evaluate",
                    ["limits": ["max_memory_mb": 2048]])))
        let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 120)
        #expect(run.status == 0, "\(run)")
        let done = spool.job("done", "huge")
        let errors = try JSON.lines(try await scratch.gunzip(done + "/errors.jsonl.gz"), what: "errors")
        #expect(errors.count == 1)
        #expect(JSON.string(errors.first ?? [:], "code") == "line_too_long", "\(errors)")
        #expect((JSON.string(errors.first ?? [:], "message") ?? "").contains("16384x16384"), "\(errors)")
        let report = try Files.json(done + "/report.json")
        #expect("\(report)".contains("450"), "the 450 real images were evaluated: \(report)")
    }
}
