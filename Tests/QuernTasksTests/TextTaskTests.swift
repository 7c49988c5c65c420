import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernData
@testable import QuernModels
@testable import QuernTasks

/// The cross-encoder path of `score`: a head with one output scores each pair as one
/// sequence. The fixture classifier cut to its first output must give, for every pair
/// of the reference file, that output's logit.
@Suite("score with a cross-encoder")
struct CrossEncoderTests {
    @Test("pair scores are the one-output head's logits of the pair sequence")
    func crossEncoder() throws {
        let source = repoRoot + "/fixtures/models/tiny-bert-classifier"
        let dir = try TempDir()
        for f in ["tokenizer.json", "vocab.txt"] {
            try Sys.writeFile(dir.path + "/" + f, Sys.readFile(source + "/" + f, limit: 1 << 24))
        }
        var config = try #require(try JSONParser.parse(Sys.readFile(source + "/config.json")).objectValue)
        config["id2label"] = ["0": "relevance"]
        config["label2id"] = ["relevance": 0]
        config["problem_type"] = "regression"
        try Sys.writeFile(dir.path + "/config.json", JSONWriter.pretty(.object(config)))
        let weights = try SafetensorsFile(path: source + "/model.safetensors")
        var tensors: [String: ([Int], [Float])] = [:]
        for name in weights.entries.keys {
            let t = try weights.float32(name)
            switch name {
            case "classifier.weight": tensors[name] = ([1, t.shape[1]], Array(t.data[0..<t.shape[1]]))
            case "classifier.bias": tensors[name] = ([1], [t.data[0]])
            default: tensors[name] = (t.shape, t.data)
            }
        }
        try Sys.writeFile(dir.path + "/model.safetensors", Safetensors.encode(tensors))

        let model = try #require(try ModelRegistry.load(dir.path) as? BertModel)
        #expect(model.outputs == 1 && model.labels.isEmpty)
        let lines = try Sys.readFile(repoRoot + "/fixtures/text/tiny-bert-expected.jsonl").split(separator: 0x0A)
        var records: [Record] = [], expected: [Float] = []
        for line in lines {
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            guard let pair = o["text_pair"]?.stringValue else { continue }
            var r = Record(index: records.count, id: "p\(records.count)", member: "pairs", line: records.count + 1)
            r.text = o["text"]?.stringValue
            r.pair = pair
            records.append(r)
            expected.append(Float(try #require(o["logits"]?.arrayValue?.first?.doubleValue)))
        }
        #expect(records.count == 5)
        let task = Scorer(
            model: model, spec: RecordSpec(format: .jsonl), texts: TextRecords(model: model, batchSize: 2),
            mode: .crossEncoder)
        let rows = try task.run(records).map { try $0.get() }
        for (row, want) in zip(rows, expected) {
            guard case .float(let got)? = row.fields.first?.1 else { Issue.record("no score in \(row.id)"); continue }
            #expect(abs(got - want) <= 2e-5, "\(row.id): \(got) against \(want)")
        }
    }
}
