import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// What the model-making tasks (finetune, quantize, prune) share: reading every record
/// into memory, measuring a model on them, and publishing a model directory.
struct ModelJobInput {
    var inputs: [Float] = []
    /// Class indices, when the records carry labels.
    var labels: [Int]?
    var counts = Counts()

    var count: Int { counts.succeeded }

    /// Rows a forward call takes when measuring: batch-job sized, large enough that the
    /// sparse kernels' 64-row blocks keep both threads busy.
    static let measureBatch = 1024

    /// An fp32 model and its tensors, for the tasks that transform weights (an int8 model
    /// cannot be quantized or pruned again: its fp32 weights are gone).
    static func loadFP32(_ path: String, task: String) throws -> (ModelDirectory, LoadedWeights) {
        let source = try ModelDirectory.load(path)
        guard source.config.quantization == nil else {
            throw QuernError(.modelInvalid, "\(task) works on fp32 models; this one is int8 (prune and fine-tune before quantizing)", field: "model")
        }
        let weights = try SafetensorsFile(path: Path.join(path, "model.safetensors"))
        let loaded = try StackModel.loadTensors(weights, inputShape: source.config.inputShape, specs: source.config.specs,
                                                family: source.config.family)
        return (source, loaded)
    }

    /// Reads every record. A record with the wrong feature count, or (when `labels`) a
    /// missing or unknown label, goes to the error file instead.
    static func read(manifest: Manifest, config: StackConfig, inputPath: String, errors: ChunkedGzipWriter,
                     labels wantLabels: Bool) throws -> ModelJobInput {
        let classIndex = Dictionary(config.labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let size = config.inputShape.reduce(1, *)
        var spec = manifest.recordSpec
        spec.modelFeatureNames = config.featureNames
        spec.wantsLabel = wantLabels
        let stream = try RecordStream(path: inputPath, spec: spec, limits: manifest.limits.stream)
        var out = ModelJobInput()
        var labels: [Int] = []
        func fail(_ id: String?, _ member: String, _ line: Int?, _ e: QuernError) throws {
            try out.reject(id, member, line, e, errors: errors, maxErrors: manifest.limits.maxErrors)
        }
        while let item = try stream.next() {
            if StopSignal.requested { break }
            switch item {
            case .record(let r):
                guard r.features.count == size else {
                    try fail(r.id, r.member, r.line, QuernError(.featureCount, "record has \(r.features.count) features; the model takes \(size)"))
                    continue
                }
                if wantLabels {
                    guard let label = r.label, let k = classIndex[label] else {
                        let what = r.label.map { "label \"\($0)\" is not one of the model's classes (\(config.labels.prefix(10).joined(separator: ", ")))" }
                            ?? "record has no label"
                        try fail(r.id, r.member, r.line, QuernError(r.label == nil ? .missingValue : .unknownLabel, what))
                        continue
                    }
                    labels.append(k)
                }
                out.inputs += r.features
                out.counts.succeeded += 1
            case .failure(let f):
                try fail(f.id, f.member, f.line, f.error)
            }
        }
        guard out.counts.succeeded > 0 else {
            throw QuernError(.emptyInput, "the input holds no usable records", field: "input.path")
        }
        if wantLabels { out.labels = labels }
        return out
    }

    /// A bad record: into the error file; past `maxErrors` of them the job fails, naming
    /// the last.
    mutating func reject(_ id: String?, _ member: String, _ line: Int?, _ e: QuernError, errors: ChunkedGzipWriter,
                         maxErrors: Int) throws {
        counts.failed += 1
        try errors.append(JobRunner.errorLine(id: id, member: member, line: line, e))
        if counts.failed > maxErrors {
            throw QuernError(.tooManyErrors, "more than limits.max_errors (\(maxErrors)) bad records; the last: \(e.message). See errors.jsonl.gz", field: "limits.max_errors")
        }
    }

    /// Top-1 predictions of `model` on these records and the accuracy when labelled.
    func evaluate(_ model: StackModel) -> (predictions: [Int], accuracy: Double?) {
        var predictions: [Int] = []
        predictions.reserveCapacity(count)
        for batch in batches(size: model.inputSize) { predictions += model.forward(batch).argmaxRows() }
        let accuracy = labels.map { l in Double(zip(predictions, l).filter { $0 == $1 }.count) / Double(max(count, 1)) }
        return (predictions, accuracy)
    }

    /// Records per second of each model over these records, in batches of `measureBatch`.
    /// The models take turns pass by pass (at least three passes each, as many as fit in
    /// `seconds`) and each keeps its best pass, so a machine that slows down or speeds up
    /// mid-measurement (a neighbour on the VM, frequency changes) affects all alike and a
    /// ratio of two results compares like with like.
    func throughput(of models: [StackModel], seconds: Double = 1) -> [Double] {
        // Built once: every pass of every model runs on the same tensors (the models compared
        // take the same records), and copying records into batches is not a model's speed.
        guard let size = models.first?.inputSize else { return [] }
        precondition(models.allSatisfy { $0.inputSize == size }, "throughput compares models of one input size")
        let prepared = batches(size: size)
        let clock = SystemTime(), start = clock.monotonic()
        var best = [Double](repeating: .infinity, count: models.count)
        var passes = 0
        while passes < 3 || (clock.monotonic() - start < seconds && passes < 1000) {
            passes += 1
            for (i, model) in models.enumerated() {
                let t0 = clock.monotonic()
                for batch in prepared { _ = model.forward(batch) }
                best[i] = min(best[i], clock.monotonic() - t0)
            }
        }
        return best.map { Double(count) / max($0, 1e-9) }
    }

    /// The records in order, in batches of `measureBatch` rows of `size` features.
    private func batches(size: Int) -> [Tensor] {
        stride(from: 0, to: count, by: Self.measureBatch).map { start in
            let end = min(start + Self.measureBatch, count)
            return Tensor(shape: [end - start, size], data: Array(inputs[(start * size)..<(end * size)]))
        }
    }

    /// Writes `model/` (config.json + model.safetensors) into the job directory, whole or
    /// not at all: built in `model.partial/`, then renamed.
    static func publish(job: ActiveJob, config: StackConfig, tensors: [String: ([Int], TensorData)],
                        normalizer: ([Float], [Float])?) throws {
        let partial = job.file("model.partial"), final = job.file("model")
        try? Sys.removeTree(partial)
        try Sys.mkdirs(partial)
        try writeModel(into: partial, config: config, tensors: tensors, normalizer: normalizer)
        try? Sys.removeTree(final)
        try Sys.rename(partial, final)
    }

    /// config.json + model.safetensors (with the normalizer as `normalizer.*` tensors,
    /// the names `StackModel.loadTensors` reads) in an existing directory.
    static func writeModel(into dir: String, config: StackConfig, tensors: [String: ([Int], TensorData)],
                           normalizer: ([Float], [Float])?) throws {
        var out = tensors
        if let (mean, scale) = normalizer {
            out["normalizer.mean"] = ([mean.count], .f32(mean))
            out["normalizer.scale"] = ([scale.count], .f32(scale))
        }
        try Sys.writeFileAtomically(Path.join(dir, "config.json"), JSONWriter.pretty(config.json), durability: .content)
        try Sys.writeFileAtomically(Path.join(dir, "model.safetensors"), Safetensors.encode(typed: out), durability: .content)
    }
}

/// The state of a training run at an epoch boundary, in one safetensors file written
/// atomically: the network's tensors (`model/…`), the optimizer's buffers
/// (`optimizer/i`), whatever else the task keeps (`extra`, e.g. the best weights or
/// pruning masks), and the task's bookkeeping as JSON in the metadata.
enum TrainingCheckpoint {
    static func save(_ path: String, net: Sequential, optimizer: any Optimizer, extra: [String: Tensor], state: JSONValue) throws {
        var tensors: [String: ([Int], [Float])] = [:]
        for (name, t) in StackModel.tensors(of: net) { tensors["model/" + name] = (t.shape, t.data) }
        for (name, t) in extra { tensors[name] = (t.shape, t.data) }
        let o = optimizer.state
        for (i, b) in o.buffers.enumerated() { tensors["optimizer/\(i)"] = ([b.count], b) }
        var meta = JSONObject()
        meta["state"] = state
        meta["optimizer_step"] = .int(Int64(o.step))
        meta["optimizer_buffers"] = .int(Int64(o.buffers.count))
        let bytes = Safetensors.encode(tensors, metadata: ["quern_training": String(decoding: JSONWriter.compact(.object(meta)), as: UTF8.self)])
        try Sys.writeFileAtomically(path, bytes, durability: .content)
    }

    /// Restores the network and optimizer in place; returns the task's state and extras.
    static func load(_ path: String, net: Sequential, optimizer: any Optimizer) throws -> (JSONValue, [String: Tensor]) {
        let file = try SafetensorsFile(path: path)
        guard let raw = file.metadata["quern_training"], let meta = try JSONParser.parse(Array(raw.utf8)).objectValue,
              let state = meta["state"], let step = meta["optimizer_step"]?.intValue,
              let bufferCount = meta["optimizer_buffers"]?.intValue else {
            throw QuernError(.internalError, "\(path) has no training state")
        }
        var model: [String: Tensor] = [:], extra: [String: Tensor] = [:]
        for name in file.entries.keys where !name.hasPrefix("optimizer/") {
            if name.hasPrefix("model/") { model[String(name.dropFirst(6))] = try file.float32(name) } else { extra[name] = try file.float32(name) }
        }
        guard Set(StackModel.tensors(of: net).keys) == Set(model.keys) else {
            throw QuernError(.internalError, "\(path) holds a different network")
        }
        StackModel.assign(model, to: net)
        var buffers: [[Float]] = []
        for i in 0..<Int(bufferCount) { buffers.append(try file.float32("optimizer/\(i)").data) }
        optimizer.state = OptimizerState(step: Int(step), buffers: buffers)
        return (state, extra)
    }
}
