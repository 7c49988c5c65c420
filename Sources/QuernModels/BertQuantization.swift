import Foundation
import QuernCore
import QuernKernels
import QuernNN

/// How a `quantize` job turns a text encoder into int8: weights always per output
/// channel; activations per row at run time (`dynamic`), or to one range per matrix
/// input calibrated on the job's texts (`static`), optionally smoothed first.
public struct EncoderQuantization: Sendable {
    public var isStatic = false
    public var method = RangeObserver.Method.minmax
    /// For `.percentile`: the upper percentile kept.
    public var percentile = 99.99
    /// SmoothQuant's migration strength α in [0, 1] (static only): input channel p is
    /// divided by s_p = max|x_p|^α / max|W_·p|^(1−α) and the weights' column p multiplied
    /// by it, which moves outlier channels' range from the activations into the weights.
    /// 0 turns smoothing off.
    public var smoothing = 0.0

    public init() {}
}

/// A text encoder that can publish an int8 copy of itself (the `quantize` task on texts).
public protocol QuantizableEncoder: TextEncoder {
    /// True when the encoder is stored as int8 already (its fp32 weights are gone).
    var isQuantized: Bool { get }
    /// Writes the int8 copy to `directory` (built whole, then renamed), calibrating on
    /// `calibration` when static; returns the `quantization` block its config.json got.
    func publishInt8(
        _ plan: EncoderQuantization, calibration: [TokenSequence], batchSize: Int, to directory: String,
        pool: ThreadPool, stop: () -> Bool
    ) throws -> JSONObject
}

extension BertModel: QuantizableEncoder {
    public var isQuantized: Bool { encoder.config.quantization != nil }

    public func publishInt8(
        _ plan: EncoderQuantization, calibration: [TokenSequence], batchSize: Int, to directory: String,
        pool: ThreadPool, stop: () -> Bool
    ) throws -> JSONObject {
        guard !isQuantized else {
            throw QuernError(.modelInvalid, "\(path) is int8 already; quantize its fp32 original", field: "model")
        }
        let (bytes, json) = try ModelRegistry.config(path)
        let files = ModelFiles(path: path, configBytes: bytes, config: json)
        var source = try StrictWeights(files.weights().0, keyMap: variant.keyMap)
        let c = encoder.config
        let groups = (0..<c.layers).flatMap { l in BertEncoder.MatrixInput.allCases.map { (l, $0) } }
        func key(_ l: Int, _ g: BertEncoder.MatrixInput) -> String {
            BertEncoder.MatrixInput.prefix(layer: l) + g.rawValue
        }
        func rows(_ g: BertEncoder.MatrixInput) -> Int { g == .intermediate ? c.intermediate : c.hidden }

        // Each group's fp32 matrices, stacked: what smoothing looks at and quantization reads.
        var matrices: [String: [Float]] = [:]
        for (l, g) in groups {
            let p = BertEncoder.MatrixInput.prefix(layer: l)
            matrices[key(l, g)] = try g.matrices.flatMap {
                try source.float32(p + $0 + ".weight", shape: [rows(g), g.width(c)]).data
            }
        }

        var smoothing: [String: [Float]] = [:], ranges: [String: QGEMM.InputRange] = [:]
        if plan.isStatic {
            guard !calibration.isEmpty else {
                throw QuernError(.missingValue, "static quantization needs texts to calibrate on; the input had none")
            }
            func calibrate(_ observe: @escaping BertEncoder.Observer) throws {
                let ws = BertEncoder.Workspace()
                for start in stride(from: 0, to: calibration.count, by: max(batchSize, 1)) {
                    if stop() { throw QuernError(.io, "stopped by signal while calibrating") }
                    let batch = Array(calibration[start..<min(start + batchSize, calibration.count)])
                    _ = encoder.hiddenStates(batch, workspace: ws, pool: pool, observe: observe)
                }
            }
            // Pass 1 (smoothing): each input channel's largest magnitude.
            if plan.smoothing > 0 {
                var peaks: [String: [Float]] = [:]
                try calibrate { l, g, x, n in
                    let k = g.width(c), name = key(l, g)
                    var peak = peaks[name] ?? [Float](repeating: 0, count: k)
                    for r in 0..<n {
                        let row = x + r * k
                        for p in 0..<k { peak[p] = max(peak[p], abs(row[p])) }
                    }
                    peaks[name] = peak
                }
                let alpha = Float(plan.smoothing)
                for (l, g) in groups {
                    let name = key(l, g), k = g.width(c), w = matrices[name]!
                    var wPeak = [Float](repeating: 0, count: k)
                    for r in 0..<(w.count / k) {
                        for p in 0..<k { wPeak[p] = max(wPeak[p], abs(w[r * k + p])) }
                    }
                    let xPeak = peaks[name] ?? wPeak
                    // A dead channel (never active, or no weight reads it) is left alone.
                    smoothing[name] = (0..<k).map { p in
                        guard xPeak[p] > 0, wPeak[p] > 0 else { return 1 }
                        let s = pow(xPeak[p], alpha) / pow(wPeak[p], 1 - alpha)
                        return s.isFinite ? min(max(s, 1e-5), 1e5) : 1
                    }
                }
            }
            // Pass 2: the range of each (smoothed) input.
            var observer = RangeObserver(method: plan.method, percentile: plan.percentile)
            try calibrate { l, g, x, n in
                let k = g.width(c), name = key(l, g)
                var values = Array(UnsafeBufferPointer(start: x, count: n * k))
                if let s = smoothing[name] {
                    for r in 0..<n { for p in 0..<k { values[r * k + p] /= s[p] } }
                }
                observer.observe(name, values)
            }
            for (l, g) in groups {
                let name = key(l, g)
                guard let r = observer.range(name) else { continue }
                ranges[name] = QGEMM.InputRange(lo: r.lo, hi: r.hi, smoothing: smoothing[name])
            }
        }

        // Every tensor by Quern's name: matrices as I8 (smoothed columns first), the rest fp32.
        var tensors: [String: ([Int], TensorData)] = [:]
        var quantizedNames: Set<String> = []
        for (l, g) in groups {
            let p = BertEncoder.MatrixInput.prefix(layer: l), name = key(l, g), k = g.width(c), n = rows(g)
            var w = matrices[name]!
            if let s = smoothing[name] {
                for r in 0..<(w.count / k) { for q in 0..<k { w[r * k + q] *= s[q] } }
            }
            for (i, m) in g.matrices.enumerated() {
                let q = QuantizedWeights(
                    quantizing: Tensor(shape: [n, k], data: Array(w[(i * n * k)..<((i + 1) * n * k)])))
                tensors[p + m + ".weight"] = ([n, k], .i8(q.values))
                tensors[p + m + ".weight_scale"] = ([n], .f32(q.scales))
                quantizedNames.insert(p + m + ".weight")
            }
            if let r = ranges[name] {
                tensors[name + ".input_scale"] = ([1], .f32([r.scale]))
                tensors[name + ".input_zero_point"] = ([1], .f32([Float(r.zeroPoint)]))
                if let s = r.smoothing { tensors[name + ".input_smoothing"] = ([k], .f32(s)) }
            }
        }
        // The word embeddings as int8 rows, one scale each: a quarter of the table's bytes.
        let wordsName = "embeddings.word_embeddings.weight"
        let words = QuantizedWeights(quantizing: try source.float32(wordsName, shape: [c.vocabSize, c.hidden]))
        tensors[wordsName] = ([c.vocabSize, c.hidden], .i8(words.values))
        tensors["embeddings.word_embeddings.weight_scale"] = ([c.vocabSize], .f32(words.scales))
        quantizedNames.insert(wordsName)
        for original in source.file.entries.keys.sorted() {
            let name = variant.keyMap(original)
            guard !quantizedNames.contains(name), name != "embeddings.position_ids" else { continue }
            let e = source.file.entries[original]!
            tensors[name] = (e.shape, .f32(try source.float32(name, shape: e.shape).data))
        }

        var block = JSONObject()
        block["scheme"] = .string(plan.isStatic ? "static" : "dynamic")
        block["weights"] = "int8, symmetric, per output channel"
        if plan.isStatic {
            block["activations"] = .string(
                "u8, asymmetric, one range per matrix input calibrated on \(calibration.count) texts (\(plan.method.rawValue))"
            )
            block["calibration"] = .string(plan.method.rawValue)
            if plan.method == .percentile { block["percentile"] = .double(plan.percentile) }
            block["smoothing"] = .double(plan.smoothing)
            block["calibration_texts"] = .int(Int64(calibration.count))
        } else {
            block["activations"] = "u8, asymmetric, per row at run time"
        }
        var config = files.config
        config["quantization"] = .object(block)
        try copy(to: directory, skipping: [ModelFiles.weightsName, "config.json"]) { partial in
            try Sys.writeFile(Path.join(partial, "config.json"), JSONWriter.pretty(.object(config)))
            try Sys.writeFile(
                Path.join(partial, ModelFiles.weightsName),
                Safetensors.encode(typed: tensors, metadata: ["quern": "int8 bert"]))
        }
        return block
    }
}
