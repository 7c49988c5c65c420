import Foundation
import QuernCore
import QuernData
import QuernModels
import QuernSpool

/// `quern bench spool`: the spool's own costs, measured against the real binary and
/// against `tar` on the same file, printed as a table with ratios.
public struct SpoolBenchmark {
    let workdir: String
    let quern: String
    let time = SystemTime()

    public init(workdir: String?, quernBinary: String) {
        self.workdir = workdir ?? "/tmp/quern-bench-\(Sys.pid)"
        quern = (try? Sys.realpath(quernBinary)) ?? quernBinary
    }

    public func run(streamMB: Int, drops: Int, jobs: Int) throws {
        try Sys.mkdirs(workdir)
        print("quern bench spool  (workdir \(workdir))")
        try latencyAndOverhead(drops: drops, jobs: jobs)
        if streamMB > 0 { try streaming(megabytes: streamMB) }
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    static func percentile(_ v: [Double], _ p: Double) -> Double {
        let s = v.sorted()
        return s.isEmpty ? .nan : s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
    }

    /// A one-record predict job on the digits MLP: the smallest real job.
    func tinyJob(spool: String, id: String, data: String, model: String) -> [UInt8] {
        JSONWriter.pretty([
            "version": 1, "id": .string(id), "task": "predict", "model": .string(model),
            "input": ["path": .string(data), "format": "csv", "id_field": "id"]
        ])
    }

    func makeTinyFixtures() throws -> (data: String, model: String) {
        // The bench must not depend on the repo checkout: write a 1-record CSV and a
        // tiny model next to the spool.
        let dir = Path.join(workdir, "tiny")
        try Sys.mkdirs(Path.join(dir, "model"))
        let header = ["id"] + (0..<4).map { "f\($0)" }
        let csv = header.joined(separator: ",") + "\nr1,1,2,3,4\n"
        try Sys.writeFileAtomically(Path.join(dir, "one.csv"), Array(csv.utf8))
        try Sys.writeFileAtomically(
            Path.join(dir, "model/config.json"),
            Array(
                """
                {"model_type": "mlp", "input_size": 4, "layers": [{"out_features": 3, "activation": "none"}], "id2label": {"0": "a", "1": "b", "2": "c"}}
                """.utf8))
        try Sys.writeFileAtomically(
            Path.join(dir, "model/model.safetensors"),
            Safetensors.encode([
                "layers.0.weight": ([3, 4], (0..<12).map { Float($0) / 10 }),
                "layers.0.bias": ([3], [0, 0.5, -0.5])
            ]))
        return (Path.join(dir, "one.csv"), Path.join(dir, "model"))
    }

    func latencyAndOverhead(drops: Int, jobs: Int) throws {
        let spoolDir = Path.join(workdir, "spool")
        try? Sys.removeTree(spoolDir)
        let spool = try Spool(root: spoolDir)
        let (data, model) = try makeTinyFixtures()
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: quern)
        daemon.arguments = ["watch", spool.root, "--root", workdir]
        daemon.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try daemon.run()
        defer {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        // Wait for the daemon to be watching: its first tiny job completes.
        let departures = try DirectoryWatch(spool.directory(.incoming), departures: true)
        var claim: [Double] = [], total: [Double] = [], inProcess: [Double] = []
        for i in 0..<(1 + max(drops, jobs)) {
            let id = "bench-\(i)"
            let staged = Path.join(spool.tmp, "stage-\(i)")
            try Sys.writeFileAtomically(staged, tinyJob(spool: spool.root, id: id, data: data, model: model))
            departures.drain()
            let t0 = time.monotonic()
            try Sys.rename(staged, Path.join(spool.directory(.incoming), id + ".json"))
            // Claimed: the manifest leaves incoming/ (inotify, no polling delay).
            while !StopSignal.wait(for: departures.fd, timeout: 5) {
                if time.monotonic() - t0 > 10 {
                    throw QuernError(.internalError, "the daemon did not claim \(id) within 10 s")
                }
            }
            let t1 = time.monotonic()
            let done = spool.path(.done, id)
            while !Sys.exists(done) {
                if Sys.exists(spool.path(.failed, id)) {
                    throw QuernError(.internalError, "bench job \(id) failed: see \(spool.path(.failed, id))")
                }
                usleep(100)
                if time.monotonic() - t0 > 30 { throw QuernError(.internalError, "bench job \(id) did not finish") }
            }
            let t2 = time.monotonic()
            if i == 0 { continue }  // warm-up: page cache, first model load
            if i <= drops { claim.append(t1 - t0) }
            if i <= jobs {
                total.append(t2 - t0)
                if let r = try? JSONParser.parse(Sys.readFile(Path.join(done, "report.json"))).objectValue,
                    let w = r["timings"]?.objectValue?["wall_seconds"]?.doubleValue
                {
                    inProcess.append(w)
                }
            }
            usleep(20_000)  // let the daemon go back to sleep in poll(): measure the idle case
        }
        func ms(_ v: Double) -> String { String(format: "%.2f ms", v * 1000) }
        print("")
        print(
            "drop-to-claim latency (inotify), \(claim.count) drops: median \(ms(Self.median(claim)))  p90 \(ms(Self.percentile(claim, 0.9)))  max \(ms(claim.max() ?? .nan))   target < 20 ms"
        )
        print(
            "per-job overhead, 1-record job, drop to done/ visible, \(total.count) jobs: median \(ms(Self.median(total)))  p90 \(ms(Self.percentile(total, 0.9)))   target < 10 ms"
        )
        print("  of which inside the runner (report.json wall_seconds): median \(ms(Self.median(inProcess)))")
    }

    func streaming(megabytes: Int) throws {
        let archive = Path.join(workdir, "stream-\(megabytes)MB.tar.gz")
        if !Sys.exists(archive) {
            print("\ngenerating \(megabytes) MB of JSONL as \(Path.basename(archive)) (once; kept for later runs)...")
            let dir = Path.join(workdir, "stream-src")
            try Sys.mkdirs(dir)
            let members = 4
            for m in 0..<members {
                let fd = try Sys.open(Path.join(dir, "part-\(m).jsonl"), O_WRONLY | O_CREAT | O_TRUNC)
                var written = 0
                var n = 0
                var buf: [UInt8] = []
                let words = [
                    "debian", "package", "library", "development", "files", "for", "the", "tool", "runtime",
                    "support", "python", "module", "utility", "server", "client", "data", "documentation"
                ]
                var rng = SplitMix(seed: UInt64(m + 1))
                while written < megabytes << 20 / members {
                    var w = JSONWriter()
                    let textWords = (0..<(8 + Int(rng.next() % 40))).map { _ in
                        words[Int(rng.next() % UInt64(words.count))]
                    }
                    w.raw("{\"id\":\"")
                    w.bytes += Array("p\(m)-\(n)".utf8)
                    w.raw("\",\"text\":")
                    w.string(textWords.joined(separator: " "))
                    w.raw(",\"label\":")
                    w.int(Int(rng.next() % 10))
                    w.raw("}\n")
                    buf += w.bytes
                    n += 1
                    if buf.count > 1 << 20 {
                        try Sys.writeAll(fd, buf); written += buf.count; buf.removeAll(keepingCapacity: true)
                    }
                }
                try Sys.writeAll(fd, buf)
                Sys.close(fd)
            }
            try shell("tar -C '\(dir)' -czf '\(archive).tmp' . && mv '\(archive).tmp' '\(archive)' && rm -rf '\(dir)'")
        }
        let size = Sys.fileSize(path: archive)
        try shell("cat '\(archive)' > /dev/null")  // page cache warm for both
        var tarTimes: [Double] = [], quernTimes: [Double] = [], rawTimes: [Double] = []
        var records = 0, bytes = 0
        for _ in 0..<3 {
            let t0 = time.monotonic()
            try shell("tar xzf - -O < '\(archive)' > /dev/null")
            tarTimes.append(time.monotonic() - t0)

            let t1 = time.monotonic()
            var spec = RecordSpec(format: .jsonl, members: "*.jsonl", idField: "id")
            spec.wantsText = false
            let stream = try RecordStream(path: archive, spec: spec)
            records = 0
            while let item = try stream.next() {
                if case .record = item { records += 1 }
            }
            bytes = stream.decompressedBytes
            quernTimes.append(time.monotonic() - t1)

            // Breakdown: libarchive alone (decompress + untar), no record decoding.
            let t2 = time.monotonic()
            let reader = try ArchiveReader(path: archive)
            while try reader.next() != nil {
                while try reader.readBlock() != nil {}
            }
            rawTimes.append(time.monotonic() - t2)
        }
        let tarBest = tarTimes.min()!, quernBest = quernTimes.min()!
        print("")
        print(
            "streaming \(Path.basename(archive)) (\(size >> 20) MB compressed, \(bytes >> 20) MB JSONL, \(records) records), best of 3:"
        )
        print(
            String(
                format: "  tar xzf - -O > /dev/null        %.2f s   %.0f MB/s", tarBest, Double(bytes) / tarBest / 1e6))
        print(
            String(
                format: "  quern stream + JSONL decode     %.2f s   %.0f MB/s   %.2f M records/s", quernBest,
                Double(bytes) / quernBest / 1e6, Double(records) / quernBest / 1e6))
        print(
            String(
                format: "  (libarchive read alone           %.2f s   %.0f MB/s)", rawTimes.min()!,
                Double(bytes) / rawTimes.min()! / 1e6))
        print(String(format: "  ratio quern/tar speed: %.2f   target >= 0.8", tarBest / quernBest))
    }

}

/// A small deterministic generator for benchmark data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
