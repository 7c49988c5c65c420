import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    @Suite("finetune jobs")
    struct TrainingTests {
        /// scikit-learn's MLPClassifier on the same split (scripts/make_fixtures.py): the
        /// accuracy a Quern-trained mlp must reach on the test rows.
        static let sklearnMLPAccuracy = 0.9733
        static let finetuneFiles = [
            "errors.jsonl.gz", "job.log", "manifest.json", "model", "report.json", "training.svg"
        ]

        /// The example manifest from jobs/, with paths made absolute and overrides merged
        /// into its `train` block.
        static func manifest(_ name: String, id: String, train: [String: Any] = [:]) throws -> Data {
            var m = try JSON.object(Files.read(E2E.repoRoot + "/jobs/\(name).json"), what: name)
            m["id"] = id
            m["model"] = E2E.repoRoot + "/" + (m["model"] as! String)
            var input = m["input"] as! [String: Any]
            input["path"] = E2E.repoRoot + "/" + (input["path"] as! String)
            m["input"] = input
            var t = m["train"] as? [String: Any] ?? [:]
            for (k, v) in train { t[k] = v }
            m["train"] = t
            return try JSON.encode(m)
        }

        /// Runs `manifest` to the end on a reference spool, then on a second spool under a
        /// daemon that is killed with SIGKILL as soon as the job's first epoch checkpoint
        /// exists; returns both spools (the second with the job left in active/).
        static func runStraightAndKilled(_ manifest: Data, id: String, scratch: Scratch) async throws -> (
            SpoolDir, SpoolDir
        ) {
            let reference = try SpoolDir(scratch.file("reference"))
            try reference.drop("\(id).json", manifest)
            let straight = try await scratch.quern(["run", "--once", reference.root] + rootArgs(scratch), timeout: 600)
            #expect(straight.status == 0, "\(straight)")

            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("\(id).json", manifest)
            let first = try scratch.startQuern(["watch", spool.root] + rootArgs(scratch), label: "watch-killed")
            let checkpoint = spool.job("active", id) + "/training.checkpoint"
            try await E2E.waitUntil("an epoch checkpoint", timeout: 300, poll: 0.01) {
                guard first.isRunning else { throw E2EFailure("daemon exited before the kill: \(first.stderrTail)") }
                if !spool.jobs("done").isEmpty { throw E2EFailure("the job finished before it could be killed") }
                return Files.exists(checkpoint)
            }
            #expect(kill(first.pid, SIGKILL) == 0)
            let killed = try await first.wait(timeout: 20)
            #expect(killed.signaled && killed.status == SIGKILL)
            #expect(spool.jobs("done").isEmpty && spool.jobs("active") == [id])
            return (reference, spool)
        }

        @Test(
            "finetune an mlp from its architecture: model/, report and plot; the model beats sklearn's MLP on the test split"
        )
        func mlpFromScratch() async throws {
            let scratch = try Scratch("finetune")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("ft.json", try Self.manifest("finetune-digits-mlp", id: "ft-mlp"))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            #expect(run.status == 0, "\(run)")
            let done = spool.job("done", "ft-mlp")
            #expect(Files.list(done) == Self.finetuneFiles)
            #expect(Files.list(done + "/model") == ["config.json", "model.safetensors"])
            let report = try Files.json(done + "/report.json")
            #expect(JSON.string(report, "task") == "finetune")
            #expect(JSON.int(report, "records.succeeded") == 1347)
            #expect(JSON.int(report, "records.train")! + JSON.int(report, "records.validation")! == 1347)
            let history = try #require(JSON.get(report, "training.history") as? [[String: Any]])
            #expect(history.count == 30)
            #expect(JSON.double(history.last!, "train_loss")! < JSON.double(history.first!, "train_loss")!)
            let svg = try Files.text(done + "/training.svg")
            #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))

            // The published model is an ordinary model directory: evaluate it on the test rows.
            try spool.drop(
                "ev.json",
                try Manifests.bytes(
                    Manifests.predict(
                        id: "ev-mlp", input: E2E.digitsCSV, format: "csv",
                        input: ["id_field": "id", "label_field": "label"],
                        task: "evaluate", model: done + "/model")))
            let evaluate = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            #expect(evaluate.status == 0, "\(evaluate)")
            let metrics = try Files.json(spool.job("done", "ev-mlp") + "/report.json")
            let accuracy = try #require(JSON.double(metrics, "metrics.accuracy"))
            #expect(accuracy >= Self.sklearnMLPAccuracy, "test accuracy \(accuracy)")
        }

        /// train.patience ends training after that many epochs without a better
        /// validation loss, in finetune and in prune's recovery, and the report says so.
        @Test("train.patience stops finetune and prune recovery early; the best epoch is published")
        func earlyStopping() async throws {
            let scratch = try Scratch("patience")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // A learning rate this high overfits the small training split within a few dozen epochs.
            try spool.drop(
                "ft.json",
                try Self.manifest(
                    "finetune-digits-mlp", id: "ft",
                    train: [
                        "epochs": 400, "learning_rate": 0.03,
                        "patience": 2
                    ]))
            var prune = try JSON.object(
                try Self.manifest("prune-digits-mlp", id: "pr", train: ["patience": 2, "learning_rate": 0.03]),
                what: "prune")
            prune["prune"] = ["sparsity": 0.5, "schedule": "oneshot", "recovery_epochs": 400]
            try spool.drop("pr.json", try JSON.encode(prune))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 600)
            #expect(run.status == 0, "\(run)")
            let finetune = try Files.json(spool.job("done", "ft") + "/report.json")
            let epochs = try #require(JSON.int(finetune, "training.epochs_run"))
            #expect(JSON.bool(finetune, "training.stopped_early") == true)
            #expect(epochs < 400)
            #expect(
                JSON.int(finetune, "training.best_epoch") == epochs - 2, "two epochs without improvement after the best"
            )
            let pruned = try Files.json(spool.job("done", "pr") + "/report.json")
            let stopped = try #require(JSON.int(pruned, "pruning.stopped_early_after"))
            #expect(stopped < 400)
            #expect((JSON.get(pruned, "training.history") as? [Any])?.count == stopped)
        }

        /// kill -9 during a cnn finetune: the next daemon resumes at the epoch the job was
        /// in and publishes weights byte-identical to an uninterrupted run's.
        @Test("kill -9 during finetune, resume from the epoch checkpoint, byte-identical model")
        func killAndResume() async throws {
            let scratch = try Scratch("ft-crash")
            defer { scratch.remove() }
            let manifest = try Self.manifest("finetune-digits-cnn", id: "ft-cnn", train: ["epochs": 4])

            let (reference, spool) = try await Self.runStraightAndKilled(manifest, id: "ft-cnn", scratch: scratch)

            let resumed = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 600)
            #expect(resumed.status == 0, "\(resumed)")
            let done = spool.job("done", "ft-cnn"), ref = reference.job("done", "ft-cnn")
            #expect(Files.list(done) == Self.finetuneFiles)
            #expect(
                try Files.read(done + "/model/model.safetensors") == (try Files.read(ref + "/model/model.safetensors")),
                "resumed weights differ from the uninterrupted run's")
            #expect(try Files.read(done + "/model/config.json") == (try Files.read(ref + "/model/config.json")))
            let report = try Files.json(done + "/report.json"), refReport = try Files.json(ref + "/report.json")
            #expect(JSON.int(report, "resumed") == 1)
            #expect(
                JSON.double(report, "metrics.validation_accuracy")
                    == JSON.double(refReport, "metrics.validation_accuracy"))
            let log = try Files.text(done + "/job.log")
            #expect(log.contains("resuming training from checkpoint"), "job.log:\n\(log)")
        }
    }
}

extension EndToEnd {
    @Suite("quantize and prune jobs")
    struct ModelTransformTests {
        static let modelFiles = ["errors.jsonl.gz", "job.log", "manifest.json", "model", "report.json"]

        /// Evaluates a model directory on the digits test rows through the spool.
        static func testAccuracy(_ model: String, spool: SpoolDir, scratch: Scratch, id: String) async throws -> Double
        {
            try spool.drop(
                "\(id).json",
                try Manifests.bytes(
                    Manifests.predict(
                        id: id, input: E2E.digitsCSV, format: "csv", input: ["id_field": "id", "label_field": "label"],
                        task: "evaluate", model: model)))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            guard run.status == 0 else { throw E2EFailure("evaluate \(id): \(run)") }
            return try #require(JSON.double(try Files.json(spool.job("done", id) + "/report.json"), "metrics.accuracy"))
        }

        @Test(
            "static int8 quantization loses at most half a point of test accuracy; the int8 model is under half the size"
        )
        func quantize() async throws {
            let scratch = try Scratch("quantize")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("q.json", try TrainingTests.manifest("quantize-digits-mlp", id: "q"))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 300)
            #expect(run.status == 0, "\(run)")
            let done = spool.job("done", "q")
            #expect(Files.list(done) == Self.modelFiles)
            let report = try Files.json(done + "/report.json")
            #expect(JSON.string(report, "quantization.scheme") == "static")
            let config = try Files.json(done + "/model/config.json")
            #expect(JSON.string(config, "quantization.scheme") == "static")
            #expect(JSON.int(report, "metrics.int8_bytes")! * 2 < JSON.int(report, "metrics.fp32_bytes")!)
            let fp32 = try await Self.testAccuracy(E2E.model, spool: spool, scratch: scratch, id: "ev-fp32")
            let int8 = try await Self.testAccuracy(done + "/model", spool: spool, scratch: scratch, id: "ev-int8")
            #expect(int8 >= fp32 - 0.005, "int8 \(int8) vs fp32 \(fp32)")
            let inspect = try await scratch.quern(["inspect", done + "/model"])
            #expect(inspect.status == 0 && inspect.stdout.contains("int8-static"), "\(inspect)")
        }

        @Test("80 % pruning with cubic recovery loses at most one point of test accuracy")
        func prune() async throws {
            let scratch = try Scratch("prune")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            try spool.drop("p.json", try TrainingTests.manifest("prune-digits-mlp", id: "p"))
            let run = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 600)
            #expect(run.status == 0, "\(run)")
            let done = spool.job("done", "p")
            #expect(Files.list(done) == Self.modelFiles + ["training.svg"])
            let report = try Files.json(done + "/report.json")
            let sparsity = try #require(JSON.double(report, "pruning.sparsity"))
            #expect(abs(sparsity - 0.8) < 0.01)
            let layers = try #require(JSON.get(report, "pruning.layers") as? [[String: Any]])
            #expect(layers.count == 2 && layers.allSatisfy { abs((JSON.double($0, "sparsity") ?? 0) - 0.8) < 0.01 })
            let fp32 = try await Self.testAccuracy(E2E.model, spool: spool, scratch: scratch, id: "ev-dense")
            let pruned = try await Self.testAccuracy(done + "/model", spool: spool, scratch: scratch, id: "ev-pruned")
            #expect(pruned >= fp32 - 0.01, "pruned \(pruned) vs dense \(fp32)")
        }
    }
}

extension EndToEnd.ModelTransformTests {
    /// kill -9 during a prune job's recovery training: the next run resumes at the epoch
    /// it was in (weights, optimizer and masks from the checkpoint) and publishes the same
    /// bytes as an uninterrupted run. The base is a wide mlp trained here, so each
    /// recovery epoch takes long enough to be interrupted.
    @Test("kill -9 during prune recovery, resume from the epoch checkpoint, byte-identical model")
    func pruneKillAndResume() async throws {
        let scratch = try Scratch("prune-crash")
        defer { scratch.remove() }
        let base = try SpoolDir(scratch.file("base"))
        try base.drop(
            "wide.json",
            try EndToEnd.TrainingTests.manifest("finetune-digits-mlp-wide", id: "wide", train: ["epochs": 2]))
        let trained = try await scratch.quern(["run", "--once", base.root] + rootArgs(scratch), timeout: 600)
        #expect(trained.status == 0, "\(trained)")
        var m = try JSON.object(
            try EndToEnd.TrainingTests.manifest("prune-digits-mlp", id: "pw"), what: "prune manifest")
        m["model"] = base.job("done", "wide") + "/model"
        m["prune"] = ["sparsity": 0.9, "schedule": "cubic", "recovery_epochs": 6]
        let manifest = try JSON.encode(m)

        let (reference, spool) = try await EndToEnd.TrainingTests.runStraightAndKilled(
            manifest, id: "pw", scratch: scratch)
        let resumed = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch), timeout: 600)
        #expect(resumed.status == 0, "\(resumed)")
        let done = spool.job("done", "pw"), ref = reference.job("done", "pw")
        #expect(
            try Files.read(done + "/model/model.safetensors") == (try Files.read(ref + "/model/model.safetensors")),
            "resumed pruned weights differ from the uninterrupted run's")
        let log = try Files.text(done + "/job.log")
        #expect(log.contains("resuming recovery training from checkpoint"), "job.log:\n\(log)")
        let report = try Files.json(done + "/report.json")
        #expect(abs((JSON.double(report, "pruning.sparsity") ?? 0) - 0.9) < 0.01)
    }
}
