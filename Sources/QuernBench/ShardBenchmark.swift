import Foundation
import QuernCore
import QuernData

/// `quern bench shards`: what running one job as N shards costs and gains.
///
/// 1. Wall time of an embed job submitted to Slurm (`quern slurm submit`) as 1, 2 and 4
///    array tasks, from submission to the merged result in `done/`, against the same job
///    run whole by `quern run --once` on all cores. Needs a running Slurm (SLURM_CONF);
///    `scripts/local-slurm.sh up DIR` makes one on this machine.
/// 2. The reading cost of the two ways to shard, without a model: a record-range shard
///    decodes every record before its range and drops it; a member shard never decodes
///    the other members (a zip seeks past them; a tar.gz still inflates them). Each
///    shard's stream is timed alone; their sum against one whole pass is the overhead.
public struct ShardBenchmark {
    let quern: String
    let model: String
    let corpus: String
    let limit: Int
    let streamCopies: Int
    let precision: String
    let workdir: String
    let time = SystemTime()

    public init(
        quernBinary: String, model: String, corpus: String, limit: Int, streamCopies: Int, precision: String,
        workdir: String
    ) {
        quern = (try? Sys.realpath(quernBinary)) ?? quernBinary
        self.model = (try? Sys.realpath(model)) ?? model
        self.corpus = corpus
        self.limit = limit
        self.streamCopies = streamCopies
        self.precision = precision
        self.workdir = workdir
    }

    public func run() throws {
        try Sys.mkdirs(workdir)
        let lines = try Sys.readFile(corpus, limit: 1 << 32).split(separator: 0x0A).map { Array($0) + [0x0A] }
        print(
            "quern bench shards  (\(Path.basename(model)) \(precision); \(ProcessInfo.processInfo.activeProcessorCount) cores; release build)\n"
        )
        try wallTimes(lines: Array(lines.prefix(limit)))
        print("")
        try readingCost(lines: lines)
    }

    // MARK: 1. wall time on Slurm

    func wallTimes(lines: [[UInt8]]) throws {
        let input = Path.join(workdir, "texts.jsonl")
        try Sys.writeFileAtomically(input, Array(lines.joined()))
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("1. embed, \(lines.count) texts: one job whole vs as Slurm array tasks + merge (submit to done/)")
        print("run                                  tasks  cpus/task  wall s  vs whole  shard seconds (sum)  merge s")
        let manifest: JSONValue = [
            "version": 1, "id": "bench", "task": "embed", "precision": .string(precision),
            "model": .string(model), "input": ["path": .string(input), "text_field": "text"]
        ]
        let started = time.monotonic()
        let (report, _) = try EmbedBenchmark.job(
            quern: quern, spool: Path.join(workdir, "whole"), manifest: manifest, threads: cores)
        let whole = time.monotonic() - started
        print(
            pad("quern run --once (all cores)", 37) + pad("-", 7) + pad("\(cores)", 11)
                + pad(String(format: "%.2f", whole), 8)
                + pad("1.00x", 10)
                + String(format: "%.2f", report["timings"]?.objectValue?["wall_seconds"]?.doubleValue ?? 0))
        guard Sys.environment("SLURM_CONF") != nil || Sys.exists("/etc/slurm/slurm.conf") else {
            print(
                "(Slurm rows skipped: no SLURM_CONF. `scripts/local-slurm.sh up DIR` and export the SLURM_CONF it prints.)"
            )
            return
        }
        for tasks in [1, 2, 4] {
            let cpus = max(1, cores / tasks)
            let spool = Path.join(workdir, "slurm-\(tasks)")
            try? Sys.removeTree(spool)
            let path = Path.join(workdir, "bench.json")
            try Sys.writeFileAtomically(path, JSONWriter.pretty(manifest))
            let t0 = time.monotonic()
            let submit = Process()
            submit.executableURL = URL(fileURLWithPath: quern)
            submit.arguments = [
                "slurm", "submit", path, spool, "--tasks", "\(tasks)", "--cpus-per-task", "\(cpus)", "--root", "/"
            ]
            submit.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try submit.run()
            submit.waitUntilExit()
            guard submit.terminationStatus == 0 else {
                throw QuernError(.scheduler, "quern slurm submit failed (exit \(submit.terminationStatus))")
            }
            let done = Path.join(spool, "done/bench"), failed = Path.join(spool, "failed/bench")
            while !Sys.exists(done) {
                if Sys.exists(failed) {
                    throw QuernError(.internalError, "the sharded bench job failed: see \(failed)/error.json")
                }
                if time.monotonic() - t0 > 3600 {
                    throw QuernError(.internalError, "the sharded bench job did not finish in an hour")
                }
                usleep(20_000)
            }
            let wall = time.monotonic() - t0
            let r = try JSONParser.parse(Sys.readFile(Path.join(done, "report.json"))).objectValue ?? JSONObject()
            let t = r["timings"]?.objectValue ?? JSONObject()
            print(
                pad("quern slurm submit + merge", 37) + pad("\(tasks)", 7) + pad("\(cpus)", 11)
                    + pad(String(format: "%.2f", wall), 8)
                    + pad(String(format: "%.2fx", whole / wall), 10)
                    + pad(String(format: "%.2f", t["shard_wall_seconds_sum"]?.doubleValue ?? 0), 21)
                    + String(format: "%.2f", t["merge_seconds"]?.doubleValue ?? 0))
        }
        print(
            "(vs whole > 1 is faster than the whole run. Scheduling is part of the wall time: Slurm's dispatch, and an array"
        )
        print(" task that waits for a free CPU when there are more tasks than cores.)")
    }

    // MARK: 2. reading cost of record-range vs member shards

    func readingCost(lines: [[UInt8]]) throws {
        let members = 8
        var all: [[UInt8]] = []
        for _ in 0..<streamCopies { all += lines }
        let dir = Path.join(workdir, "members")
        try? Sys.removeTree(dir)
        try Sys.mkdirs(dir)
        let per = (all.count + members - 1) / members
        var names: [String] = []
        for m in 0..<members {
            let name = String(format: "part-%02d.jsonl", m)
            try Sys.writeFileAtomically(
                Path.join(dir, name), Array(all[min(all.count, m * per)..<min(all.count, (m + 1) * per)].joined()))
            names.append(name)
        }
        let plain = Path.join(workdir, "texts.jsonl.gz"), tgz = Path.join(workdir, "texts.tar.gz"),
            zip = Path.join(workdir, "texts.zip")
        try shell("cat \(names.map { "'\(dir)/\($0)'" }.joined(separator: " ")) | gzip -6 > '\(plain)'")
        try shell("tar -czf '\(tgz)' -C '\(dir)' \(names.joined(separator: " "))")
        try shell("rm -f '\(zip)' && cd '\(dir)' && zip -q -6 '\(zip)' \(names.joined(separator: " "))")
        let spec = RecordSpec(format: .jsonl, textField: "text")
        var wantsText = spec
        wantsText.wantsText = true
        print(
            "2. reading cost of shards, no model: \(all.count) records (\(all.reduce(0) { $0 + $1.count } >> 20) MB of JSONL); each shard read alone (fastest of 3)"
        )
        print(
            "input                         mode      shards  plan s  one pass s  sum of shards s  overhead  slowest shard s"
        )
        for (label, path) in [("one .jsonl.gz", plain), ("8 members, .tar.gz", tgz), ("8 members, .zip", zip)] {
            var wholeCount = 0
            let onePass = try fastest { wholeCount = try drain(path, spec: wantsText, selection: .all) }
            for n in [2, 4] {
                var plan = ShardPlan(mode: .records, count: n, units: 0)
                let planSeconds = try fastest {
                    plan = try ShardPlan.make(path: path, spec: wantsText, limits: StreamLimits(), count: n)
                }
                var sum = 0.0, slowest = 0.0, count = 0
                for i in 0..<n {
                    var c = 0
                    let s = try fastest {
                        c = try drain(path, spec: wantsText, selection: plan.selection(try Shard(index: i, count: n)))
                    }
                    count += c
                    sum += s
                    slowest = max(slowest, s)
                }
                guard count == wholeCount else {
                    throw QuernError(
                        .internalError, "\(label): \(n) shards read \(count) records, the whole pass \(wholeCount)")
                }
                print(
                    pad(label, 30) + pad(plan.mode.rawValue, 10) + pad("\(n)", 8)
                        + pad(String(format: "%.2f", planSeconds), 8)
                        + pad(String(format: "%.2f", onePass), 12) + pad(String(format: "%.2f", sum), 17)
                        + pad(String(format: "%+.0f %%", (sum / onePass - 1) * 100), 10)
                        + String(format: "%.2f", slowest))
            }
        }
        print(
            "(overhead: the shards' reading time together against one pass over the input; plan: counting members or records once, by the first shard)"
        )
    }

    /// The fastest of three runs of `body`, in seconds: reading times this short move with
    /// the page cache and the other core's load.
    func fastest(_ body: () throws -> Void) throws -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = time.monotonic()
            try body()
            best = min(best, time.monotonic() - t0)
        }
        return best
    }

    /// Reads a stream to its end; the number of records and record errors.
    func drain(_ path: String, spec: RecordSpec, selection: RecordStream.Selection) throws -> Int {
        let stream = try RecordStream(path: path, spec: spec, selection: selection)
        var n = 0
        while try stream.next() != nil { n += 1 }
        return n
    }

    func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0)
    }
}
