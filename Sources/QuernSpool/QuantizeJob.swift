import QuernCore
import QuernData
import QuernKernels
import QuernModels
import QuernNN

/// `quantize`: post-training int8. Weights become int8 per output channel (symmetric,
/// [-127, 127]); activations are either quantized per row at run time (`dynamic`) or
/// to one range per layer calibrated on the job's records (`static`: min-max, or
/// percentiles that ignore outliers). Publishes the int8 model and reports its accuracy
/// and speed next to the fp32 model's, measured on the same records.
struct QuantizeJob {
    static let keep: Set<String> = ["manifest.json", "model", "report.json", JobRunner.errorsName, "job.log"]

    let job: ActiveJob
    let manifest: Manifest
    let log: JobLog
    let time: any TimeSource

    func run(inputPath: String, modelPath: String, spool: Spool, errors: ChunkedGzipWriter) throws -> JobOutcome {
        let started = time.monotonic(), startedAt = time.now()
        let (source, fp32) = try ModelJobInput.loadFP32(modelPath, task: "quantize")
        let labelled = manifest.input.labelField != nil
        let records = try ModelJobInput.read(manifest: manifest, config: source.config, inputPath: inputPath, errors: errors,
                                             labels: labelled)
        let settings = manifest.quantization

        // Calibration: each weighted layer's input range over the first records.
        var ranges: [Int: QGEMM.InputRange] = [:]
        var calibrated = 0
        if settings.scheme == "static" {
            var observer = RangeObserver(method: RangeObserver.Method(rawValue: settings.calibration) ?? .minmax,
                                         percentile: settings.percentile)
            calibrated = min(settings.samples, records.count)
            let size = source.model.inputSize
            var start = 0
            while start < calibrated {
                let end = min(start + 256, calibrated)
                _ = source.model.forward(Tensor(shape: [end - start, size], data: Array(records.inputs[(start * size)..<(end * size)])),
                                         observe: { observer.observe($0, $1) })
                start = end
            }
            for (i, spec) in source.config.specs.enumerated() where spec.hasWeightMatrix {
                if let r = observer.range(i) { ranges[i] = QGEMM.InputRange(lo: r.lo, hi: r.hi) }
            }
        }

        // Quantize every weight matrix; biases, batch norm and the normalizer stay fp32.
        var quantized: [Int: QuantizedLayer] = [:]
        var tensors: [String: ([Int], TensorData)] = [:]
        for (name, t) in fp32.tensors { tensors[name] = (t.shape, .f32(t.data)) }
        for (i, spec) in source.config.specs.enumerated() where spec.hasWeightMatrix {
            let w = fp32.tensors["layers.\(i).weight"]!
            let q = QuantizedWeights(quantizing: Tensor(shape: [w.shape[0], w.count / w.shape[0]], data: w.data))
            quantized[i] = QuantizedLayer(weights: q, input: ranges[i], shape: w.shape)
            tensors["layers.\(i).weight"] = (w.shape, .i8(q.values))
            tensors["layers.\(i).weight_scale"] = ([q.n], .f32(q.scales))
            if let r = ranges[i] {
                tensors["layers.\(i).input_scale"] = ([1], .f32([r.scale]))
                tensors["layers.\(i).input_zero_point"] = ([1], .f32([Float(r.zeroPoint)]))
            }
        }
        var config = source.config
        var block = JSONObject()
        block["scheme"] = .string(settings.scheme)
        block["weights"] = "int8, symmetric, per output channel"
        block["activations"] = .string(settings.scheme == "static"
            ? "u8, asymmetric, one range per layer calibrated on \(calibrated) records (\(settings.calibration))"
            : "u8, asymmetric, per row at run time")
        if settings.scheme == "static" {
            block["calibration"] = .string(settings.calibration)
            if settings.calibration == "percentile" { block["percentile"] = .double(settings.percentile) }
        }
        config.quantization = .object(block)
        let int8 = try StackModel(config: config, tensors: fp32.tensors, quantized: quantized, normalizer: fp32.normalizer,
                                  precision: .int8)

        // Measure both on the job's records.
        let before = records.evaluate(source.model), after = records.evaluate(int8)
        let speed = records.throughput(of: [source.model, int8])
        let agreement = Double(zip(before.predictions, after.predictions).filter { $0 == $1 }.count) / Double(max(records.count, 1))
        try errors.finish()
        try Sys.rename(errors.path, job.file(JobRunner.errorsName))
        try ModelJobInput.publish(job: job, config: config, tensors: tensors, normalizer: fp32.normalizer)
        let fp32Bytes = Sys.fileSize(path: Path.join(modelPath, "model.safetensors"))
        let int8Bytes = Sys.fileSize(path: job.file("model/model.safetensors"))

        var report = JSONObject()
        report["id"] = .string(job.id)
        report["task"] = "quantize"
        report["status"] = "done"
        report["model"] = ["path": .string(modelPath), "family": .string(config.family), "sha256": .string(source.weightsSHA256),
                           "published": "model/"]
        report["input"] = ["path": .string(inputPath), "format": .string(manifest.input.format.rawValue)]
        report["records"] = ["read": .int(Int64(records.counts.succeeded + records.counts.failed)),
                             "succeeded": .int(Int64(records.counts.succeeded)), "failed": .int(Int64(records.counts.failed))]
        var described = block
        described["calibration_records"] = .int(Int64(calibrated))
        report["quantization"] = .object(described)
        var metrics = JSONObject()
        metrics["fp32_accuracy"] = before.accuracy.map { .double($0) } ?? .null
        metrics["int8_accuracy"] = after.accuracy.map { .double($0) } ?? .null
        if let a = before.accuracy, let b = after.accuracy { metrics["accuracy_change_points"] = .double((b - a) * 100) }
        metrics["top1_agreement"] = .double(agreement)
        metrics["fp32_records_per_second"] = .double(speed[0])
        metrics["int8_records_per_second"] = .double(speed[1])
        metrics["speedup"] = .double(speed[1] / max(speed[0], 1e-9))
        metrics["fp32_bytes"] = .int(Int64(fp32Bytes))
        metrics["int8_bytes"] = .int(Int64(int8Bytes))
        report["metrics"] = .object(metrics)
        report["timings"] = ["started_at": .string(Timestamp.iso8601(startedAt)), "finished_at": .string(Timestamp.iso8601(time.now())),
                             "wall_seconds": .double(time.monotonic() - started)]
        report["host"] = .string(Sys.hostname)
        try Sys.writeFile(job.file("report.json"), JSONWriter.pretty(.object(report)))
        log.log(.info, "job done", [("fp32_accuracy", before.accuracy.map { .double($0) } ?? .null),
                                    ("int8_accuracy", after.accuracy.map { .double($0) } ?? .null)])
        return .done(try spool.complete(job, keep: Self.keep))
    }
}

