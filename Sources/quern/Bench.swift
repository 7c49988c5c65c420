import ArgumentParser
import Foundation
import QuernBench
import QuernCore
import QuernKernels
import QuernSpool

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks, printed as ratios against reference systems (use a release build).",
        subcommands: [
            SpoolBench.self, KernelBench.self, TrainBench.self, TokenizeBench.self, EmbedBench.self, ClassifyBench.self,
            ShardBench.self, GenerateBench.self
        ])
}

struct SpoolBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
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

struct KernelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "fp32 GEMM GFLOP/s against OpenBLAS (numpy) on MiniLM shapes, 1024³ and small M.")
    @Option(help: "The OpenBLAS anchor script (shared/bench/gemm_anchor.py).")
    var anchor: String = "../shared/bench/gemm_anchor.py"
    @Option(help: "Thread counts to measure, comma-separated (default: 1 and all cores).")
    var threads: String?
    @Option(help: "Seconds of repetitions per measurement.")
    var seconds: Double = 1
    @Option(help: "Shapes MxKxN, comma-separated (default: MiniLM's matmuls, 1024³ and small M).")
    var shapes: String?

    func run() throws {
        let counts = threadCounts(threads)
        var chosen = KernelBenchmark.defaultShapes
        if let shapes {
            chosen = try shapes.split(separator: ",").map { text in
                let d = text.split(separator: "x").compactMap { Int($0) }
                guard d.count == 3, d.allSatisfy({ $0 > 0 }) else {
                    throw ValidationError("--shapes: \"\(text)\" is not MxKxN")
                }
                return KernelBenchmark.Shape(d[0], d[1], d[2])
            }
        }
        try KernelBenchmark(anchorScript: anchor, seconds: seconds).run(shapes: chosen, threadCounts: counts)
    }
}

struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Seconds per training epoch (digits MLP, LeNet-style CNN) against PyTorch on CPU.")
    @Option(help: "The PyTorch anchor script.")
    var anchor: String = "scripts/bench/train_anchor.py"
    @Option(help: "Python with torch (scripts/setup-torch.sh makes it).")
    var python: String = "/tmp/quern-torch/bin/python"
    @Option(help: "Models, comma-separated (mlp, cnn).")
    var models: String = "mlp,cnn"
    @Option(help: "Batch sizes, comma-separated.")
    var batches: String = "32,128"
    @Option(help: "Thread counts, comma-separated (default: 1 and all cores).")
    var threads: String?
    @Option(help: "Timed epochs (after one warm-up).")
    var epochs: Int = 5

    func run() throws {
        let counts = threadCounts(threads)
        let chosen = models.split(separator: ",").compactMap { TrainingBenchmark.Model(rawValue: String($0)) }
        TrainingBenchmark(anchorScript: anchor, python: python, epochs: epochs)
            .run(models: chosen, batches: batches.split(separator: ",").compactMap { Int($0) }, threadCounts: counts)
    }
}

/// `--threads 1,2` as a list; by default one thread and all cores.
func threadCounts(_ option: String?) -> [Int] {
    option.map { $0.split(separator: ",").compactMap { Int($0) } }
        ?? Array(Set([1, ThreadPool.defaultThreads])).sorted()
}

struct TokenizeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract:
            "Texts per second of an encoder tokenizer (WordPiece or Unigram) against Hugging Face tokenizers, one thread."
    )
    @Option(help: "A model directory with tokenizer.json (scripts/fetch-minilm.sh).")
    var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "JSONL texts (a \"text\" field).")
    var corpus: String = "../shared/corpora/debdesc.jsonl"
    @Option(help: "The tokenizers anchor script.")
    var anchor: String = "scripts/bench/tokenize_anchor.py"
    @Option(help: "Python with tokenizers (../shared/bench/setup-anchors.sh makes it).")
    var python: String = "/tmp/quern-anchors/venv/bin/python"
    @Option(help: "Texts per measurement.")
    var limit: Int = 20000

    func run() throws {
        try TokenizerBenchmark(model: model, corpus: corpus, anchorScript: anchor, python: python, limit: limit).run()
    }
}

struct EmbedBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract:
            "Sentence embeddings end to end (a real embed job) against CTranslate2, OpenVINO, onnxruntime, fastembed, PyTorch and llama.cpp (embed_anchors_plus.py), fp32 and int8, same texts and threads, with fidelity."
    )
    @Option(help: "A sentence-transformers model directory (scripts/fetch-minilm.sh).")
    var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "JSONL texts (a \"text\" field).")
    var corpus: String = "../shared/corpora/debdesc.jsonl"
    @Option(help: "The onnxruntime anchor script.")
    var anchor: String = "../shared/bench/embed_anchors.py"
    @Option(help: "Python with onnxruntime (../shared/bench/setup-anchors.sh makes it).")
    var python: String = "/tmp/quern-anchors/venv/bin/python"
    @Option(help: "The anchors of every engine (used when its venv exists; else onnxruntime alone).")
    var plusAnchor: String = "../shared/bench/embed_anchors_plus.py"
    @Option(help: "Python of embed_anchors_plus.py (../shared/bench/setup-anchors-plus.sh makes it).")
    var plusPython: String = "/tmp/quern-anchors2/venv/bin/python"
    @Option(help: "Short texts (corpus lines) per measurement.")
    var limit: Int = 20000
    @Option(help: "Long texts (lines joined to 50-250 tokens) per measurement.")
    var longLimit: Int = 4000
    @Option(help: "Thread counts, comma-separated (default: 1 and all cores).")
    var threads: String?
    @Option(
        help:
            "Precisions, comma-separated: fp32, int8 (quantized at load), int8-static (a quantize job's static int8 model)."
    )
    var precisions: String = "fp32,int8,int8-static"
    @Option(help: "The job's batch_size.")
    var batchSize: Int = 64
    @Option(help: "Where to put the text sets and spools (default: a new directory under /tmp).")
    var workdir: String?

    func run() throws {
        let dir = workdir ?? "/tmp/quern-bench-embed-\(ProcessInfo.processInfo.processIdentifier)"
        try EmbedBenchmark(
            quernBinary: CommandLine.arguments[0], model: model, corpus: corpus, anchorScript: anchor, python: python,
            plusAnchorScript: plusAnchor, plusPython: plusPython, limit: limit, longLimit: longLimit,
            threads: threadCounts(threads),
            precisions: precisions.split(separator: ",").map(String.init), batchSize: batchSize, workdir: dir
        ).run()
        if workdir == nil { try? Sys.removeTree(dir) }
    }
}

struct ClassifyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract:
            "A finetune head on the frozen encoder against scikit-learn LogisticRegression on the same embeddings (debdesc sections)."
    )
    @Option(help: "A sentence-transformers model directory (scripts/fetch-minilm.sh).")
    var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "JSONL with \"text\" and \"section\".")
    var corpus: String = "../shared/corpora/debdesc.jsonl"
    @Option(help: "The scikit-learn anchor script.")
    var anchor: String = "scripts/bench/text_head_anchor.py"
    @Option(help: "Python with scikit-learn.")
    var python: String = "/tmp/quern-anchors/venv/bin/python"
    @Option(help: "The most common sections to keep.")
    var classes: Int = 10
    @Option(help: "Training epochs of the head.")
    var epochs: Int = 30
    @Option(help: "The head's learning rate (adamw).")
    var learningRate: Double = 0.003
    @Option(help: "Where to put the split, spools and model (default: a new directory under /tmp).")
    var workdir: String?

    func run() throws {
        let dir = workdir ?? "/tmp/quern-bench-classify-\(ProcessInfo.processInfo.processIdentifier)"
        try ClassifyBenchmark(
            quernBinary: CommandLine.arguments[0], model: model, corpus: corpus, anchorScript: anchor, python: python,
            classes: classes, epochs: epochs, learningRate: learningRate, workdir: dir
        ).run()
        if workdir == nil { try? Sys.removeTree(dir) }
    }
}

struct ShardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards",
        abstract:
            "An embed job as 1, 2 and 4 Slurm array tasks + merge against the job run whole (needs SLURM_CONF: scripts/local-slurm.sh up DIR), and the reading cost of record-range vs member shards."
    )
    @Option(help: "A sentence-transformers model directory (scripts/fetch-minilm.sh).")
    var model: String = "models/all-MiniLM-L6-v2"
    @Option(help: "JSONL texts (a \"text\" field).")
    var corpus: String = "../shared/corpora/debdesc.jsonl"
    @Option(help: "Texts in the embed job.")
    var limit: Int = 6000
    @Option(help: "Copies of the corpus in the reading-cost inputs.")
    var streamCopies: Int = 4
    @Option(help: "The embed job's precision.")
    var precision: String = "int8"
    @Option(
        help: "Where to put the inputs and spools; on storage every node sees (default: a new directory under /tmp).")
    var workdir: String?

    func run() throws {
        let dir = workdir ?? "/tmp/quern-bench-shards-\(ProcessInfo.processInfo.processIdentifier)"
        try ShardBenchmark(
            quernBinary: CommandLine.arguments[0], model: model, corpus: corpus, limit: limit,
            streamCopies: streamCopies, precision: precision, workdir: dir
        ).run()
        if workdir == nil { try? Sys.removeTree(dir) }
    }
}

struct GenerateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract:
            "Batch text generation end to end (real generate jobs) against transformers, CTranslate2 and llama.cpp: same prompt ids, threads and batch, greedy; tokens/s, fidelity, perplexity."
    )
    @Option(help: "Chat-format prompts (JSONL), as generate_anchors.py reads them.")
    var prompts: String = "../shared/corpora/prompts-debdesc-64.jsonl"
    @Option(help: "The anchors script.")
    var anchor: String = "../shared/bench/generate_anchors.py"
    @Option(help: "Python with the anchors (../shared/bench/setup-llm-anchors.sh makes it).")
    var python: String = "/tmp/quern-llm-anchors/venv/bin/python"
    @Option(help: "The Hugging Face fp32 directory (fp32 and int8 runs).")
    var model: String = "/tmp/quern-llm-anchors/models/smollm2-135m-hf"
    @Option(help: "The GGUF that q4 runs as stored.")
    var gguf: String = "/tmp/quern-llm-anchors/models/smollm2-135m-instruct.Q4_1.gguf"
    @Option(help: "Thread counts, comma-separated (default: 1 and all cores).")
    var threads: String?
    @Option(help: "Batch sizes, comma-separated.")
    var batches: String = "16,64"
    @Option(help: "Quern precisions, comma-separated.")
    var precisions: String = "fp32,int8,q4"
    @Option(help: "Anchor systems, comma-separated (generate_anchors.py --systems).")
    var systems: String = "hf_fp32,ct2_fp32,ct2_int8,llama_q4_1,llama_q8_0"
    @Option(help: "New tokens per prompt.")
    var maxNewTokens: Int = 64
    @Option(help: "debdesc texts for the perplexity comparison (0: skip it).")
    var perplexityTexts: Int = 200
    @Option(help: "JSONL texts for perplexity.")
    var corpus: String = "../shared/corpora/debdesc.jsonl"
    @Option(help: "Where to put prompts, anchor outputs and spools (default: a new directory under /tmp).")
    var workdir: String?

    func run() throws {
        let dir = workdir ?? "/tmp/quern-bench-generate-\(ProcessInfo.processInfo.processIdentifier)"
        func list(_ s: String) -> [String] { s.split(separator: ",").map(String.init) }
        try GenerateBenchmark(
            quernBinary: CommandLine.arguments[0], prompts: prompts, anchorScript: anchor, python: python, model: model,
            gguf: gguf, threads: threadCounts(threads), batches: list(batches).compactMap { Int($0) },
            precisions: list(precisions), systems: systems, maxNewTokens: maxNewTokens,
            perplexityTexts: perplexityTexts, corpus: corpus, workdir: dir
        ).run()
        if workdir == nil { try? Sys.removeTree(dir) }
    }
}
