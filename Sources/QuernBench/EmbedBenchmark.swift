import Foundation
import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// `quern bench embed`: sentence embeddings end to end against the strongest CPU engines
/// set up here (../shared/bench/embed_anchors_plus.py: CTranslate2, OpenVINO, onnxruntime
/// plain, fused and int8, fastembed, PyTorch, llama.cpp; each in its own process), or
/// against onnxruntime alone (embed_anchors.py) where those are not set up, on the same
/// texts, same threads. Quern's side is a real `embed` job run by `quern run --once` in a
/// child process (texts in from JSONL, NPY vectors out; `QUERN_THREADS` set), timed by its
/// report's `process_seconds` (model load excluded, as the anchors exclude theirs). Each
/// precision is compared with the fastest anchor of that precision, and every system's
/// vectors with the same fp32 reference (sentence-transformers on PyTorch).
public struct EmbedBenchmark {
    let quern: String
    let model: String
    let corpus: String
    let anchor: String?
    let python: String
    /// embed_anchors_plus.py and the Python of its venv (setup-anchors-plus.sh).
    let plusAnchor: String?
    let plusPython: String
    let limit: Int
    let longLimit: Int
    let threads: [Int]
    let precisions: [String]
    let batchSize: Int
    let workdir: String

    public init(
        quernBinary: String, model: String, corpus: String, anchorScript: String?, python: String,
        plusAnchorScript: String?, plusPython: String,
        limit: Int, longLimit: Int, threads: [Int], precisions: [String], batchSize: Int, workdir: String
    ) {
        quern = (try? Sys.realpath(quernBinary)) ?? quernBinary
        self.model = (try? Sys.realpath(model)) ?? model
        self.corpus = corpus
        anchor = anchorScript
        self.python = python
        plusAnchor = plusAnchorScript
        self.plusPython = plusPython
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
        for line in try Sys.readFile(corpus, limit: 1 << 32).split(separator: 0x0A)
        where lines.count < needed + Self.calibrationTexts {
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
        // Static int8 calibrates on lines past those the sets can use.
        _ = try write("calibration", Array(lines.suffix(Self.calibrationTexts)))
        return [try write("short", Array(lines.prefix(limit))), try write("long", long)]
    }

    /// Texts the `int8-static` model is calibrated on.
    static let calibrationTexts = 2048

    /// The `int8-static` row's model: a `quantize` job's static (smoothed) int8 copy of
    /// the model, calibrated on the calibration set.
    func staticModel() throws -> String {
        let manifest: JSONValue = [
            "version": 1, "id": "bench", "task": "quantize", "model": .string(model),
            "input": ["path": .string(Path.join(workdir, "calibration.jsonl"))],
            "quantize": ["scheme": "static", "samples": .int(Int64(Self.calibrationTexts))]
        ]
        let spool = Path.join(workdir, "spool-quantize")
        let (_, done) = try Self.job(quern: quern, spool: spool, manifest: manifest)
        return Path.join(done, "model")
    }

    /// Runs one embed job in a fresh spool: texts per second from its report, and its
    /// vectors (NPY, input order) as `[rows][dim]`.
    /// `int8-static` runs `staticModel`, the others `model` at that precision.
    func quernRun(set path: String, precision: String, threads: Int, staticModel: String?) throws -> (
        rate: Double, vectors: [[Float]]
    ) {
        let isStatic = precision == "int8-static"
        let manifest: JSONValue = [
            "version": 1, "id": "bench", "task": "embed", "precision": .string(isStatic ? "int8" : precision),
            "model": .string(isStatic ? staticModel ?? model : model), "input": ["path": .string(path)],
            "output": ["format": "npy"],
            "batch_size": .int(Int64(batchSize))
        ]
        let spool = Path.join(workdir, "spool-\(precision)-\(threads)")
        let (report, done) = try Self.job(quern: quern, spool: spool, manifest: manifest, threads: threads)
        let vectors = try Self.npyRows(Zlib.gunzip(Sys.readFile(Path.join(done, "results.npy.gz"), limit: 1 << 32)))
        try? Sys.removeTree(spool)
        guard let rate = report["throughput"]?.objectValue?["records_per_second"]?.doubleValue else {
            throw QuernError(.internalError, "the bench's embed job has no throughput in its report")
        }
        return (rate, vectors)
    }

    /// The rows of a little-endian float32 NPY array `[rows, dim]` (version 1 header).
    static func npyRows(_ bytes: [UInt8]) throws -> [[Float]] {
        guard let (descr, shape) = NPYHeader.decode(bytes), descr == "<f4", shape.count == 2, bytes.count >= 10 else {
            throw QuernError(.internalError, "the bench expected a float32 [rows, dim] NPY array")
        }
        let start = 10 + (Int(bytes[8]) | Int(bytes[9]) << 8), (rows, dim) = (shape[0], shape[1])
        guard bytes.count >= start + rows * dim * 4 else {
            throw QuernError(.internalError, "the bench's NPY array is shorter than its header says")
        }
        return bytes.withUnsafeBytes { raw in
            (0..<rows).map { r in
                (0..<dim).map { c in
                    Float(
                        bitPattern: UInt32(
                            littleEndian: raw.loadUnaligned(fromByteOffset: start + (r * dim + c) * 4, as: UInt32.self))
                    )
                }
            }
        }
    }

    /// Mean and worst cosine between matching rows.
    static func cosines(_ a: [[Float]], _ b: [[Float]]) -> (mean: Double, worst: Double)? {
        guard !a.isEmpty, a.count == b.count else { return nil }
        var total = 0.0, worst = 1.0
        for (x, y) in zip(a, b) {
            var dot = 0.0, nx = 0.0, ny = 0.0
            for (u, v) in zip(x, y) {
                dot += Double(u) * Double(v); nx += Double(u) * Double(u); ny += Double(v) * Double(v)
            }
            let c = dot / max((nx * ny).squareRoot(), 1e-30)
            total += c
            worst = min(worst, c)
        }
        return (total / Double(a.count), worst)
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
        let plus =
            plusAnchor.map { FileManager.default.fileExists(atPath: $0) } == true
            && FileManager.default.fileExists(atPath: plusPython)
        print(
            "quern bench embed  (\(model); batch \(batchSize); end to end, release build; cpu: \(cpuModel()), isa \(ISA.active.rawValue))"
        )
        print(
            plus
                ? "target: fp32 and int8 each >= 1.5x the fastest anchor of the same precision (embed_anchors_plus.py), 1 and 2 threads; int8 cosine to the fp32 reference mean >= 0.998, worst >= 0.99\n"
                : "target: fp32 >= 1.5x the faster onnxruntime fp32 graph, int8 >= 1.5x the faster dynamic-int8 graph, 1 and 2 threads (embed_anchors_plus.py is not set up: onnxruntime only)\n"
        )
        print(
            "texts                 count  tokens/text  threads  precision    quern texts/s  best anchor texts/s (system)       ratio   quern cos mean/worst   anchor cos mean/worst"
        )
        let sets = try writeSets()
        let quantized = precisions.contains("int8-static") ? try staticModel() : nil
        for set in sets {
            for t in threads {
                var rows: [JSONObject] = []
                var reference: [[Float]]? = nil
                if plus {
                    let out = Path.join(workdir, "anchors-\(set.name)-t\(t)")
                    _ = Anchor.jsonLines(
                        python: plusPython, script: plusAnchor,
                        arguments: [set.path, "--limit", String(set.count), "--threads", String(t), "--out", out])
                    rows =
                        (try? Sys.readFile(Path.join(out, "results.jsonl")))?.split(separator: 0x0A).compactMap {
                            try? JSONParser.parse(Array($0)).objectValue
                        } ?? []
                    reference = try? Self.npyRows(Sys.readFile(Path.join(out, "vecs_st_fp32.npy"), limit: 1 << 32))
                } else {
                    rows =
                        (Anchor.jsonLines(
                            python: python, script: anchor,
                            arguments: [
                                set.path, "--limit", String(set.count), "--threads", String(t),
                                "--only", "ort32,ortq8,ort32opt,ortq8opt"
                            ]) ?? []).map { r in
                            var r = r
                            let name = r["system"]?.stringValue ?? ""
                            r["precision"] = .string(name.contains("q8") ? "int8" : "fp32")
                            return r
                        }
                }
                for precision in precisions {
                    let ours = try quernRun(set: set.path, precision: precision, threads: t, staticModel: quantized)
                    // int8-static is measured against the int8 anchors (OpenVINO's is static too).
                    let kind = precision == "int8-static" ? "int8" : precision
                    let best = rows.filter { $0["precision"]?.stringValue == kind && $0["error"] == nil }
                        .max { ($0["texts_per_s"]?.doubleValue ?? 0) < ($1["texts_per_s"]?.doubleValue ?? 0) }
                    let theirs = best?["texts_per_s"]?.doubleValue, system = best?["system"]?.stringValue ?? "-"
                    let label = set.name == "short" ? "corpus lines" : "joined, 50-250 tokens"
                    let fidelity = reference.flatMap { Self.cosines(ours.vectors, $0) }
                    let theirFidelity = best.flatMap { b in
                        b["cos_mean"]?.doubleValue.map { ($0, b["cos_min"]?.doubleValue ?? 0) }
                    }
                    print(
                        label.padding(toLength: 21, withPad: " ", startingAt: 0)
                            + String(
                                format: " %6d %12.1f %8d  ", set.count, Double(set.tokens) / Double(set.count), t)
                            + precision.padding(toLength: 11, withPad: " ", startingAt: 0)
                            + String(format: " %12.1f ", ours.rate)
                            + (theirs.map {
                                String(format: "%11.1f (%@)", $0, system as NSString)
                                    .padding(toLength: 34, withPad: " ", startingAt: 0)
                                    + String(format: " %6.2f", ours.rate / $0)
                            } ?? "          - (no anchor)                  -")
                            + (fidelity.map { String(format: "   %8.5f / %7.5f", $0.mean, $0.worst) }
                                ?? "          -         ")
                            + (theirFidelity.map { String(format: "     %8.5f / %7.5f", $0.0, $0.1) } ?? ""))
                }
            }
        }
        if plus {
            print(
                "cosines against sentence-transformers fp32 (PyTorch) on the same texts; anchors' full tables in \(workdir)/anchors-*"
            )
        }
        if quantized != nil {
            print(
                "int8-static: a quantize job's static, smoothed int8 model, calibrated on \(Self.calibrationTexts) other corpus lines"
            )
        }
    }
}
