import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// `generate` jobs on the tiny random decoders: greedy tokens against transformers'
    /// (fixtures/text/tiny-decoders-expected.jsonl), OpenAI Batch lines, bad records, and
    /// outputs that depend only on the records: the same bytes on 1 or 2 threads, at any
    /// batch size, and after a kill -9 and a resume.
    @Suite("generate jobs")
    struct GenerateJobs {
        static let llama = E2E.repoRoot + "/fixtures/models/tiny-llama"
        static let qwen2 = E2E.repoRoot + "/fixtures/models/tiny-qwen2"

        static func expected(_ model: String) throws -> [[String: Any]] {
            try JSON.lines(Files.read(E2E.repoRoot + "/fixtures/text/tiny-decoders-expected.jsonl"), what: "expected")
                .filter { $0["model"] as? String == model }
        }

        static func line(_ o: [String: Any]) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        }

        static func manifest(
            _ id: String, model: String, input: String, format: String = "jsonl", _ extra: [String: Any]
        )
            throws -> Data
        {
            var m: [String: Any] = [
                "version": 1, "id": id, "task": "generate", "model": model,
                "input": ["path": input, "format": format, "id_field": format == "jsonl" ? "id" : "custom_id"]
            ]
            for (k, v) in extra { m[k] = v }
            return try JSON.encode(m)
        }

        @Test("greedy token ids equal transformers'; chat, token-id prompts and overrides run; bad records are named")
        func greedyAndBadRecords() async throws {
            let scratch = try Scratch("generate")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            let cases = try Self.expected("tiny-llama")
            var lines = cases.enumerated().map { i, c in Self.line(["id": "g\(i)", "prompt": c["text"]!]) }
            lines += [
                Self.line(["id": "chat", "messages": [["role": "user", "content": "hello"]], "max_tokens": 5]),
                Self.line(["id": "ids", "prompt": [1, 5, 7], "max_tokens": 3]),
                Self.line(["id": "empty", "messages": [] as [Any]]),
                Self.line(["id": "zero", "prompt": "x", "max_tokens": 0]),
                Self.line(["id": "long", "prompt": String(repeating: "x ", count: 400)]),
                Self.line(["id": "outside", "prompt": [1, 99999]]),
                Self.line(["id": "hot", "prompt": "x", "temperature": 9]),
                "{\"id\": \"broken\", \"prompt\": \"no end"
            ]
            let input = scratch.file("prompts.jsonl")
            try Files.write(input, lines.joined(separator: "\n") + "\n")
            try spool.drop(
                "gen.json",
                try Self.manifest(
                    "gen", model: Self.llama, input: input,
                    ["generate": ["max_tokens": 24, "temperature": 0, "return_token_ids": true], "batch_size": 4]))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0, "run --once: \(run)")
            let results = try await JSON.lines(
                scratch.gunzip(spool.job("done", "gen") + "/results.jsonl.gz"), what: "results")
            #expect(results.map { $0["id"] as? String } == cases.indices.map { "g\($0)" } + ["chat", "ids"])
            for (r, c) in zip(results, cases) {
                #expect((r["token_ids"] as? [Int]) == (c["greedy"] as? [Int]), "\(r["id"] ?? "?")")
                #expect(r["finish_reason"] as? String == "length" && r["completion_tokens"] as? Int == 24)
                #expect(r["prompt_tokens"] as? Int == (c["ids"] as? [Int])?.count)
            }
            #expect(results.last?["completion_tokens"] as? Int == 3 && results.last?["prompt_tokens"] as? Int == 3)
            let errors = try await JSON.lines(
                scratch.gunzip(spool.job("done", "gen") + "/errors.jsonl.gz"), what: "errors")
            let byID = Dictionary(errors.map { (($0["id"] as? String) ?? "line \($0["line"] ?? "?")", $0) }) { a, _ in a
            }
            #expect(Set(byID.keys) == ["empty", "zero", "long", "outside", "hot", "line \(lines.count)"])
            #expect((byID["long"]?["message"] as? String)?.contains("context is 256") == true)
            #expect((byID["zero"]?["message"] as? String)?.contains("max_tokens") == true)
            let report = try Files.json(spool.job("done", "gen") + "/report.json")
            #expect(JSON.get(report, ["metrics", "completion_tokens"]) as? Int == 24 * cases.count + 5 + 3)
            // Generation reports its tokens/s beside records/s.
            let tokensPerSecond = try #require(JSON.get(report, ["throughput", "tokens_per_second"]) as? Double)
            let recordsPerSecond = try #require(JSON.get(report, ["throughput", "records_per_second"]) as? Double)
            #expect(tokensPerSecond > recordsPerSecond && recordsPerSecond > 0, "\(report["throughput"] ?? "-")")
            #expect(JSON.get(report, ["throughput", "prompt_tokens_per_second"]) as? Double ?? 0 > 0)
        }

        @Test("OpenAI Batch chat and completion requests: OpenAI's output and error lines")
        func openAIBatch() async throws {
            let scratch = try Scratch("generate-openai")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop(
                "oa.json",
                try Self.manifest(
                    "oa", model: Self.qwen2, input: E2E.repoRoot + "/fixtures/text/openai-batch-requests.jsonl",
                    format: "openai-batch", [:]))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(run.status == 0, "run --once: \(run)")
            let results = try await JSON.lines(
                scratch.gunzip(spool.job("done", "oa") + "/results.jsonl.gz"), what: "results")
            #expect(results.map { $0["custom_id"] as? String } == ["request-1", "request-2", "request-3"])
            for r in results {
                #expect((r["id"] as? String)?.hasPrefix("batch_req_") == true && r["error"] is NSNull)
                #expect(JSON.get(r, ["response", "status_code"]) as? Int == 200)
                let usage = JSON.get(r, ["response", "body", "usage"]) as? [String: Any] ?? [:]
                #expect(
                    (usage["total_tokens"] as? Int) == (usage["prompt_tokens"] as? Int ?? -1)
                        + (usage["completion_tokens"] as? Int ?? -1))
            }
            #expect(JSON.get(results[0], ["response", "body", "object"]) as? String == "chat.completion")
            let choice = (JSON.get(results[0], ["response", "body", "choices"]) as? [[String: Any]])?.first ?? [:]
            #expect(JSON.get(choice, ["message", "role"]) as? String == "assistant" && choice["logprobs"] is NSNull)
            #expect(JSON.get(results[1], ["response", "body", "object"]) as? String == "text_completion")
            let text = (JSON.get(results[1], ["response", "body", "choices"]) as? [[String: Any]])?.first ?? [:]
            #expect((JSON.get(text, ["logprobs", "token_logprobs"]) as? [Any])?.count == 12)
            let errors = try await JSON.lines(
                scratch.gunzip(spool.job("done", "oa") + "/errors.jsonl.gz"), what: "errors")
            #expect(errors.map { $0["custom_id"] as? String } == ["request-4", "request-5"])
            #expect(JSON.get(errors[0], ["response", "body", "error", "param"]) as? String == "body.max_tokens")
            #expect(JSON.get(errors[1], ["response", "body", "error", "param"]) as? String == "body.logit_bias")
        }

        /// Sampled completions over the debdesc sample, with n = 2 on some records.
        static func sampledInput(_ scratch: Scratch, count: Int) throws -> String {
            let texts = try JSON.lines(Files.read(E2E.repoRoot + "/fixtures/text/debdesc-sample.jsonl"), what: "texts")
            let lines = texts.prefix(count).enumerated().map { i, t in
                i % 3 == 0
                    ? Self.line(["id": "s\(i)", "messages": [["role": "user", "content": t["text"]!]], "n": 2])
                    : Self.line(["id": "s\(i)", "prompt": t["text"]!])
            }
            let input = scratch.file("sampled.jsonl")
            try Files.write(input, lines.joined(separator: "\n") + "\n")
            return input
        }

        static var sampling: [String: Any] {
            [
                "max_tokens": 20, "temperature": 0.9, "top_p": 0.95, "top_k": 40, "seed": 11, "repetition_penalty": 1.1
            ]
        }

        @Test("sampled outputs are the same bytes on 1 and 2 threads and at batch sizes 1 and 32")
        func batchInvariant() async throws {
            let scratch = try Scratch("generate-invariant")
            defer { scratch.remove() }
            let input = try Self.sampledInput(scratch, count: 40)
            var outputs: [Data] = []
            for (i, (threads, batch)) in [(1, 1), (2, 32), (2, 7)].enumerated() {
                let spool = try SpoolDir(scratch.file("spool\(i)"))
                try spool.drop(
                    "s.json",
                    try Self.manifest(
                        "s", model: Self.llama, input: input, ["generate": Self.sampling, "batch_size": batch]))
                let run = try await scratch.quern(
                    ["run", "--once", spool.root] + rootArgs(scratch), env: ["QUERN_THREADS": String(threads)])
                #expect(run.status == 0, "run --once: \(run)")
                outputs.append(try Files.read(spool.job("done", "s") + "/results.jsonl.gz"))
            }
            #expect(outputs[0] == outputs[1] && outputs[1] == outputs[2])
        }

        @Test("kill -9 mid-job, resume: the sampled results are byte-identical to an undisturbed run")
        func killAndResume() async throws {
            let scratch = try Scratch("generate-crash")
            defer { scratch.remove() }
            let input = try Self.sampledInput(scratch, count: 150)
            let manifest = try Self.manifest(
                "c", model: Self.llama, input: input, ["generate": Self.sampling, "batch_size": 4])
            let reference = try SpoolDir(scratch.file("reference"))
            try reference.drop("c.json", manifest)
            let ran = try await scratch.quern(["run", "--once", reference.root] + rootArgs(scratch))
            #expect(ran.status == 0, "reference run: \(ran)")

            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("c.json", manifest)
            let first = try scratch.startQuern(
                ["watch", spool.root] + rootArgs(scratch), env: ["QUERN_CHECKPOINT_SECONDS": "0"],
                label: "watch-killed")
            let checkpoint = spool.job("active", "c") + "/checkpoint.json"
            try await E2E.waitUntil("a checkpoint past 40 records", timeout: 120, poll: 0.02) {
                guard first.isRunning else { throw E2EFailure("daemon exited before the kill: \(first.stderrTail)") }
                guard let data = FileManager.default.contents(atPath: checkpoint),
                    let o = try? JSON.object(data, what: "checkpoint"), let consumed = JSON.int(o, "consumed")
                else { return false }
                return consumed >= 40
            }
            #expect(kill(first.pid, SIGKILL) == 0)
            _ = try await first.wait(timeout: 20)
            #expect(spool.jobs("done").isEmpty)
            let resumed = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(resumed.status == 0, "resume: \(resumed)")
            #expect(
                try Files.read(spool.job("done", "c") + "/results.jsonl.gz")
                    == Files.read(reference.job("done", "c") + "/results.jsonl.gz"))
            let log = try Files.text(spool.job("done", "c") + "/job.log")
            #expect(log.contains("resuming from checkpoint"))
        }
    }
}
