import QuernCore
import QuernKernels
import QuernNN
import QuernTestSupport
import Testing

@testable import QuernModels

/// int8 copies of the tiny BERT (`BertModel.publishInt8`): what they store, how they
/// load, and how far their embeddings move from the float64 reference.
@Suite("bert int8 publishing")
struct BertQuantizationTests {
    /// Static ranges on a random 2-layer model calibrated on 41 texts: coarser than
    /// per-row quantization, still far from random vectors (cosine ~0).
    static let staticMinimumCosine = 0.97

    func calibration(_ model: BertModel) throws -> [TokenSequence] {
        let t = model.makeTokenizer()
        return try TinyBertTests.cases().map { t.encode($0.text) }
    }

    func publish(_ plan: EncoderQuantization, to dir: TempDir) throws -> (BertModel, JSONObject) {
        let source = try bert(TinyBertTests.embedder)
        let target = dir.path + "/int8"
        let block = try source.publishInt8(
            plan, calibration: try calibration(source), batchSize: 8, to: target, pool: .single, stop: { false })
        return (try bert(target), block)
    }

    @Test(
        "dynamic: I8 matrices and word embeddings with their scales; the copy stays as close to the reference as load-time int8"
    )
    func dynamic() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (copy, block) = try publish(EncoderQuantization(), to: dir)
        #expect(block["scheme"]?.stringValue == "dynamic")
        #expect(copy.isQuantized && copy.encoder.precision == .int8)
        let file = try SafetensorsFile(path: dir.path + "/int8/model.safetensors")
        #expect(file.entries["encoder.layer.0.attention.self.query.weight"]?.dtype == "I8")
        #expect(file.entries["encoder.layer.1.output.dense.weight_scale"]?.shape == [32])
        #expect(file.entries["encoder.layer.0.attention.self.input_scale"] == nil)
        #expect(
            Sys.isRegularFile(dir.path + "/int8/tokenizer.json") && Sys.isRegularFile(dir.path + "/int8/modules.json"))

        #expect(file.entries["embeddings.word_embeddings.weight"]?.dtype == "I8")
        #expect(file.entries["embeddings.word_embeddings.weight_scale"]?.shape == [copy.encoder.config.vocabSize])
        #expect(file.entries["embeddings.position_embeddings.weight"]?.dtype == "F32")
        let worst = try TinyBertTests().worstCosine(copy)
        #expect(worst >= TinyBertTests.int8MinimumCosine, "worst cosine \(worst)")
        // Only the word embeddings' rounding separates it from load-time int8.
        let loadTime = try bert(TinyBertTests.embedder, precision: .int8)
        let enc = try calibration(loadTime)
        let a = copy.forward(enc).embeddings, b = loadTime.forward(enc).embeddings
        #expect(a != b && zip(a, b).map { abs($0 - $1) }.max()! < 0.02)
        // Already int8: refused rather than quantized twice.
        #expect(throws: QuernError.self) {
            try copy.publishInt8(
                EncoderQuantization(), calibration: [], batchSize: 8, to: dir.path + "/again", pool: .single,
                stop: { false })
        }
    }

    @Test("static, smoothed or not: ranges (and divisors) per matrix input, embeddings close to the reference")
    func staticRanges() throws {
        for smoothing in [0.0, 0.8] {
            let dir = try TempDir()
            defer { dir.remove() }
            var plan = EncoderQuantization()
            plan.isStatic = true
            plan.smoothing = smoothing
            let (copy, block) = try publish(plan, to: dir)
            #expect(block["scheme"]?.stringValue == "static")
            let file = try SafetensorsFile(path: dir.path + "/int8/model.safetensors")
            for layer in 0..<2 {
                for input in BertEncoder.MatrixInput.allCases {
                    let g = BertEncoder.MatrixInput.prefix(layer: layer) + input.rawValue
                    #expect(file.entries[g + ".input_scale"]?.shape == [1], "\(g)")
                    #expect((file.entries[g + ".input_smoothing"] != nil) == (smoothing > 0), "\(g)")
                }
            }
            for layer in copy.encoder.layers {
                for op in [layer.qkv, layer.output, layer.up, layer.down] { #expect(op.kind == "int8-static") }
            }
            let worst = try TinyBertTests().worstCosine(copy)
            #expect(worst >= Self.staticMinimumCosine, "smoothing \(smoothing): worst cosine \(worst)")
        }
    }

    @Test("a static range or divisor that is not a u8 grid is refused by name at load")
    func badRanges() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var plan = EncoderQuantization()
        plan.isStatic = true
        plan.smoothing = 0.5
        _ = try publish(plan, to: dir)
        let path = dir.path + "/int8/model.safetensors"
        let file = try SafetensorsFile(path: path)
        var tensors: [String: ([Int], TensorData)] = [:]
        for (name, e) in file.entries {
            tensors[name] =
                e.dtype == "I8"
                ? (e.shape, .i8(try file.int8(name).values)) : (e.shape, .f32(try file.float32(name).data))
        }
        for (group, tensor, bad) in [
            ("encoder.layer.1.intermediate.dense", "input_scale", Float(-1)),
            ("encoder.layer.0.attention.self", "input_zero_point", Float(300))
        ] {
            var broken = tensors
            broken[group + "." + tensor] = ([1], .f32([bad]))
            try Sys.writeFile(path, Safetensors.encode(typed: broken))
            do {
                _ = try bert(dir.path + "/int8")
                Issue.record("\(group).\(tensor) = \(bad) loaded")
            } catch let e as QuernError {
                #expect(e.message.contains(group), "\(e.message)")
            }
        }
        var broken = tensors
        broken["encoder.layer.0.output.dense.input_smoothing"] = ([64], .f32([Float](repeating: 0, count: 64)))
        try Sys.writeFile(path, Safetensors.encode(typed: broken))
        #expect(throws: QuernError.self) { try bert(dir.path + "/int8") }
    }
}
