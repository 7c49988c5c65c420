import Foundation
import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// `quern bench generate`: batch text generation against the CPU engines of
/// ../shared/bench/generate_anchors.py (transformers fp32, CTranslate2 fp32 and int8,
/// llama.cpp Q4_1 and Q8_0) on the same prompts, same prompt token ids, same threads,
/// same batch size, greedy. Quern's side is a real `generate` job run by `quern run
/// --once` (prompts given as the anchors' token ids; `QUERN_THREADS` set), timed by its
/// report's `process_seconds` (model load excluded, as the anchors exclude it), with its
/// token ids returned so fidelity is measured as the anchors measure it: the longest
/// prefix shared with transformers fp32's greedy tokens. Then perplexity: each precision
/// teacher-forced over debdesc texts against fp32.
public struct GenerateBenchmark {
    let quern: String
    let prompts: String
    let anchor: String?
    let python: String
    /// The Hugging Face fp32 directory (fp32 and int8 runs) and the GGUF that q4 runs as stored.
    let model: String
    let gguf: String?
    let threads: [Int]
    let batches: [Int]
    let precisions: [String]
    let systems: String
    let maxNewTokens: Int
    let perplexityTexts: Int
    let corpus: String
    let workdir: String

    public init(
        quernBinary: String, prompts: String, anchorScript: String?, python: String, model: String, gguf: String?,
        threads: [Int], batches: [Int], precisions: [String], systems: String, maxNewTokens: Int,
        perplexityTexts: Int, corpus: String, workdir: String
    ) {
        quern = (try? Sys.realpath(quernBinary)) ?? quernBinary
        self.prompts = prompts
        anchor = anchorScript
        self.python = python
        self.model = (try? Sys.realpath(model)) ?? model
        self.gguf = gguf.map { (try? Sys.realpath($0)) ?? $0 }
        self.threads = threads
        self.batches = batches
        self.precisions = precisions
        self.systems = systems
        self.maxNewTokens = maxNewTokens
        self.perplexityTexts = perplexityTexts
        self.corpus = corpus
        self.workdir = workdir
    }

    /// One system's line of a run.
    struct Row {
        var system: String
        var tokensPerSecond: Double
        var prefillPerSecond: Double?
        var tokens: [[Int32]]
        var peakMB: Int?
    }

    /// Runs the anchors for one (threads, batch) cell; their rows and the prompts' ids.
    func anchors(threads: Int, batch: Int) throws -> (rows: [Row], ids: [(String, [Int32])], reference: [[Int32]]?) {
        let out = Path.join(workdir, "anchors-t\(threads)-b\(batch)")
        try Sys.mkdirs(out)
        _ = Anchor.jsonLines(
            python: python, script: anchor,
            arguments: [
                "run", prompts, "--threads", String(threads), "--batch", String(batch), "--max-new-tokens",
                String(maxNewTokens), "--greedy", "--systems", systems, "--out", out
            ])
        let inputsPath = Path.join(out, "inputs.json")
        guard Sys.isRegularFile(inputsPath),
            let inputs = try JSONParser.parse(Sys.readFile(inputsPath, limit: 1 << 30)).arrayValue
        else {
            throw QuernError(
                .internalError, "the anchor script wrote no \(inputsPath): run ../shared/bench/setup-llm-anchors.sh")
        }
        let ids: [(String, [Int32])] = inputs.compactMap { x in
            guard let o = x.objectValue, let id = o["id"], let list = o["ids"]?.arrayValue else { return nil }
            return ("\(id.stringValue ?? String(id.intValue ?? 0))", list.map { Int32($0.intValue ?? 0) })
        }
        func tokens(_ system: String) -> [[Int32]]? {
            guard let data = try? Sys.readFile(Path.join(out, "gen_\(system).jsonl"), limit: 1 << 30) else {
                return nil
            }
            return data.split(separator: 0x0A).compactMap {
                (try? JSONParser.parse(Array($0)))?.objectValue?["token_ids"]?.arrayValue?.map {
                    Int32($0.intValue ?? -1)
                }
            }
        }
        var rows: [Row] = []
        if let data = try? Sys.readFile(Path.join(out, "results.jsonl"), limit: 1 << 24) {
            for line in data.split(separator: 0x0A) {
                guard let o = (try? JSONParser.parse(Array(line)))?.objectValue, let s = o["system"]?.stringValue,
                    let rate = o["tok_s"]?.doubleValue
                else { continue }
                rows.append(
                    Row(
                        system: s, tokensPerSecond: rate, prefillPerSecond: o["prefill_tok_s"]?.doubleValue,
                        tokens: tokens(s) ?? [], peakMB: o["gen_peak_rss_mb"]?.intValue.map(Int.init)))
            }
        }
        return (rows, ids, tokens("hf_fp32"))
    }

    /// One `generate` job over the prompts' ids: tokens per second and each prompt's tokens.
    func quernRun(ids: [(String, [Int32])], precision: String, threads: Int, batch: Int) throws -> Row {
        let input = Path.join(workdir, "prompts-ids.jsonl")
        var lines: [UInt8] = []
        for (id, prompt) in ids {
            lines += JSONWriter.compact(["id": .string(id), "prompt": .array(prompt.map { .int(Int64($0)) })])
            lines.append(0x0A)
        }
        try Sys.writeFileAtomically(input, lines)
        let path = precision == "q4" ? (gguf ?? model) : model
        let manifest: JSONValue = [
            "version": 1, "id": "bench", "task": "generate", "precision": .string(precision), "model": .string(path),
            "input": ["path": .string(input), "format": "jsonl"], "batch_size": .int(Int64(batch)),
            "generate": [
                "max_tokens": .int(Int64(maxNewTokens)), "temperature": 0, "return_token_ids": true
            ]
        ]
        let spool = Path.join(workdir, "spool-\(precision)-\(threads)-\(batch)")
        let (report, done) = try EmbedBenchmark.job(quern: quern, spool: spool, manifest: manifest, threads: threads)
        let seconds = report["timings"]?.objectValue?["process_seconds"]?.doubleValue ?? 0
        let generated = report["metrics"]?.objectValue?["completion_tokens"]?.intValue ?? 0
        let results = try Zlib.gunzip(Sys.readFile(Path.join(done, "results.jsonl.gz"), limit: 1 << 30))
        let tokens: [[Int32]] = results.split(separator: 0x0A).compactMap { line in
            let ids = (try? JSONParser.parse(Array(line)))?.objectValue?["token_ids"]?.arrayValue
            return ids?.map { Int32($0.intValue ?? -1) }
        }
        try? Sys.removeTree(spool)
        return Row(
            system: "quern_\(precision)", tokensPerSecond: seconds > 0 ? Double(generated) / seconds : 0,
            prefillPerSecond: nil, tokens: tokens,
            peakMB: report["timings"]?.objectValue?["peak_rss_mb"]?.intValue.map(Int.init))
    }

    /// Mean shared greedy prefix with the reference, and the fraction of prompts whose
    /// first `k` tokens match (a sequence that ended earlier must end identically).
    static func fidelity(_ got: [[Int32]], _ reference: [[Int32]], k: Int) -> (prefix: Double, match: Double) {
        guard !reference.isEmpty, got.count == reference.count else { return (0, 0) }
        var prefix = 0, matched = 0
        for (g, r) in zip(got, reference) {
            let common = zip(g, r).prefix { $0 == $1 }.count
            prefix += common
            if common >= min(k, max(g.count, r.count)) && (common >= k || g.count == r.count) { matched += 1 }
        }
        return (Double(prefix) / Double(reference.count), Double(matched) / Double(reference.count))
    }

    /// Perplexity of each precision over debdesc texts, teacher-forced in this process, and
    /// the mean KL divergence of its next-token distributions from fp32's: a small model's
    /// perplexity on short texts hangs on the far tail of its distributions, so a bit-level
    /// change in a kernel moves int8's by half a percent either way; the divergence does not.
    func perplexities() throws -> [(String, Double, Double)] {
        var texts: [String] = []
        for line in try Sys.readFile(corpus, limit: 1 << 32).split(separator: 0x0A) where texts.count < perplexityTexts
        {
            if let t = try JSONParser.parse(Array(line)).objectValue?["text"]?.stringValue { texts.append(t) }
        }
        // Every precision runs each text in turn, so each one's next-token distributions
        // are compared with fp32's on the same positions (KL divergence) as well as scored.
        var models: [(String, any CausalLM)] = []
        for precision in precisions {
            let path = precision == "q4" ? (gguf ?? model) : model
            if let lm = try ModelRegistry.load(
                path, ModelOptions(precision: LinearOperator.Precision(rawValue: precision) ?? .fp32)
            ).capability(CausalLM.self) {
                models.append((precision, lm))
            }
        }
        var nll = [Double](repeating: 0, count: models.count), kl = nll
        var count = 0
        for t in texts {
            guard let first = models.first else { break }
            let ids = first.1.tokenize(t, addSpecialTokens: true)
            guard ids.count >= 2 else { continue }
            var reference: [Double]? = nil  // fp32 log-probabilities of the current text
            for (m, (precision, lm)) in models.enumerated() {
                let d = lm.decoder, v = d.shape.vocabulary
                let logits = d.forward([.init(cache: d.makeCache(capacity: ids.count), tokens: ids)], logits: .all)
                var logp = [Double](repeating: 0, count: (ids.count - 1) * v)
                for i in 0..<(ids.count - 1) {
                    let row = logits[(i * v)..<((i + 1) * v)]
                    let best = Double(row.max()!)
                    let lse = best + log(row.reduce(0.0) { $0 + exp(Double($1) - best) })
                    for (c, x) in row.enumerated() { logp[i * v + c] = Double(x) - lse }
                    nll[m] -= logp[i * v + Int(ids[i + 1])]
                }
                if precision == "fp32" { reference = logp }
                if let r = reference, r.count == logp.count {
                    for (a, b) in zip(r, logp) { kl[m] += exp(a) * (a - b) }
                }
            }
            count += ids.count - 1
        }
        return models.indices.map { m in
            (models[m].0, exp(nll[m] / Double(max(count, 1))), kl[m] / Double(max(count, 1)))
        }
    }

    public func run() throws {
        try Sys.mkdirs(workdir)
        print("quern bench generate  (\(model); greedy, \(maxNewTokens) new tokens; end to end, release build)")
        print(
            "targets: int8 >= 2x CTranslate2 int8, q4 >= 1.5x llama.cpp Q4_1 (tokens/s); fp32 greedy = transformers on >= 60/64\n"
        )
        for t in threads {
            for b in batches {
                let (anchorRows, ids, reference) = try anchors(threads: t, batch: b)
                var rows = anchorRows
                for p in precisions { rows.append(try quernRun(ids: ids, precision: p, threads: t, batch: b)) }
                print("threads \(t), batch \(b), \(ids.count) prompts")
                print("  system           tokens/s   vs anchor            match@16  match@64  mean prefix")
                let rate = Dictionary(rows.map { ($0.system, $0.tokensPerSecond) }, uniquingKeysWith: { a, _ in a })
                let versus = ["quern_fp32": "ct2_fp32", "quern_int8": "ct2_int8", "quern_q4": "llama_q4_1"]
                for r in rows {
                    let f16 = Self.fidelity(r.tokens, reference ?? [], k: 16)
                    let f64 = Self.fidelity(r.tokens, reference ?? [], k: maxNewTokens)
                    var ratio = ""
                    if let other = versus[r.system], let o = rate[other], o > 0 {
                        ratio = String(format: "%.2fx %@", r.tokensPerSecond / o, other)
                    }
                    print(
                        "  " + r.system.padding(toLength: 16, withPad: " ", startingAt: 0)
                            + String(format: "%9.1f   ", r.tokensPerSecond)
                            + ratio.padding(toLength: 20, withPad: " ", startingAt: 0)
                            + String(format: "%7.2f   %7.2f   %8.1f", f16.match, f64.match, f64.prefix))
                }
                print("")
            }
        }
        if perplexityTexts > 0 {
            let p = try perplexities()
            let base = p.first { $0.0 == "fp32" }?.1
            print(
                "perplexity over \(perplexityTexts) debdesc texts (teacher-forced, BOS + text), and the mean KL divergence of each next-token distribution from fp32's"
            )
            for (name, value, divergence) in p {
                print(
                    "  " + name.padding(toLength: 6, withPad: " ", startingAt: 0)
                        + String(format: "%10.3f", value)
                        + (base.map { String(format: "   %+.2f%% vs fp32", 100 * (value / $0 - 1)) } ?? "")
                        + (base != nil ? String(format: "   KL %.5f", divergence) : ""))
            }
        }
    }
}
