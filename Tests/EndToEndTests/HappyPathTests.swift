import Foundation
import Testing

extension EndToEnd {
    @Suite("happy path")
    struct HappyPath {
        /// predict (tar.gz of JSONL) and evaluate (CSV) through `run --once`: results,
        /// report counts, output digests, and accuracy against the fixtures' references.
        @Test("predict and evaluate digits through run --once")
        func predictAndEvaluate() async throws {
            let scratch = try Scratch("happy")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))

            let predict = try Manifests.bytes(
                Manifests.predict(
                    id: "predict-digits", input: E2E.digitsTarGz, format: "jsonl",
                    input: ["members": "*.jsonl", "id_field": "id", "features_field": "features"],
                    [
                        "batch_size": 64, "output": ["format": "jsonl", "compression": "gzip"],
                        "limits": ["max_errors": 10]
                    ]))
            let evaluate = try Manifests.bytes(
                Manifests.predict(
                    id: "evaluate-digits", input: E2E.digitsCSV, format: "csv",
                    input: ["id_field": "id", "label_field": "label"], task: "evaluate",
                    ["batch_size": 128, "output": ["format": "jsonl", "probabilities": false]]))
            try spool.drop("predict-digits.json", predict)
            try spool.drop("evaluate-digits.json", evaluate)

            let run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot])
            #expect(run.status == 0, "run --once: \(run)")
            #expect(spool.jobs("incoming").isEmpty)
            #expect(spool.jobs("active").isEmpty)
            #expect(spool.jobs("failed").isEmpty, "failed: \(spool.jobs("failed"))")
            #expect(spool.jobs("done") == ["evaluate-digits", "predict-digits"])

            // predict
            let done = spool.job("done", "predict-digits")
            #expect(Files.list(done) == doneFiles)
            #expect(try Files.read(done + "/manifest.json") == predict)
            let results = try await JSON.lines(scratch.gunzip(done + "/results.jsonl.gz"), what: "results")
            let expected = try JSON.lines(Files.read(E2E.expectedJSONL), what: "expected")
            #expect(results.count == 450)
            #expect(expected.count == 450)
            #expect(results.map { $0["id"] as? String } == expected.map { $0["id"] as? String })
            #expect(results.map { $0["label"] as? String } == expected.map { $0["label"] as? String })
            var worst = 0.0
            for (r, e) in zip(results, expected) {
                let p = (r["probabilities"] as? [NSNumber])?.map(\.doubleValue) ?? []
                let q = (e["probabilities"] as? [NSNumber])?.map(\.doubleValue) ?? []
                #expect(p.count == 10 && q.count == 10)
                for (a, b) in zip(p, q) { worst = max(worst, abs(a - b)) }
            }
            #expect(worst < 1e-4, "largest probability difference from the numpy reference: \(worst)")
            let errorLines = try await scratch.gunzip(done + "/errors.jsonl.gz")
            #expect(errorLines.isEmpty)

            let report = try Files.json(done + "/report.json")
            #expect(JSON.string(report, "status") == "done")
            #expect(JSON.int(report, "records.read") == 450)
            #expect(JSON.int(report, "records.succeeded") == 450)
            #expect(JSON.int(report, "records.failed") == 0)
            #expect(JSON.int(report, "resumed") == 0)
            for name in ["results.jsonl.gz", "errors.jsonl.gz"] {
                let digest = try await scratch.sha256(done + "/" + name)
                #expect(JSON.output(report, name).sha256 == digest, "\(name) sha256")
                #expect(JSON.output(report, name).bytes == Files.size(done + "/" + name), "\(name) bytes")
            }
            let modelDigest = try await scratch.sha256(E2E.model + "/model.safetensors")
            #expect(JSON.string(report, "model.sha256") == modelDigest)
            let log = try Files.text(done + "/job.log")
            #expect(log.components(separatedBy: "\"job started\"").count - 1 == 1)
            #expect(log.contains("\"job done\""))

            // evaluate
            let evalDone = spool.job("done", "evaluate-digits")
            #expect(Files.list(evalDone) == doneFiles)
            let evalReport = try Files.json(evalDone + "/report.json")
            #expect(JSON.int(evalReport, "records.succeeded") == 450)
            #expect(JSON.int(evalReport, "records.failed") == 0)
            #expect(JSON.int(evalReport, "metrics.count") == 450)
            let accuracy = try #require(JSON.double(evalReport, "metrics.accuracy"))
            // fixtures/models/digits-mlp/TRAINING.md: sklearn test accuracy 0.9733 (438/450).
            #expect(abs(accuracy - 0.9733) < 0.0005, "accuracy \(accuracy)")
            let evalRows = try await JSON.lines(
                scratch.gunzip(evalDone + "/results.jsonl.gz"), what: "evaluate results")
            #expect(evalRows.count == 450)
            let correct = evalRows.filter { ($0["correct"] as? Bool) == true }.count
            #expect(abs(Double(correct) / 450 - accuracy) < 1e-9)
            #expect(evalRows.allSatisfy { $0["probabilities"] == nil })
            // The true labels in the results are the CSV's, in order.
            let csv = try DigitsData.csv()
            #expect(evalRows.map { $0["label"] as? String } == csv.rows.map { String($0.split(separator: ",").last!) })
        }
    }
}
