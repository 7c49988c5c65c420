import ArgumentParser
import QuernCore
import QuernSpool

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks, printed as ratios against reference systems (use a release build).",
        subcommands: [SpoolBench.self])
}

struct SpoolBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spool",
        abstract: "Drop-to-claim latency, per-job overhead, and archive streaming speed against tar.")
    @Option(help: "Where to put the temporary spool and data (default: a new directory under /tmp).")
    var workdir: String?
    @Option(help: "Size of the generated JSONL tar.gz for the streaming test, in MB of JSONL.")
    var streamMB: Int = 1024
    @Option(help: "Manifests dropped for the latency test.")
    var drops: Int = 50
    @Option(help: "Tiny jobs for the per-job overhead test.")
    var jobs: Int = 50

    func run() throws {
        let bench = SpoolBenchmark(workdir: workdir, quernBinary: CommandLine.arguments[0])
        try bench.run(streamMB: streamMB, drops: drops, jobs: jobs)
    }
}
