import Foundation
import Testing

extension EndToEnd {
    /// The text tasks through `run --once` on the tiny random BERT fixtures, checked
    /// against the float64 reference stored with them (fixtures/text/tiny-bert-expected.jsonl).
    @Suite("text jobs")
    struct TextJobs {
        static let embedder = E2E.repoRoot + "/fixtures/models/tiny-bert"
        static let classifier = E2E.repoRoot + "/fixtures/models/tiny-bert-classifier"
        /// fp32 against float64, after printing floats at their shortest round-trip form.
        static let tolerance = 2e-5

        /// The reference's single texts (no pairs) with ids t0, t1, ….
        static func singles() throws -> [[String: Any]] {
            try JSON.lines(Files.read(E2E.repoRoot + "/fixtures/text/tiny-bert-expected.jsonl"), what: "expected")
                .filter { $0["text_pair"] == nil }
        }

        /// The reference's single texts as `{"id": "tN", "text"}` lines in the scratch directory.
        static func singlesFile(_ scratch: Scratch) throws -> String {
            let path = scratch.file("texts.jsonl")
            try Files.write(
                path,
                try singles().enumerated().map { line(["id": "t\($0)", "text": $1["text"]!]) }.joined(separator: "\n")
                    + "\n")
            return path
        }

        static func numbers(_ v: Any?) -> [Double] { (v as? [NSNumber])?.map(\.doubleValue) ?? [] }

        /// One JSON Lines line (JSON.encode pretty-prints).
        static func line(_ o: [String: Any]) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        }

        @Test("embed, score (pairs and queries) and predict: results against the reference, bad records to errors")
        func embedScorePredict() async throws {
            let scratch = try Scratch("text")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles()
            var lines = cases.enumerated().map { i, c in
                Self.line(["id": "t\(i)", "text": c["text"]!, "other": c["text"]!])
            }
            lines.insert(#"{"id": "bad", "other": "no text field"}"#, at: 3)
            let input = scratch.file("texts.jsonl")
            try Files.write(input, lines.joined(separator: "\n") + "\n")
            // Queries: three of the texts themselves, so each is its own best match.
            let queries = scratch.file("queries.jsonl")
            try Files.write(
                queries,
                [0, 5, 9].map { i in
                    Self.line(["qid": "q\(i)", "text": cases[i]["text"]!])
                }.joined(separator: "\n") + "\n")
            let base: [String: Any] = ["path": input, "id_field": "id", "text_field": "text"]
            var pairs = base
            pairs["pair_field"] = "other"
            for (id, task, model, inputBlock, extra) in [
                ("embed", "embed", Self.embedder, base, [String: Any]()),
                ("pairs", "score", Self.embedder, pairs, [:]),
                (
                    "queries", "score", Self.embedder, base,
                    ["score": ["queries": queries, "id_field": "qid", "top_k": 2]]
                ),
                ("predict", "predict", Self.classifier, base, [:])
            ] as [(String, String, String, [String: Any], [String: Any])] {
                var m: [String: Any] = ["version": 1, "id": id, "task": task, "model": model, "input": inputBlock]
                for (k, v) in extra { m[k] = v }
                try spool.drop(id + ".json", try JSON.encode(m))
            }
            let run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "run --once: \(run)")
            #expect(
                spool.jobs("failed").isEmpty,
                "failed: \(spool.jobs("failed").map { (try? Files.text(spool.job("failed", $0) + "/error.json")) ?? $0 })"
            )

            func results(_ id: String) async throws -> [[String: Any]] {
                try await JSON.lines(scratch.gunzip(spool.job("done", id) + "/results.jsonl.gz"), what: id)
            }
            let ids = cases.indices.map { "t\($0)" }

            let embedded = try await results("embed")
            #expect(embedded.map { $0["id"] as? String } == ids)
            var worst = 0.0
            for (r, c) in zip(embedded, cases) {
                for (a, b) in zip(Self.numbers(r["embedding"]), Self.numbers(c["embedding"])) {
                    worst = max(worst, abs(a - b))
                }
                #expect(Self.numbers(r["embedding"]).count == 32)
            }
            #expect(worst <= Self.tolerance, "worst embedding difference \(worst)")
            let errors = try await JSON.lines(
                scratch.gunzip(spool.job("done", "embed") + "/errors.jsonl.gz"), what: "errors")
            #expect(errors.map { $0["id"] as? String } == ["bad"])
            let report = try Files.json(spool.job("done", "embed") + "/report.json")
            #expect(JSON.int(report, "records.succeeded") == cases.count)
            #expect(JSON.int(report, "records.failed") == 1)
            #expect(JSON.string(report, "model.family") == "bert")

            // A text scored against itself: cosine 1.
            let scored = try await results("pairs")
            #expect(scored.map { $0["id"] as? String } == ids)
            #expect(scored.allSatisfy { abs(((($0["score"] as? NSNumber)?.doubleValue) ?? 0) - 1) < 1e-5 })

            let matched = try await results("queries")
            for i in [0, 5, 9] {
                let r = matched[i]
                #expect((r["matches"] as? [String])?.first == "q\(i)", "t\(i): \(r)")
                #expect(abs((Self.numbers(r["scores"]).first ?? 0) - 1) < 1e-5)
                #expect(Self.numbers(r["scores"]).count == 2)
            }

            // The classifier's label is the argmax of the reference logits.
            let predicted = try await results("predict")
            let labels = ["admin", "games", "science"]
            for (r, c) in zip(predicted, cases) {
                let logits = Self.numbers(c["logits"])
                let best = logits.indices.max { logits[$0] < logits[$1] }!
                #expect(r["label"] as? String == labels[best])
            }
        }

        @Test("finetune a head on the frozen encoder; the source model is untouched; evaluate the result")
        func finetuneHead() async throws {
            let scratch = try Scratch("text-finetune")
            defer { scratch.remove() }
            // The model is copied in so the test can check nothing in it changes.
            let model = scratch.file("tiny-bert")
            try await scratch.sh("cp -r '\(Self.embedder)' '\(model)'")
            func contents(_ dir: String) throws -> [String: Data] {
                var out: [String: Data] = [:]
                for case let f as String in FileManager.default.enumerator(atPath: dir)! {
                    var isDir: ObjCBool = false
                    if FileManager.default.fileExists(atPath: dir + "/" + f, isDirectory: &isDir), !isDir.boolValue {
                        out[f] = try Files.read(dir + "/" + f)
                    }
                }
                return out
            }
            let before = try contents(model)
            let spool = try SpoolDir(scratch.file("spool"))
            let data = E2E.repoRoot + "/fixtures/text/debdesc-sample.jsonl"
            let input: [String: Any] = ["path": data, "id_field": "id", "label_field": "section"]
            try spool.drop(
                "head.json",
                try JSON.encode([
                    "version": 1, "id": "head", "task": "finetune", "model": model, "input": input,
                    "train": ["epochs": 5, "learning_rate": 0.01]
                ]))
            var run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "finetune: \(run)")
            let after = try contents(model)
            #expect(after == before, "the source model changed")
            #expect(before.count >= 6)
            let trained = spool.job("done", "head") + "/model"
            #expect(Files.exists(trained + "/head/config.json") && Files.exists(trained + "/head/model.safetensors"))
            #expect(Files.exists(trained + "/model.safetensors") && Files.exists(trained + "/tokenizer.json"))
            #expect(!Files.exists(spool.job("done", "head") + "/embeddings.cache"))
            let report = try Files.json(spool.job("done", "head") + "/report.json")
            #expect(JSON.string(report, "model.family") == "bert")

            try spool.drop(
                "eval.json",
                try JSON.encode(["version": 1, "id": "eval", "task": "evaluate", "model": trained, "input": input]))
            run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path])
            #expect(run.status == 0, "evaluate: \(run)")
            let evaluation = try Files.json(spool.job("done", "eval") + "/report.json")
            #expect(JSON.int(evaluation, "records.succeeded") == 300)
            let accuracy = JSON.double(evaluation, "metrics.accuracy") ?? -1
            #expect(accuracy > 0 && accuracy <= 1)
        }

        @Test("quantize a text encoder (static, smoothed): int8 model published, measured, and used by an embed job")
        func quantizeEncoder() async throws {
            let scratch = try Scratch("text-quantize")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // The debdesc sample, with one record that has no text.
            var lines = try Files.text(E2E.repoRoot + "/fixtures/text/debdesc-sample.jsonl")
                .split(separator: "\n").map(String.init)
            lines.insert(#"{"id": "no-text", "section": "admin"}"#, at: 7)
            let input = scratch.file("texts.jsonl")
            try Files.write(input, lines.joined(separator: "\n") + "\n")
            try spool.drop(
                "q.json",
                try JSON.encode([
                    "version": 1, "id": "q", "task": "quantize", "model": Self.embedder,
                    "input": ["path": input, "id_field": "id"],
                    "quantize": ["scheme": "static", "samples": 200, "smoothing": 0.8]
                ]))
            var run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "quantize: \(run)")
            // A text input cannot calibrate a tabular model: failed, with the reason.
            try spool.drop(
                "mlp.json",
                try JSON.encode([
                    "version": 1, "id": "mlp", "task": "quantize", "model": E2E.model,
                    "input": ["path": input, "format": "txt"]
                ]))
            run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path])
            #expect(run.status != 0)
            let failure = try Files.json(spool.job("failed", "mlp") + "/error.json")
            #expect(JSON.string(failure, "field") == "input.format", "\(failure)")

            let done = spool.job("done", "q")
            #expect(Files.list(done) == ModelTransformTests.modelFiles)
            let report = try Files.json(done + "/report.json")
            #expect(JSON.string(report, "quantization.scheme") == "static")
            #expect(JSON.int(report, "quantization.calibration_records") == 200)
            #expect(JSON.int(report, "records.succeeded") == 300 && JSON.int(report, "records.failed") == 1)
            #expect(JSON.string(report, "metrics.measured_on") == "held-out texts")
            #expect(JSON.int(report, "metrics.measured_texts") == 100)
            let mean = JSON.double(report, "metrics.cosine_mean") ?? 0,
                worst = JSON.double(report, "metrics.cosine_min") ?? 0
            #expect(mean >= 0.98 && worst >= 0.9 && worst <= mean && mean <= 1.000001, "cosine \(mean) / \(worst)")
            let errors = try await JSON.lines(scratch.gunzip(done + "/errors.jsonl.gz"), what: "errors")
            #expect(errors.map { $0["id"] as? String } == ["no-text"])
            let config = try Files.json(done + "/model/config.json")
            #expect(JSON.double(config, "quantization.smoothing") == 0.8)

            // The int8 model embeds; its vectors stay near the fp32 model's.
            for (id, model) in [("fp32", Self.embedder), ("int8", done + "/model")] {
                try spool.drop(
                    id + ".json",
                    try JSON.encode([
                        "version": 1, "id": id, "task": "embed", "model": model,
                        "input": ["path": input, "id_field": "id"]
                    ]))
            }
            run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path])
            #expect(run.status == 0, "embed: \(run)")
            let fp32 = try await JSON.lines(
                scratch.gunzip(spool.job("done", "fp32") + "/results.jsonl.gz"), what: "fp32")
            let int8 = try await JSON.lines(
                scratch.gunzip(spool.job("done", "int8") + "/results.jsonl.gz"), what: "int8")
            #expect(fp32.count == 300 && int8.count == 300)
            var lowest = 1.0
            for (a, b) in zip(fp32, int8) {
                let x = Self.numbers(a["embedding"]), y = Self.numbers(b["embedding"])
                let dot = zip(x, y).map(*).reduce(0, +)
                lowest = min(
                    lowest, dot / (x.map { $0 * $0 }.reduce(0, +) * y.map { $0 * $0 }.reduce(0, +)).squareRoot())
            }
            #expect(lowest >= 0.9, "worst cosine between the fp32 and int8 embed jobs \(lowest)")
            let inspect = try await scratch.quern(["inspect", done + "/model"])
            #expect(inspect.status == 0 && inspect.stdout.contains("static"), "\(inspect)")
        }

        @Test(
            "xlm-roberta (Unigram tokenizer): embed and predict match the reference, tokenize gives tokenizers' ids, a quantize job's int8 model embeds close to fp32; roberta (BPE) embeds"
        )
        func xlmRoberta() async throws {
            let scratch = try Scratch("text-xlmr")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let xlmr = E2E.repoRoot + "/fixtures/models/tiny-xlmr"
            let cases = try JSON.lines(
                Files.read(E2E.repoRoot + "/fixtures/text/tiny-xlmr-expected.jsonl"), what: "expected"
            ).filter { $0["text_pair"] == nil }
            let input = scratch.file("texts.jsonl")
            try Files.write(
                input,
                cases.enumerated().map { Self.line(["id": "t\($0)", "text": $1["text"]!]) }.joined(separator: "\n")
                    + "\n")
            for (id, task, model, extra) in [
                ("embed", "embed", xlmr, [String: Any]()),
                ("predict", "predict", xlmr + "-classifier", [:]),
                ("quantize", "quantize", xlmr, ["quantize": ["scheme": "dynamic"]])
            ] as [(String, String, String, [String: Any])] {
                var m: [String: Any] = [
                    "version": 1, "id": id, "task": task, "model": model, "input": ["path": input, "id_field": "id"]
                ]
                for (k, v) in extra { m[k] = v }
                try spool.drop(id + ".json", try JSON.encode(m))
            }
            var run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0 && spool.jobs("failed").isEmpty, "\(run)")

            let embedded = try await JSON.lines(
                scratch.gunzip(spool.job("done", "embed") + "/results.jsonl.gz"), what: "embed")
            #expect(embedded.count == cases.count)
            var worst = 0.0
            for (r, c) in zip(embedded, cases) {
                for (a, b) in zip(Self.numbers(r["embedding"]), Self.numbers(c["embedding"])) {
                    worst = max(worst, abs(a - b))
                }
            }
            #expect(worst <= Self.tolerance, "worst embedding difference \(worst)")
            let report = try Files.json(spool.job("done", "embed") + "/report.json")
            #expect(JSON.string(report, "model.family") == "xlm-roberta")
            let cut = cases.filter { ($0["ids"] as? [Any])?.count == 64 }.count
            #expect(cut > 0 && JSON.int(report, "metrics.truncated_records") ?? -1 > 0, "\(report)")

            let predicted = try await JSON.lines(
                scratch.gunzip(spool.job("done", "predict") + "/results.jsonl.gz"), what: "predict")
            for (r, c) in zip(predicted, cases) {
                let logits = Self.numbers(c["logits"])
                let best = logits.indices.max { logits[$0] < logits[$1] }!
                #expect(r["label"] as? String == ["admin", "games", "science"][best])
            }

            // `quern tokenize` on the model directory: tokenizers' ids, cut at 64.
            let tokenized = try await scratch.quern(["tokenize", xlmr, "--input", input, "--max-length", "64"])
            #expect(tokenized.status == 0, "\(tokenized)")
            let ids = try JSON.lines(Data(tokenized.stdout.utf8), what: "tokenize").map {
                ($0["ids"] as? [NSNumber])?.map(\.intValue) ?? []
            }
            #expect(ids == cases.map { ($0["ids"] as? [NSNumber])?.map(\.intValue) ?? [] })

            // The quantize job's int8 model is an xlm-roberta model that embeds near fp32.
            let quantized = spool.job("done", "quantize") + "/model"
            try spool.drop(
                "int8.json",
                try JSON.encode([
                    "version": 1, "id": "int8", "task": "embed", "model": quantized,
                    "input": ["path": input, "id_field": "id"]
                ]))
            run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0, "\(run)")
            let int8 = try await JSON.lines(
                scratch.gunzip(spool.job("done", "int8") + "/results.jsonl.gz"), what: "int8")
            var lowest = 1.0
            for (a, c) in zip(int8, cases) {
                let x = Self.numbers(a["embedding"]), y = Self.numbers(c["embedding"])
                lowest = min(lowest, zip(x, y).map(*).reduce(0, +))
            }
            #expect(lowest >= 0.99, "worst cosine of int8 to the reference \(lowest)")

            // RoBERTa with a byte-level BPE tokenizer (roberta-base's setup) embeds too.
            let robertaCases = try JSON.lines(
                Files.read(E2E.repoRoot + "/fixtures/text/tiny-roberta-expected.jsonl"), what: "expected"
            ).filter { $0["text_pair"] == nil }
            let robertaInput = scratch.file("roberta.jsonl")
            try Files.write(
                robertaInput,
                robertaCases.enumerated().map { Self.line(["id": "r\($0)", "text": $1["text"]!]) }
                    .joined(separator: "\n") + "\n")
            try spool.drop(
                "roberta.json",
                try JSON.encode([
                    "version": 1, "id": "roberta", "task": "embed",
                    "model": E2E.repoRoot + "/fixtures/models/tiny-roberta",
                    "input": ["path": robertaInput, "id_field": "id"]
                ]))
            run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0, "\(run)")
            let roberta = try await JSON.lines(
                scratch.gunzip(spool.job("done", "roberta") + "/results.jsonl.gz"), what: "roberta")
            #expect(roberta.count == robertaCases.count)
            var robertaWorst = 0.0
            for (r, c) in zip(roberta, robertaCases) {
                for (a, b) in zip(Self.numbers(r["embedding"]), Self.numbers(c["embedding"])) {
                    robertaWorst = max(robertaWorst, abs(a - b))
                }
            }
            #expect(robertaWorst <= Self.tolerance, "worst roberta embedding difference \(robertaWorst)")
            #expect(
                JSON.string(try Files.json(spool.job("done", "int8") + "/report.json"), "model.family") == "xlm-roberta"
            )
        }

        @Test(
            "output.include_fields: embed (JSONL and NPY) and predict (CSV) carry input fields; a name the task writes fails"
        )
        func includeFields() async throws {
            let scratch = try Scratch("text-include")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles().prefix(4)
            var lines = cases.enumerated().map { i, c in
                Self.line(["id": "t\(i)", "text": c["text"]!, "title": "T\(i)", "meta": ["rank": i, "tags": ["a"]]])
            }
            lines[2] = Self.line(["id": "t2", "text": cases[2]["text"]!])  // no title, no meta
            let jsonl = scratch.file("texts.jsonl")
            try Files.write(jsonl, lines.joined(separator: "\n") + "\n")
            let csv = scratch.file("texts.csv")
            try Files.write(
                csv,
                "id,text,url\n"
                    + cases.enumerated().map { i, c in
                        "t\(i),\"\((c["text"] as! String).replacingOccurrences(of: "\"", with: "\"\""))\",http://e/\(i)"
                    }.joined(separator: "\n")
                    + "\n")
            for (id, task, model, input, output) in [
                ("embed", "embed", Self.embedder, jsonl, ["include_fields": ["title", "meta"]]),
                ("npy", "embed", Self.embedder, jsonl, ["format": "npy", "include_fields": ["title"]]),
                ("predict", "predict", Self.classifier, csv, ["include_fields": ["url"]])
            ] as [(String, String, String, String, [String: Any])] {
                try spool.drop(
                    id + ".json",
                    try JSON.encode([
                        "version": 1, "id": id, "task": task, "model": model,
                        "input": ["path": input, "id_field": "id"], "output": output
                    ]))
            }
            var run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "\(run)")
            func results(_ id: String) async throws -> [[String: Any]] {
                try await JSON.lines(scratch.gunzip(spool.job("done", id) + "/results.jsonl.gz"), what: id)
            }
            let embedded = try await results("embed")
            #expect(embedded.map { $0["title"] as? String } == ["T0", "T1", nil, "T3"])
            #expect(embedded[2].keys.contains("title") && embedded[2]["title"] is NSNull)
            #expect(((embedded[1]["meta"] as? [String: Any])?["rank"] as? NSNumber)?.intValue == 1)
            #expect(Self.numbers(embedded[0]["embedding"]).count == 32)
            let rows = try await results("npy")
            #expect(rows.map { ($0["row"] as? NSNumber)?.intValue } == [0, 1, 2, 3])
            #expect(rows.map { $0["title"] as? String } == ["T0", "T1", nil, "T3"])
            let predicted = try await results("predict")
            #expect(predicted.map { $0["url"] as? String } == (0..<4).map { "http://e/\($0)" })
            #expect(predicted.allSatisfy { $0["label"] is String })

            // "embedding" is the embed task's own field.
            try spool.drop(
                "clash.json",
                try JSON.encode([
                    "version": 1, "id": "clash", "task": "embed", "model": Self.embedder,
                    "input": ["path": jsonl, "id_field": "id"], "output": ["include_fields": ["embedding"]]
                ]))
            run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path])
            #expect(run.status != 0)
            let error = try Files.json(spool.job("failed", "clash") + "/error.json")
            #expect(JSON.string(error, "field") == "output.include_fields", "\(error)")
        }

        @Test(
            "prompts: the model's default, prompt_name, a literal prompt and \"\" embed prompt + text; unknown names fail"
        )
        func prompts() async throws {
            let scratch = try Scratch("text-prompts")
            defer { scratch.remove() }
            let model = scratch.file("e5-like")
            try await scratch.sh("cp -r '\(Self.embedder)' '\(model)'")
            try Files.write(
                model + "/config_sentence_transformers.json",
                #"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "query"}"#)
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles().prefix(5).map { $0["text"] as! String }
            func write(_ name: String, _ prefix: String) throws -> String {
                let path = scratch.file(name)
                try Files.write(
                    path,
                    cases.enumerated().map { Self.line(["id": "t\($0)", "text": prefix + $1]) }.joined(separator: "\n")
                        + "\n")
                return path
            }
            let plain = try write("plain.jsonl", ""), query = try write("query.jsonl", "query: ")
            let passage = try write("passage.jsonl", "passage: ")
            for (id, input, extra) in [
                ("default", plain, [String: Any]()), ("named", plain, ["prompt_name": "passage"]),
                ("literal", plain, ["prompt": "passage: "]), ("query-text", query, ["prompt": ""]),
                ("passage-text", passage, ["prompt": ""]), ("unknown", plain, ["prompt_name": "document"])
            ] as [(String, String, [String: Any])] {
                var m: [String: Any] = [
                    "version": 1, "id": id, "task": "embed", "model": model, "input": ["path": input, "id_field": "id"]
                ]
                for (k, v) in extra { m[k] = v }
                try spool.drop(id + ".json", try JSON.encode(m))
            }
            let run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status != 0, "the unknown prompt name fails")
            func vectors(_ id: String) async throws -> [[Double]] {
                try await JSON.lines(scratch.gunzip(spool.job("done", id) + "/results.jsonl.gz"), what: id).map {
                    Self.numbers($0["embedding"])
                }
            }
            let byDefault = try await vectors("default"), queryText = try await vectors("query-text")
            #expect(byDefault == queryText)
            let passageText = try await vectors("passage-text")
            #expect(try await vectors("named") == passageText)
            #expect(try await vectors("literal") == passageText)
            #expect(byDefault != passageText)
            let report = try Files.json(spool.job("done", "named") + "/report.json")
            #expect(JSON.string(report, "metrics.prompt") == "passage: ", "\(report)")
            let error = try Files.json(spool.job("failed", "unknown") + "/error.json")
            #expect(JSON.string(error, "field") == "prompt_name")
            #expect((JSON.string(error, "message") ?? "").contains("passage, query"), "\(error)")
        }

        @Test(
            "embed.dimensions keeps the first values renormalised; mark_truncated flags cut texts, the report counts them"
        )
        func dimensionsAndTruncation() async throws {
            let scratch = try Scratch("text-dimensions")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles()
            let input = try Self.singlesFile(scratch)
            for (id, extra) in [
                ("full", [String: Any]()),
                ("short", ["embed": ["dimensions": 12, "mark_truncated": true], "max_length": 8]),
                ("npy", ["embed": ["dimensions": 12], "output": ["format": "npy"]])
            ] as [(String, [String: Any])] {
                var m: [String: Any] = [
                    "version": 1, "id": id, "task": "embed", "model": Self.embedder,
                    "input": ["path": input, "id_field": "id"]
                ]
                for (k, v) in extra { m[k] = v }
                try spool.drop(id + ".json", try JSON.encode(m))
            }
            try spool.drop(
                "wide.json",
                try JSON.encode([
                    "version": 1, "id": "wide", "task": "embed", "model": Self.embedder,
                    "input": ["path": input, "id_field": "id"], "embed": ["dimensions": 33]
                ]))
            let run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status != 0, "the 33-dimension job fails")
            #expect(
                JSON.string(try Files.json(spool.job("failed", "wide") + "/error.json"), "field") == "embed.dimensions")

            func lines(_ id: String) async throws -> [[String: Any]] {
                try await JSON.lines(scratch.gunzip(spool.job("done", id) + "/results.jsonl.gz"), what: id)
            }
            let full = try await lines("full"), short = try await lines("short")
            // With 8 tokens, the texts of more than 6 word pieces are cut.
            let pieces = cases.map { (($0["ids"] as? [Any])?.count ?? 0) }
            #expect(short.map { $0["truncated"] as? Bool } == pieces.map { $0 > 8 })
            let report = try Files.json(spool.job("done", "short") + "/report.json")
            #expect(JSON.int(report, "metrics.truncated_records") == pieces.filter { $0 > 8 }.count)
            #expect(JSON.int(report, "metrics.dimension") == 12 && JSON.int(report, "metrics.model_dimension") == 32)
            // The model's own limit (64) cuts 3 of the fixture's four 64-token texts: the
            // fourth is exactly 64 tokens (scripts/make_tiny_bert.py), which fits.
            #expect(
                JSON.int(try Files.json(spool.job("done", "full") + "/report.json"), "metrics.truncated_records") == 3)
            #expect(pieces.filter { $0 == 64 }.count == 4)
            #expect(full.allSatisfy { $0["truncated"] == nil })
            for (f, s) in zip(full, short) where !(s["truncated"] as? Bool ?? true) {
                let head = Array(Self.numbers(f["embedding"]).prefix(12))
                let norm = head.map { $0 * $0 }.reduce(0, +).squareRoot()
                let got = Self.numbers(s["embedding"])
                #expect(got.count == 12)
                for (a, b) in zip(got, head) { #expect(abs(a - b / norm) <= 1e-5) }
            }
            let npy = try await scratch.gunzip(spool.job("done", "npy") + "/results.npy.gz")
            #expect(String(decoding: npy.prefix(128), as: UTF8.self).contains("'shape': (\(cases.count), 12)"))
        }

        @Test("embed to NPY: float32 and int8 arrays in results.npy.gz, ids and rows (and scales) in results.jsonl.gz")
        func npyOutput() async throws {
            let scratch = try Scratch("text-npy")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles()
            let input = scratch.file("texts.jsonl")
            try Files.write(
                input,
                cases.enumerated().map { i, c in
                    Self.line(["id": "t\(i)", "text": c["text"]!])
                }.joined(separator: "\n") + "\n")
            let dtypes = ["float32", "int8", "binary", "ubinary"]
            for dtype in dtypes {
                try spool.drop(
                    dtype + ".json",
                    try JSON.encode([
                        "version": 1, "id": dtype, "task": "embed", "model": Self.embedder,
                        "input": ["path": input, "id_field": "id"],
                        "output": ["format": "npy", "dtype": dtype]
                    ]))
            }
            let run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "run --once: \(run)")
            var floats: [UInt8] = []
            for dtype in dtypes {
                let done = spool.job("done", dtype)
                #expect(
                    Files.list(done) == [
                        "errors.jsonl.gz", "job.log", "manifest.json", "report.json", "results.jsonl.gz",
                        "results.npy.gz"
                    ])
                let rows = try await JSON.lines(scratch.gunzip(done + "/results.jsonl.gz"), what: "rows")
                #expect(rows.map { $0["id"] as? String } == cases.indices.map { "t\($0)" })
                #expect(rows.map { ($0["row"] as? NSNumber)?.intValue } == cases.indices.map { $0 })
                let npy = [UInt8](try await scratch.gunzip(done + "/results.npy.gz"))
                #expect(Array(npy[0..<6]) == [0x93] + Array("NUMPY".utf8))
                let headerLength = Int(npy[8]) | Int(npy[9]) << 8
                let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
                #expect((10 + headerLength) % 64 == 0)
                let body = Array(npy[(10 + headerLength)...])
                if dtype.hasSuffix("binary") {
                    // sentence-transformers' packing of the float32 job's vectors: bit
                    // 7 − d mod 8 of byte d / 8 set when value d > 0; binary stores byte − 128.
                    #expect(
                        header.contains("'shape': (\(cases.count), 4)")
                            && header.contains(dtype == "binary" ? "'|i1'" : "'|u1'"), "\(header)")
                    #expect(body.count == cases.count * 4)
                    for i in cases.indices {
                        for b in 0..<4 {
                            var byte = 0
                            for d in (8 * b)..<(8 * b + 8) {
                                let v = floats.withUnsafeBytes {
                                    $0.loadUnaligned(fromByteOffset: (i * 32 + d) * 4, as: Float.self)
                                }
                                if v > 0 { byte |= 0x80 >> (d % 8) }
                            }
                            #expect(
                                Int(body[i * 4 + b]) == (dtype == "binary" ? (byte + 128) % 256 : byte),
                                "\(dtype) row \(i) byte \(b)")
                        }
                    }
                    continue
                }
                if dtype == "float32" { floats = body }
                #expect(header.contains("'shape': (\(cases.count), 32)"), "\(header)")
                #expect(header.contains(dtype == "float32" ? "'<f4'" : "'|i1'"))
                #expect(body.count == cases.count * 32 * (dtype == "float32" ? 4 : 1))
                var worst = 0.0
                for (i, c) in cases.enumerated() {
                    let expected = Self.numbers(c["embedding"])
                    let scale = (rows[i]["scale"] as? NSNumber)?.doubleValue ?? 1
                    for d in 0..<32 {
                        let v =
                            dtype == "float32"
                            ? Double(
                                body.withUnsafeBytes {
                                    $0.loadUnaligned(fromByteOffset: (i * 32 + d) * 4, as: Float.self)
                                })
                            : Double(Int8(bitPattern: body[i * 32 + d])) * scale
                        worst = max(worst, abs(v - expected[d]))
                    }
                }
                // int8 rows: half a step of a scale of at most 1/127 (unit vectors).
                #expect(
                    worst <= (dtype == "float32" ? Self.tolerance : 0.5 / 127 + Self.tolerance),
                    "\(dtype): worst \(worst)")
            }
        }

        @Test("embed.chunk: long texts in overlapping windows averaged into one unit vector; short ones as before")
        func chunks() async throws {
            let scratch = try Scratch("text-chunks")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles()
            let input = try Self.singlesFile(scratch)
            for (id, embed) in [("plain", [String: Any]()), ("chunked", ["chunk": ["tokens": 16, "overlap": 4]])] {
                try spool.drop(
                    id + ".json",
                    try JSON.encode([
                        "version": 1, "id": id, "task": "embed", "model": Self.embedder,
                        "input": ["path": input, "id_field": "id"], "embed": embed
                    ]))
            }
            let r = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(r.status == 0, "\(r)")
            let plain = try await JSON.lines(
                scratch.gunzip(spool.job("done", "plain") + "/results.jsonl.gz"), what: "p")
            let chunked = try await JSON.lines(
                scratch.gunzip(spool.job("done", "chunked") + "/results.jsonl.gz"), what: "c")
            #expect(chunked.count == cases.count)
            for (i, c) in cases.enumerated() {
                let pieces = (c["ids"] as? [Any])?.count ?? 0, n = chunked[i]["chunks"] as? Int ?? 0
                let v = Self.numbers(chunked[i]["embedding"])
                #expect(abs(v.map { $0 * $0 }.reduce(0, +) - 1) < 1e-5, "t\(i) is a unit vector")
                if pieces <= 16 {
                    // One window: the very sequence the plain job ran.
                    #expect(n == 1, "t\(i)")
                    for (a, b) in zip(v, Self.numbers(plain[i]["embedding"])) { #expect(abs(a - b) < 1e-5) }
                } else {
                    // Windows of 14 text tokens, 10 apart: at least ceil((pieces - 2 - 14) / 10) + 1.
                    #expect(n >= (pieces - 2 - 14 + 9) / 10 + 1, "t\(i): \(n) chunks for \(pieces) tokens")
                }
            }
            #expect(chunked.contains { ($0["chunks"] as? Int ?? 0) >= 9 }, "the 100-token text spans many windows")
        }

        @Test(
            "embed.chunk rows chunk: a row per window with its token and character offsets (WordPiece and Unigram), JSONL and NPY, averaging to the pooled vector"
        )
        func chunkRows() async throws {
            let scratch = try Scratch("text-chunk-rows")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // Long texts (debdesc lines joined), a short one, one with runs of spaces and a
            // tab, and a record with no text.
            let sample = try Files.text(E2E.repoRoot + "/fixtures/text/debdesc-sample.jsonl").split(separator: "\n")
                .compactMap { try? JSON.object(Data($0.utf8), what: "sample")["text"] as? String }
            let texts = [
                sample[0..<6].joined(separator: " "), "short text", "  spaced   out\twords  and ñandú café  ",
                sample[6..<20].joined(separator: " ")
            ]
            var lines = texts.enumerated().map { Self.line(["id": "t\($0)", "text": $1, "src": "s\($0)"]) }
            lines.append(#"{"id": "none"}"#)
            let input = scratch.file("texts.jsonl")
            try Files.write(input, lines.joined(separator: "\n") + "\n")
            let models = ["bert": Self.embedder, "xlmr": E2E.repoRoot + "/fixtures/models/tiny-xlmr"]
            for (name, model) in models {
                for (mode, output) in [("chunk", "jsonl"), ("chunk", "npy"), ("record", "jsonl")] {
                    try spool.drop(
                        "\(name)-\(mode)-\(output).json",
                        try JSON.encode([
                            "version": 1, "id": "\(name)-\(mode)-\(output)", "task": "embed", "model": model,
                            "input": ["path": input, "id_field": "id"],
                            "output": ["format": output, "include_fields": ["src"]],
                            "embed": ["chunk": ["tokens": 16, "overlap": 4, "rows": mode]]
                        ]))
                }
            }
            var run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0 && spool.jobs("failed").isEmpty, "\(run)")
            // Windows with no room for text beyond the overlap are refused before the job runs.
            try spool.drop(
                "narrow.json",
                try JSON.encode([
                    "version": 1, "id": "narrow", "task": "embed", "model": Self.embedder,
                    "input": ["path": input, "id_field": "id"], "prompt": "one two three",
                    "embed": ["chunk": ["tokens": 8, "overlap": 4, "rows": "chunk"]]
                ]))
            run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            let narrow = try Files.json(spool.job("failed", "narrow") + "/error.json")
            #expect(JSON.string(narrow, "field") == "embed.chunk", "\(narrow)")
            #expect(JSON.string(narrow, "message")?.contains("shorten the prompt") == true, "\(narrow)")
            for name in models.keys.sorted() {
                let rows = try await JSON.lines(
                    scratch.gunzip(spool.job("done", "\(name)-chunk-jsonl") + "/results.jsonl.gz"), what: name)
                let pooled = try await JSON.lines(
                    scratch.gunzip(spool.job("done", "\(name)-record-jsonl") + "/results.jsonl.gz"), what: name)
                #expect(pooled.map { $0["id"] as? String } == texts.indices.map { "t\($0)" })
                for (t, text) in texts.enumerated() {
                    let mine = rows.filter { $0["id"] as? String == "t\(t)" }
                    let n = pooled[t]["chunks"] as? Int ?? -1
                    #expect(mine.count == n, "\(name) t\(t): \(mine.count) rows, \(n) chunks")
                    #expect(mine.map { $0["chunk"] as? Int } == (0..<n).map { $0 })
                    #expect(mine.allSatisfy { $0["src"] as? String == "s\(t)" }, "every row carries include_fields")
                    // Windows of 14 text tokens, 10 apart, the last reaching the end.
                    let starts = mine.map { $0["token_start"] as? Int ?? -1 },
                        ends = mine.map { $0["token_end"] as? Int ?? -1 }
                    #expect(starts == (0..<n).map { $0 * 10 }, "\(name) t\(t): \(starts)")
                    #expect(zip(starts, ends).allSatisfy { $1 - $0 <= 14 && $1 > $0 }, "\(name) t\(t): \(ends)")
                    // Character offsets: whole space-separated words of the text, in order.
                    let scalars = Array(text.unicodeScalars)
                    for row in mine {
                        guard let a = row["char_start"] as? Int, let b = row["char_end"] as? Int else {
                            Issue.record("\(name) t\(t): no character offsets in \(row)")
                            continue
                        }
                        #expect(a < b && b <= scalars.count)
                        #expect(a == 0 || scalars[a - 1] == " ", "\(name) t\(t) starts inside a word at \(a)")
                        #expect(b == scalars.count || scalars[b] == " ", "\(name) t\(t) ends inside a word at \(b)")
                    }
                    let firstWord = scalars.firstIndex { $0 != " " } ?? 0
                    let lastWord = (scalars.lastIndex { $0 != " " } ?? 0) + 1
                    #expect(
                        mine.first?["char_start"] as? Int == firstWord && mine.last?["char_end"] as? Int == lastWord)
                    // The pooled vector is the renormalised mean of the rows' vectors.
                    var mean = [Double](repeating: 0, count: 32)
                    for row in mine { for (d, v) in Self.numbers(row["embedding"]).enumerated() { mean[d] += v } }
                    let norm = mean.map { $0 * $0 }.reduce(0, +).squareRoot()
                    for (a, b) in zip(mean, Self.numbers(pooled[t]["embedding"])) {
                        #expect(abs(a / norm - b) < 1e-5, "\(name) t\(t)")
                    }
                }
                #expect(rows.count > texts.count + 4)
                let report = try Files.json(spool.job("done", "\(name)-chunk-jsonl") + "/report.json")
                #expect(JSON.int(report, "records.succeeded") == texts.count && JSON.int(report, "records.failed") == 1)
                #expect(JSON.int(report, "records.result_lines") == rows.count)

                // NPY: one vector per row, numbered in order, the same values.
                let done = spool.job("done", "\(name)-chunk-npy")
                let located = try await JSON.lines(scratch.gunzip(done + "/results.jsonl.gz"), what: "npy rows")
                #expect(located.map { $0["row"] as? Int } == rows.indices.map { $0 })
                #expect(located.map { $0["chunk"] as? Int } == rows.map { $0["chunk"] as? Int })
                let npy = [UInt8](try await scratch.gunzip(done + "/results.npy.gz"))
                let headerLength = Int(npy[8]) | Int(npy[9]) << 8
                let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
                #expect(header.contains("'shape': (\(rows.count), 32)"), "\(header)")
                let body = Array(npy[(10 + headerLength)...])
                for (i, row) in rows.enumerated() {
                    for (d, v) in Self.numbers(row["embedding"]).enumerated() {
                        let stored = body.withUnsafeBytes {
                            $0.loadUnaligned(fromByteOffset: (i * 32 + d) * 4, as: Float.self)
                        }
                        #expect(abs(Double(stored) - v) < 1e-6)
                    }
                }
            }
        }

        @Test(
            "calibrated int8/uint8 vectors: quern ranges of a float32 job, then output.ranges, as sentence-transformers quantizes"
        )
        func calibratedVectors() async throws {
            let scratch = try Scratch("text-ranges")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let input = E2E.repoRoot + "/fixtures/text/debdesc-sample.jsonl"
            func embed(_ id: String, _ output: [String: Any]) throws {
                try spool.drop(
                    id + ".json",
                    try JSON.encode([
                        "version": 1, "id": id, "task": "embed", "model": Self.embedder,
                        "input": ["path": input, "id_field": "id"], "output": output
                    ]))
            }
            try embed("floats", ["format": "npy"])
            var r = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(r.status == 0, "\(r)")
            let ranges = scratch.file("ranges.npy")
            r = try await scratch.quern(["ranges", spool.job("done", "floats") + "/results.npy.gz", ranges])
            #expect(r.status == 0 && r.stdout.contains("ranges of 300 vectors"), "\(r)")
            for dtype in ["int8", "uint8"] { try embed(dtype, ["format": "npy", "dtype": dtype, "ranges": ranges]) }
            r = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path])
            #expect(r.status == 0, "\(r)")

            func body(_ id: String) async throws -> (header: String, body: [UInt8]) {
                let npy = [UInt8](try await scratch.gunzip(spool.job("done", id) + "/results.npy.gz"))
                let n = Int(npy[8]) | Int(npy[9]) << 8
                return (String(decoding: npy[10..<(10 + n)], as: UTF8.self), Array(npy[(10 + n)...]))
            }
            let floats = try await body("floats").body.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let rows = floats.count / 32
            #expect(rows == 300)
            var lo = [Float](repeating: .infinity, count: 32), hi = [Float](repeating: -.infinity, count: 32)
            for i in 0..<rows {
                for d in 0..<32 {
                    lo[d] = min(lo[d], floats[i * 32 + d])
                    hi[d] = max(hi[d], floats[i * 32 + d])
                }
            }
            for dtype in ["int8", "uint8"] {
                let (header, bytes) = try await body(dtype)
                #expect(header.contains(dtype == "int8" ? "'|i1'" : "'|u1'") && header.contains("'shape': (300, 32)"))
                var mismatches = 0
                for i in 0..<rows {
                    for d in 0..<32 {
                        // quantize_embeddings: clip(floor((x - min) / step), 0, 255), step = (max - min) / 255.
                        let step = (hi[d] - lo[d]) / 255
                        let q = min(max(((floats[i * 32 + d] - lo[d]) / (step == 0 ? 1 : step)).rounded(.down), 0), 255)
                        let want = dtype == "int8" ? (Int(q) + 128) % 256 : Int(q)
                        if Int(bytes[i * 32 + d]) != want { mismatches += 1 }
                    }
                }
                #expect(mismatches == 0, "\(dtype): \(mismatches) values differ")
                let lines = try await JSON.lines(
                    scratch.gunzip(spool.job("done", dtype) + "/results.jsonl.gz"), what: dtype)
                #expect(lines.allSatisfy { $0["scale"] == nil && $0["row"] != nil })
            }
        }

        @Test("quern submit records the query file's path absolute, like input.path and model")
        func submitQueries() async throws {
            let scratch = try Scratch("text-submit")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let submit = try await scratch.quern(
                ["submit", "jobs/score-queries.json", spool.root, "--root", E2E.repoRoot], cwd: E2E.repoRoot)
            #expect(submit.status == 0, "submit: \(submit)")
            let queued = try Files.json(spool.dir("incoming") + "/score-queries.json")
            #expect(JSON.string(queued, "score.queries") == E2E.repoRoot + "/fixtures/text/queries.jsonl")
            let run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot])
            #expect(run.status == 0, "run --once: \(run)")
            let rows = try await JSON.lines(
                scratch.gunzip(spool.job("done", "score-queries") + "/results.jsonl.gz"), what: "rows")
            #expect(rows.count == 300)
            #expect(rows.allSatisfy { ($0["matches"] as? [String])?.count == 3 })
        }

        @Test("a text task on a tabular model, and score without pairs or queries, fail with a named field")
        func badManifests() async throws {
            let scratch = try Scratch("text-bad")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let data = E2E.repoRoot + "/fixtures/text/debdesc-sample.jsonl"
            try spool.drop(
                "wrong-model.json",
                try JSON.encode([
                    "version": 1, "id": "wrong-model", "task": "embed", "model": E2E.model,
                    "input": ["path": data]
                ]))
            try spool.drop(
                "no-pairs.json",
                try JSON.encode([
                    "version": 1, "id": "no-pairs", "task": "score", "model": Self.embedder,
                    "input": ["path": data]
                ]))
            let run = try await scratch.quern(["run", "--once", spool.root, "--root", E2E.repoRoot])
            #expect(run.status == 1)
            let wrong = try Files.json(spool.job("failed", "wrong-model") + "/error.json")
            #expect(JSON.string(wrong, "field") == "model")
            #expect((JSON.string(wrong, "message") ?? "").contains("text encoder"))
            let noPairs = try Files.json(spool.job("failed", "no-pairs") + "/error.json")
            #expect(JSON.string(noPairs, "field") == "score.queries")
        }

        @Test(
            "OpenAI Batch embeddings requests: OpenAI's output lines with the reference vectors, failures in its error shape"
        )
        func openAIEmbeddings() async throws {
            let scratch = try Scratch("text-openai")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.singles()
            func request(_ id: String, _ body: [String: Any], url: String = "/v1/embeddings") -> String {
                Self.line(["custom_id": id, "method": "POST", "url": url, "body": body])
            }
            let lines = [
                request("one", ["model": "text-embedding-3-small", "input": cases[0]["text"]!]),
                request("two", ["input": [cases[1]["text"]!, cases[2]["text"]!], "encoding_format": "base64"]),
                request("dims", ["input": "x", "dimensions": 33]),
                request("chat", ["input": "x"], url: "/v1/chat/completions"),
                request("odd", ["input": "x", "temperature": 1]),
                request("three", ["input": [cases[3]["text"]!], "user": "u1"]),
                request("short", ["input": cases[4]["text"]!, "dimensions": 8])
            ]
            let input = scratch.file("requests.jsonl")
            try Files.write(input, lines.joined(separator: "\n") + "\n")
            try spool.drop(
                "oa.json",
                try JSON.encode([
                    "version": 1, "id": "oa", "task": "embed", "model": Self.embedder,
                    "input": ["path": input, "format": "openai-batch"]
                ]))
            let run = try await scratch.quern([
                "run", "--once", spool.root, "--root", E2E.repoRoot, "--root", scratch.path
            ])
            #expect(run.status == 0, "run --once: \(run)")
            let results = try await JSON.lines(
                scratch.gunzip(spool.job("done", "oa") + "/results.jsonl.gz"), what: "results")
            #expect(results.map { $0["custom_id"] as? String } == ["one", "two", "three", "short"])
            func vectors(_ r: [String: Any]) -> [[Double]] {
                let data = (JSON.get(r, ["response", "body", "data"]) as? [[String: Any]]) ?? []
                return data.map { d in
                    if let s = d["embedding"] as? String, let bytes = Data(base64Encoded: s) {
                        return stride(from: 0, to: bytes.count, by: 4).map { i in
                            Double(
                                Float(
                                    bitPattern: bytes[i..<(i + 4)].enumerated().reduce(UInt32(0)) {
                                        $0 | UInt32($1.element) << (8 * $1.offset)
                                    }))
                        }
                    }
                    return Self.numbers(d["embedding"])
                }
            }
            let expected = [[cases[0]], [cases[1], cases[2]], [cases[3]]]
            for (r, want) in zip(results, expected) {
                #expect((r["id"] as? String)?.hasPrefix("batch_req_") == true)
                #expect(JSON.get(r, ["response", "status_code"]) as? Int == 200)
                #expect(JSON.get(r, ["response", "body", "object"]) as? String == "list")
                let got = vectors(r)
                #expect(got.count == want.count)
                for (g, w) in zip(got, want) {
                    for (a, b) in zip(g, Self.numbers(w["embedding"])) { #expect(abs(a - b) <= Self.tolerance) }
                }
                #expect((JSON.get(r, ["response", "body", "usage", "prompt_tokens"]) as? Int ?? 0) > 0)
            }
            // dimensions: the first 8 values, renormalised (the model normalises).
            let head = Array(Self.numbers(cases[4]["embedding"]).prefix(8))
            let norm = head.map { $0 * $0 }.reduce(0, +).squareRoot()
            let short = vectors(results[3]).first ?? []
            #expect(short.count == 8)
            for (a, b) in zip(short, head.map { $0 / norm }) { #expect(abs(a - b) <= Self.tolerance * 4) }
            let errors = try await JSON.lines(
                scratch.gunzip(spool.job("done", "oa") + "/errors.jsonl.gz"), what: "errors")
            #expect(errors.map { $0["custom_id"] as? String } == ["dims", "chat", "odd"])
            for e in errors {
                #expect(JSON.get(e, ["response", "status_code"]) as? Int == 400)
                #expect(JSON.get(e, ["response", "body", "error", "message"]) as? String != nil)
            }
            #expect(JSON.get(errors[2], ["response", "body", "error", "param"]) as? String == "body.temperature")
        }
    }
}
