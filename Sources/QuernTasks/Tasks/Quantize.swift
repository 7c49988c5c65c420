import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// `quantize`: post-training int8 of a layer-stack model or a text encoder. Every
/// weight matrix becomes int8 per output channel (symmetric, [-127, 127]); activations
/// are either quantized per row at run time (`dynamic`) or to one range per matrix input
/// calibrated on the job's records (`static`: min-max, or percentiles that ignore
/// outliers; for text encoders optionally smoothed first, as SmoothQuant does).
/// Publishes the int8 model and reports its fidelity (accuracy, or the cosine of its
/// embeddings to the fp32 ones) and speed next to the fp32 model's, measured on the
/// same records.
public enum QuantizeTask: JobTask {
    public static let name = "quantize"
    public static let blocks: [any ManifestBlock.Type] = [Quantization.self]
    public static let readsWholeInput = true

    /// The `quantize` block.
    public struct Quantization: ManifestBlock, Equatable {
        public static let key = "quantize"
        public var scheme = "dynamic"
        public var calibration = "minmax"
        public var percentile = 99.99
        /// Records used for calibration (the first ones of the input).
        public var samples = 2048
        /// SmoothQuant's α for a text encoder's static ranges (nil: the default,
        /// `defaultSmoothing`); 0 turns smoothing off.
        public var smoothing: Double?
        public static let defaultSmoothing = 0.8

        public init() {}

        public init(from q: inout StrictObject) throws {
            scheme = try q.choice("scheme", ["dynamic", "static"]) ?? scheme
            calibration = try q.choice("calibration", RangeObserver.Method.allCases.map(\.rawValue)) ?? calibration
            if let p = try q.number("percentile") {
                guard p > 50, p <= 100 else {
                    throw QuernError(
                        .invalidValue, "quantize.percentile must be in (50, 100], e.g. 99.99",
                        field: "quantize.percentile")
                }
                percentile = p
            }
            samples = try q.int("samples", range: 1...10_000_000) ?? samples
            if let a = try q.number("smoothing") {
                guard a >= 0, a <= 1 else {
                    throw QuernError(
                        .invalidValue, "quantize.smoothing (SmoothQuant's alpha) must be in [0, 1], e.g. 0.5",
                        field: "quantize.smoothing")
                }
                guard scheme == "static" else {
                    throw QuernError(
                        .invalidValue, "quantize.smoothing applies to static ranges; set quantize.scheme to \"static\"",
                        field: "quantize.smoothing")
                }
                smoothing = a
            }
        }
    }

    public static func check(_ m: Manifest) throws {
        _ = try m.modelField("an fp32 model directory")
    }

    public static func prepare(_ job: TaskInputs) throws -> PreparedTask {
        let m = job.manifest
        let model = try job.loadModel(precision: .fp32)
        if let encoder = model.capability((any QuantizableEncoder).self) {
            return .wholeInput(
                EncoderQuantizer(job: job, encoder: encoder, spec: m.recordSpec(texts: true, labels: false)))
        }
        if m.input.format == .txt {
            throw QuernError(
                .unsupportedFormat,
                "task quantize on a \(model.family) model needs feature records (csv, jsonl, npy or idx) to calibrate and measure on",
                field: "input.format")
        }
        if m.block(Quantization.self).smoothing != nil {
            throw QuernError(
                .invalidValue,
                "quantize.smoothing applies to text encoders; a \(model.family) model has no such option",
                field: "quantize.smoothing")
        }
        return .wholeInput(Quantizer(stack: try StackSource(job)))
    }

    /// The report of either quantizer: the model and its published int8 copy, the input,
    /// record counts, the quantization block, and `metrics` (the task's own, then both
    /// speeds in `unit`s per second, the speed-up and both sizes).
    static func report(
        _ context: WholeInputContext, manifest: Manifest, model: any Model, succeeded: Int, block: JSONObject,
        calibrated: Int, metrics: JSONObject, unit: String, speeds: (fp32: Double, int8: Double)
    ) -> Report {
        var report = Report(id: context.id, task: name)
        report["model"] = Report.model(model, [("published", "model/")])
        report["input"] = ["path": .string(context.inputPath), "format": .string(manifest.input.format.rawValue)]
        report["records"] = Report.records(succeeded: succeeded, failed: context.errors.count)
        var described = block
        described["calibration_records"] = .int(Int64(calibrated))
        report["quantization"] = .object(described)
        var metrics = metrics
        metrics["fp32_\(unit)_per_second"] = .double(speeds.fp32)
        metrics["int8_\(unit)_per_second"] = .double(speeds.int8)
        metrics["speedup"] = .double(speeds.int8 / max(speeds.fp32, 1e-9))
        metrics["fp32_bytes"] = .int(Int64(model.weights?.bytes ?? 0))
        metrics["int8_bytes"] = .int(
            Int64(Sys.fileSize(path: Path.join(context.file("model"), ModelFiles.weightsName))))
        report["metrics"] = .object(metrics)
        return report
    }
}

/// `quantize` on a text encoder: calibrates on the first texts (static), publishes the
/// int8 model, then measures it against the fp32 one on the texts calibration did not
/// see (or, when it saw them all, on those).
struct EncoderQuantizer: WholeInputTask {
    let job: TaskInputs
    let encoder: any QuantizableEncoder
    let spec: RecordSpec
    var model: any Model { encoder }
    var inputSize: Int? { nil }
    /// Texts the fidelity and speed measurement runs on, at most.
    static let measured = 4096

    func run(_ context: WholeInputContext) throws -> WholeInputOutcome {
        let manifest = job.manifest
        let settings = manifest.block(QuantizeTask.Quantization.self)
        if encoder.isQuantized {
            throw QuernError(
                .modelInvalid, "quantize works on fp32 models; this encoder is int8 already", field: "model")
        }
        let texts = try TextRecords.readAll(manifest, spec: spec, context: context) { r in
            guard let t = r.text else { throw QuernError(.missingValue, "record has no text") }
            return t
        }
        let tokenizer = encoder.makeTokenizer(), prompt = try TextRecords.prompt(manifest, encoder)
        let calibrated = settings.scheme == "static" ? min(settings.samples, texts.count) : 0
        var plan = EncoderQuantization()
        plan.isStatic = settings.scheme == "static"
        plan.method = RangeObserver.Method(rawValue: settings.calibration) ?? .minmax
        plan.percentile = settings.percentile
        plan.smoothing = settings.smoothing ?? QuantizeTask.Quantization.defaultSmoothing
        context.progress(["stage": "calibrating", "texts": .int(Int64(calibrated))])
        let block = try encoder.publishInt8(
            plan, calibration: texts.prefix(calibrated).map { tokenizer.encode(prompt + $0) },
            batchSize: manifest.batchSize,
            to: context.file("model"), pool: .shared, stop: context.shouldStop)

        // Fidelity and speed on texts calibration did not see, else on those it did.
        let heldOut = texts.count > calibrated ? Array(texts[calibrated...]) : texts
        let sample = heldOut.prefix(Self.measured).map { tokenizer.encode(prompt + $0) }
        guard let int8 = try ModelRegistry.load(context.file("model")).capability((any TextEncoder).self) else {
            throw QuernError(.internalError, "the published int8 model is not a text encoder")
        }
        context.progress(["stage": "measuring", "texts": .int(Int64(sample.count))])
        func timed(_ m: any TextEncoder) -> (TextOutput, Double) {
            let t0 = context.time.monotonic()
            let out = m.run(sample, batchSize: manifest.batchSize, pool: .shared)
            return (out, Double(sample.count) / max(context.time.monotonic() - t0, 1e-9))
        }
        let (before, fp32Speed) = timed(encoder), (after, int8Speed) = timed(int8)
        let h = encoder.dimension
        var cosines: [Double] = []
        for i in 0..<sample.count {
            var dot = 0.0, a = 0.0, b = 0.0
            for d in 0..<h {
                let x = Double(before.embeddings[i * h + d]), y = Double(after.embeddings[i * h + d])
                dot += x * y
                a += x * x
                b += y * y
            }
            cosines.append(a > 0 && b > 0 ? dot / (a * b).squareRoot() : (a == b ? 1 : 0))
        }
        let mean = cosines.reduce(0, +) / Double(max(cosines.count, 1))

        var metrics = JSONObject()
        metrics["measured_on"] = .string(texts.count > calibrated ? "held-out texts" : "the calibration texts")
        metrics["measured_texts"] = .int(Int64(sample.count))
        metrics["cosine_mean"] = .double(mean)
        metrics["cosine_min"] = .double(cosines.min() ?? 1)
        let outputs = before.scores.count / max(sample.count, 1)
        if outputs > 1 {
            func argmax(_ s: [Float], _ i: Int) -> Int {
                (0..<outputs).max { s[i * outputs + $0] < s[i * outputs + $1] }!
            }
            let same = (0..<sample.count).filter { argmax(before.scores, $0) == argmax(after.scores, $0) }.count
            metrics["top1_agreement"] = .double(Double(same) / Double(max(sample.count, 1)))
        }
        let report = QuantizeTask.report(
            context, manifest: manifest, model: encoder, succeeded: texts.count, block: block, calibrated: calibrated,
            metrics: metrics, unit: "texts", speeds: (fp32Speed, int8Speed))
        return .finished(
            TaskResult(
                report: report, published: ["model"],
                summary: [("cosine_mean", .double(mean)), ("cosine_min", .double(cosines.min() ?? 1))]))
    }
}

struct Quantizer: StackTransform {
    let stack: StackSource

    /// Every weight matrix (found through the layers, however many each has) as int8 per
    /// output channel, with its calibrated input range when there is one; biases, batch
    /// norm and the normalizer stay fp32. Returns the int8 matrices and every tensor as the
    /// int8 model stores it.
    static func quantize(_ matrices: [StackMatrix], fp32: LoadedWeights, ranges: [String: QGEMM.InputRange])
        -> (quantized: [String: QuantizedLayer], tensors: [String: ([Int], TensorData)])
    {
        var quantized: [String: QuantizedLayer] = [:]
        var tensors: [String: ([Int], TensorData)] = [:]
        for (name, t) in fp32.tensors { tensors[name] = (t.shape, .f32(t.data)) }
        for m in matrices {
            let w = fp32.tensors[m.name]!
            let q = QuantizedWeights(quantizing: Tensor(shape: [m.rows, m.columns], data: w.data))
            quantized[m.name] = QuantizedLayer(weights: q, input: ranges[m.name], shape: w.shape)
            tensors[m.name] = (w.shape, .i8(q.values))
            tensors[m.scaleName] = ([q.n], .f32(q.scales))
            if let r = ranges[m.name] {
                tensors[m.inputScaleName] = ([1], .f32([r.scale]))
                tensors[m.inputZeroPointName] = ([1], .f32([Float(r.zeroPoint)]))
            }
        }
        return (quantized, tensors)
    }

    func run(_ context: WholeInputContext) throws -> WholeInputOutcome {
        let (manifest, source, fp32) = (stack.job.manifest, stack.model, stack.fp32)
        let config = source.config
        let records = try RecordSet.read(
            manifest, config: config, context: context, labels: manifest.input.labelField != nil)
        let settings = manifest.block(QuantizeTask.Quantization.self)
        let matrices = try config.matrices()

        // Calibration: each matrix's input range over the first records.
        var ranges: [String: QGEMM.InputRange] = [:]
        var calibrated = 0
        if settings.scheme == "static" {
            var observer = RangeObserver(
                method: RangeObserver.Method(rawValue: settings.calibration) ?? .minmax,
                percentile: settings.percentile)
            calibrated = min(settings.samples, records.count)
            let size = source.inputSize
            var start = 0
            while start < calibrated {
                let end = min(start + 256, calibrated)
                _ = source.forward(
                    Tensor(shape: [end - start, size], data: Array(records.inputs[(start * size)..<(end * size)])),
                    observe: { observer.observe($0, $1) })
                start = end
            }
            for m in matrices {
                if let r = observer.range(m.name) { ranges[m.name] = QGEMM.InputRange(lo: r.lo, hi: r.hi) }
            }
        }

        let (quantized, tensors) = Self.quantize(matrices, fp32: fp32, ranges: ranges)
        var published = config
        var block = JSONObject()
        block["scheme"] = .string(settings.scheme)
        block["weights"] = "int8, symmetric, per output channel"
        block["activations"] = .string(
            settings.scheme == "static"
                ? "u8, asymmetric, one range per layer calibrated on \(calibrated) records (\(settings.calibration))"
                : "u8, asymmetric, per row at run time")
        if settings.scheme == "static" {
            block["calibration"] = .string(settings.calibration)
            if settings.calibration == "percentile" { block["percentile"] = .double(settings.percentile) }
        }
        published.quantization = .object(block)
        let int8 = try StackModel(
            config: published, tensors: fp32.tensors, quantized: quantized, normalizer: fp32.normalizer,
            precision: .int8)

        // Measure both on the job's records.
        let before = records.evaluate(source), after = records.evaluate(int8)
        let speed = records.throughput(of: [source, int8])
        let agreement =
            Double(zip(before.predictions, after.predictions).filter { $0 == $1 }.count) / Double(max(records.count, 1))
        try publishModel(context, config: published, tensors: tensors, normalizer: fp32.normalizer)

        var metrics = JSONObject()
        metrics["fp32_accuracy"] = before.accuracy.map { .double($0) } ?? .null
        metrics["int8_accuracy"] = after.accuracy.map { .double($0) } ?? .null
        if let a = before.accuracy, let b = after.accuracy {
            metrics["accuracy_change_points"] = .double((b - a) * 100)
        }
        metrics["top1_agreement"] = .double(agreement)
        let report = QuantizeTask.report(
            context, manifest: manifest, model: source, succeeded: records.succeeded, block: block,
            calibrated: calibrated, metrics: metrics, unit: "records", speeds: (speed[0], speed[1]))
        return .finished(
            TaskResult(
                report: report, published: ["model"],
                summary: [
                    ("fp32_accuracy", before.accuracy.map { .double($0) } ?? .null),
                    ("int8_accuracy", after.accuracy.map { .double($0) } ?? .null)
                ]))
    }
}
