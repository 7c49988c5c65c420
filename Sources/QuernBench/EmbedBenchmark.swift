import Foundation
import QuernCore
import QuernModels

/// `quern bench embed`: sentence embeddings end to end against onnxruntime
/// (../shared/bench/embed_anchors.py) on the same texts, same threads. Quern's side is a
/// real `embed` job run by `quern run --once` in a child process (texts in from JSONL,
/// gzip results out; `QUERN_THREADS` set), timed by its report's `process_seconds`
/// (model load excluded, as the anchor excludes session creation). The anchor's side is
/// tokenization, inference on length-sorted batches and pooling, in one process.
public struct EmbedBenchmark {
    let quern: String
    let model: String
    let corpus: String
    let anchor: String?
    let python: String
    let limit: Int
    let longLimit: Int
    let threads: [Int]
    let precisions: [String]
    let batchSize: Int
    let workdir: String

    public init(
        quernBinary: String, model: String, corpus: String, anchorScript: String?, python: String,
        limit: Int, longLimit: Int, threads: [Int], precisions: [String], batchSize: Int, workdir: String
    ) {
        quern = (try? Sys.realpath(quernBinary)) ?? quernBinary
        self.model = (try? Sys.realpath(model)) ?? model
        self.corpus = corpus
        anchor = anchorScript
        self.python = python
        self.limit = limit
        self.longLimit = longLimit
        self.threads = threads
        self.precisions = precisions
        self.batchSize = batchSize
        self.workdir = workdir
    }

    /// The two text sets: the corpus's first lines (short: about 12 tokens each), and
    /// consecutive lines joined until a text reaches a length that cycles through
    /// 50–250 tokens (truncated at 256, as the model's max_seq_length says).
    func writeSets() throws -> [(name: String, path: String, count: Int, tokens: Int)] {
        let tokenizer = WordPieceTokenizer.Session(try WordPieceTokenizer.load(directory: model))
        var lines: [String] = []
        let needed = limit + longLimit * 25
        for line in try Sys.readFile(corpus, limit: 1 << 32).split(separator: 0x0A) where lines.count < needed {
            guard let t = try JSONParser.parse(Array(line)).objectValue?["text"]?.stringValue else { continue }
            lines.append(t)
        }
        func write(_ name: String, _ texts: [String]) throws -> (String, String, Int, Int) {
            let path = Path.join(workdir, name + ".jsonl")
            var out: [UInt8] = []
            for t in texts { out += JSONWriter.compact(["text": .string(t)]); out.append(0x0A) }
            try Sys.writeFileAtomically(path, out)
            let tokens = texts.reduce(0) { $0 + tokenizer.encode($1, maxLength: 256).ids.count }
            return (name, path, texts.count, tokens)
        }
        var long: [String] = []
        var current: [String] = []
        for t in lines.dropFirst(limit) where long.count < longLimit {
            current.append(t)
            let joined = current.joined(separator: " ")
            if tokenizer.encode(joined).ids.count >= 50 + (long.count * 37) % 201 {
                long.append(joined)
                current = []
            }
        }
        return [try write("short", Array(lines.prefix(limit))), try write("long", long)]
    }

    /// Runs one embed job in a fresh spool; texts per second from its report.
    func quernRun(set path: String, precision: String, threads: Int) throws -> Double {
        let manifest: JSONValue = [
            "version": 1, "id": "bench", "task": "embed", "precision": .string(precision),
            "model": .string(model), "input": ["path": .string(path)],
            "batch_size": .int(Int64(batchSize))
        ]
        let spool = Path.join(workdir, "spool-\(precision)-\(threads)")
        let (report, _) = try Self.job(quern: quern, spool: spool, manifest: manifest, threads: threads)
        try? Sys.removeTree(spool)
        guard let rate = report["throughput"]?.objectValue?["records_per_second"]?.doubleValue else {
            throw QuernError(.internalError, "the bench's embed job has no throughput in its report")
        }
        return rate
    }

    /// Runs one job (id "bench") with `quern run --once` in a fresh spool; its report and
    /// its directory in done/.
    static func job(quern: String, spool: String, manifest: JSONValue, threads: Int? = nil) throws -> (
        JSONObject, String
    ) {
        try? Sys.removeTree(spool)
        for d in ["incoming", "active", "done", "failed", "tmp"] { try Sys.mkdirs(Path.join(spool, d)) }
        try Sys.writeFileAtomically(Path.join(spool, "incoming/bench.json"), JSONWriter.compact(manifest))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: quern)
        p.arguments = ["run", "--once", spool, "--root", "/"]
        if let threads {
            p.environment = ProcessInfo.processInfo.environment.merging(["QUERN_THREADS": String(threads)]) { $1 }
        }
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        p.waitUntilExit()
        let done = Path.join(spool, "done/bench")
        guard let r = try? JSONParser.parse(Sys.readFile(Path.join(done, "report.json"))).objectValue else {
            throw QuernError(.internalError, "a bench job failed: see \(spool)/failed/bench/error.json")
        }
        return (r, done)
    }

    public func run() throws {
        try Sys.mkdirs(workdir)
        print("quern bench embed  (\(model); batch \(batchSize); end to end, release build)")
        print(
            "target: fp32 >= 1.5x the faster onnxruntime fp32 graph, int8 >= 1.5x the faster dynamic-int8 graph, 1 and 2 threads\n"
        )
        print(
            "texts                 count  tokens/text  threads  precision  quern texts/s  onnxruntime texts/s (graph)   ratio"
        )
        for set in try writeSets() {
            for t in threads {
                let reference = Anchor.jsonLines(
                    python: python, script: anchor,
                    arguments: [
                        set.path, "--limit", String(set.count), "--threads", String(t),
                        "--only", "ort32,ortq8,ort32opt,ortq8opt"
                    ])
                for precision in precisions {
                    let ours = try quernRun(set: set.path, precision: precision, threads: t)
                    // The faster graph of the matching precision (plain or optimizer-fused).
                    let names = precision == "int8" ? ["ortq8", "ortq8opt"] : ["ort32", "ort32opt"]
                    let best = (reference ?? []).filter { names.contains($0["system"]?.stringValue ?? "") }
                        .max { ($0["texts_per_s"]?.doubleValue ?? 0) < ($1["texts_per_s"]?.doubleValue ?? 0) }
                    let theirs = best?["texts_per_s"]?.doubleValue
                    let label = set.name == "short" ? "corpus lines" : "joined, 50-250 tokens"
                    print(
                        label.padding(toLength: 21, withPad: " ", startingAt: 0)
                            + String(
                                format: " %6d %12.1f %8d  %-9@ %14.1f ", set.count,
                                Double(set.tokens) / Double(set.count), t,
                                precision as NSString, ours)
                            + (theirs.map {
                                String(
                                    format: "%11.1f (%@)%*@ %6.2f", $0, best!["system"]!.stringValue! as NSString,
                                    10 - best!["system"]!.stringValue!.count, "" as NSString, ours / $0)
                            }
                                ?? "          - (no anchor)          -"))
                }
            }
        }
    }
}
