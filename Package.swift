// swift-tools-version:6.0
// Quern's architecture, bottom to top. Data flows one way:
// spool → manifest → data stream → model → kernels → writer → spool.
import PackageDescription

let package = Package(
    name: "Quern",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "quern", targets: ["quern"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3")
    ],
    targets: [
        // C libraries, each behind exactly one Swift door (see the *Door.swift files).
        .systemLibrary(
            name: "CArchive", pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),

        // POSIX door, structured errors, JSON, logging, clocks: what every layer needs.
        .target(
            name: "QuernCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // SIMD inner loops (AVX2/AVX-512/VNNI) with scalar twins and a CPU-feature probe;
        // C because Swift has no per-function target attribute.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Tensors, thread pool, GEMM drivers (packing, blocking, threading), dispatch,
        // ggml's block formats, and the plain reference kernels every fast one is tested against.
        .target(name: "QuernKernels", dependencies: ["QuernCore", "CKernels"]),
        // Layers, reverse-mode autograd tape, losses, optimizers and schedules: training
        // on the kernel set.
        .target(name: "QuernNN", dependencies: ["QuernCore", "QuernKernels"]),
        // safetensors and GGUF (mmap), the model registry (config.json's model_type → one file per
        // family, each loading strictly and returning what its models can do), layer kinds
        // (one file each), tokenizers.
        .target(name: "QuernModels", dependencies: ["QuernCore", "QuernKernels", "QuernNN"]),
        // Archive streaming (libarchive), record decoders (one file per format), compressed
        // writers (zlib).
        .target(name: "QuernData", dependencies: ["QuernCore", "CArchive", "CZlib"]),
        // The task layer: the manifest, and one file per task (predict, evaluate, embed,
        // score, finetune, quantize, prune) found through one registry: its manifest block,
        // the model capabilities it needs, its record loop or whole-input run, its rows,
        // checkpoint state, report section and shard merge.
        .target(
            name: "QuernTasks",
            dependencies: ["QuernCore", "QuernData", "QuernModels", "QuernNN", "QuernKernels"]),
        // Job states and transitions, spool protocol, runner loop, output checkpoints,
        // watcher, status; cluster jobs (shards, merge) and their one door to Slurm's
        // commands. Knows no model and no kernel: tasks come from the registry.
        .target(name: "QuernSpool", dependencies: ["QuernCore", "QuernData", "QuernTasks"]),
        // `quern bench`: the spool and the kernels measured against reference systems.
        .target(
            name: "QuernBench",
            dependencies: ["QuernSpool", "QuernTasks", "QuernKernels", "QuernNN", "QuernModels", "QuernData"]),
        // Fuzz harnesses: every parser of untrusted bytes (manifest, JSON, record formats,
        // configs, safetensors, tokenizers) wrapped with the invariants it must keep.
        .target(
            name: "QuernFuzz", dependencies: ["QuernCore", "QuernData", "QuernKernels", "QuernModels", "QuernTasks"]),
        // `quern-fuzz NAME FILE...` replays inputs; built by scripts/fuzz.sh with
        // libFuzzer and AddressSanitizer, it fuzzes.
        .executableTarget(name: "quern-fuzz", dependencies: ["QuernFuzz", "QuernCore"]),
        // The command line: parses arguments and calls the libraries; no logic of its own.
        .executableTarget(
            name: "quern",
            dependencies: [
                "QuernSpool", "QuernTasks", "QuernBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),

        // Temporary directories, tool runners and byte builders shared by the unit tests.
        .target(name: "QuernTestSupport", dependencies: ["QuernCore"], path: "Tests/QuernTestSupport"),
        .testTarget(name: "QuernCoreTests", dependencies: ["QuernCore", "QuernTestSupport"]),
        .testTarget(name: "QuernKernelsTests", dependencies: ["QuernKernels"]),
        .testTarget(name: "QuernNNTests", dependencies: ["QuernNN"]),
        .testTarget(name: "QuernModelsTests", dependencies: ["QuernModels", "QuernNN", "QuernTestSupport"]),
        .testTarget(name: "QuernDataTests", dependencies: ["QuernData", "QuernTestSupport"]),
        .testTarget(name: "QuernTasksTests", dependencies: ["QuernTasks", "QuernTestSupport"]),
        .testTarget(name: "QuernSpoolTests", dependencies: ["QuernSpool", "QuernTasks", "QuernTestSupport"]),
        // Every harness over its committed seeds and past findings (Tests/Fuzz/NAME/).
        .testTarget(name: "QuernFuzzTests", dependencies: ["QuernFuzz"]),
        // Runs the built `quern` binary against temporary spools: real files, processes, signals.
        .testTarget(name: "EndToEndTests", dependencies: ["quern", "QuernCore", "QuernData"])
    ]
)
