import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernModels

/// The encoder against the exact fp32 reference (../shared/bench/bert_reference.py, plain
/// numpy) on all-MiniLM-L6-v2. Needs the model (scripts/fetch-minilm.sh) and the
/// reference vectors, named by QUERN_BERT_REFERENCE=CORPUS.jsonl:VECTORS.npy; runs when set.
@Suite("bert encoder")
struct BertTests {
    static let reference = Sys.environment("QUERN_BERT_REFERENCE")

    @Test(
        "fp32 cosine >= 0.99999 to the numpy reference for every text",
        .enabled(if: BertTests.reference != nil))
    func fidelity() throws {
        let (worst, mean) = try cosines(precision: .fp32)
        print("bert fp32 fidelity: worst cosine \(worst), mean \(mean)")
        #expect(worst >= 0.99999)
    }

    @Test(
        "int8 (dynamic) mean cosine >= 0.995 and minimum >= 0.98 to the numpy fp32 reference",
        .enabled(if: BertTests.reference != nil))
    func int8Fidelity() throws {
        let (worst, mean) = try cosines(precision: .int8)
        print("bert int8 fidelity: worst cosine \(worst), mean \(mean)")
        #expect(worst >= 0.98)
        #expect(mean >= 0.995)
    }

    func cosines(precision: LinearOperator.Precision) throws -> (worst: Double, mean: Double) {
        let parts = try #require(Self.reference?.split(separator: ":").map(String.init))
        let model = repoRoot + "/models/all-MiniLM-L6-v2"
        let config = try BertEncoder.Config(
            json: #require(try JSONParser.parse(Sys.readFile(model + "/config.json")).objectValue))
        var weights = try StrictWeights(SafetensorsFile(path: model + "/model.safetensors"), keyMap: Bert.keyMap)
        let encoder = try BertEncoder(
            config: config, weights: &weights, precision: precision, pooling: .mean, normalize: true)
        let tokenizer = WordPieceTokenizer.Session(try WordPieceTokenizer.load(directory: model))
        let npy = try Sys.readFile(parts[1], limit: 1 << 30)
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        let body = Array(npy[(10 + headerLength)...])
        let dim = config.hidden, count = body.count / 4 / dim
        let texts = try Sys.readFile(parts[0], limit: 1 << 30).split(separator: 0x0A).prefix(count).map {
            try #require(try JSONParser.parse(Array($0)).objectValue?["text"]?.stringValue)
        }
        var worst = 1.0, total = 0.0
        for start in stride(from: 0, to: count, by: 32) {
            let batch = texts[start..<min(start + 32, count)].map { tokenizer.encode($0, maxLength: 256) }
            for (j, v) in encoder.embed(batch).enumerated() {
                let i = start + j
                var dot = 0.0, na = 0.0, nb = 0.0
                for d in 0..<dim {
                    let r = Double(
                        body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: (i * dim + d) * 4, as: Float.self) })
                    dot += Double(v[d]) * r; na += Double(v[d]) * Double(v[d]); nb += r * r
                }
                let cosine = dot / (na * nb).squareRoot()
                worst = min(worst, cosine)
                total += cosine
            }
        }
        return (worst, total / Double(max(count, 1)))
    }
}
