import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernModels

/// The `bert` family on the project's tiny random BERTs (scripts/make_tiny_bert.py:
/// hidden 32, 2 layers, 4 heads), against the float64 numpy forward pass stored with
/// them: token ids, mean-pooled normalised embeddings, CLS and max hidden states, and
/// the BertForSequenceClassification logits, for 36 texts and 5 pairs (with truncation).
@Suite("bert on the tiny fixtures")
struct TinyBertTests {
    static let embedder = repoRoot + "/fixtures/models/tiny-bert"
    static let classifier = repoRoot + "/fixtures/models/tiny-bert-classifier"
    /// fp32 against a float64 reference: a few float32 roundings per layer.
    static let fp32Tolerance: Float = 2e-5
    /// int8 (per-channel weights, per-row activations) against the same reference.
    static let int8MinimumCosine = 0.99

    typealias Case = ReferenceRow

    static func cases() throws -> [Case] { try ReferenceRow.read(repoRoot + "/fixtures/text/tiny-bert-expected.jsonl") }

    func encodings(_ model: BertModel, _ cases: [Case]) -> [TokenSequence] {
        QuernModelsTests.encodings(model, cases.map { ($0.text, $0.pair) })
    }

    @Test("the directory's settings: mean pooling, Normalize, 64 positions, no head")
    func settings() throws {
        let m = try bert(Self.embedder)
        #expect(m.encoder.pooling == .mean)
        #expect(m.encoder.normalize)
        #expect(m.maxLength == 64)
        #expect(m.head == nil && m.labels.isEmpty && m.dimension == 32)
        let c = try bert(Self.classifier)
        #expect(c.labels == ["admin", "games", "science"])
        #expect(!c.encoder.normalize)
    }

    @Test("fp32 embeddings, CLS and max pooling match the reference; ids match tokenizers")
    func fp32() throws {
        let model = try bert(Self.embedder)
        let cases = try Self.cases()
        let enc = encodings(model, cases)
        #expect(enc.map(\.ids) == cases.map(\.ids))
        let out = model.forward(enc)
        let h = model.dimension
        var worst: Float = 0
        for (i, c) in cases.enumerated() {
            worst = max(worst, maxDifference(Array(out.embeddings[(i * h)..<((i + 1) * h)]), c.embedding))
        }
        #expect(worst <= Self.fp32Tolerance, "worst embedding difference \(worst)")
        for (mode, key) in [(BertEncoder.Pooling.cls, \Case.cls), (.max, \Case.max)] {
            let ws = BertEncoder.Workspace()
            let offsets = model.encoder.hiddenStates(enc, workspace: ws)
            let pooled = model.encoder.pool(ws.x, offsets: offsets, mode: mode, normalize: false)
            var worstMode: Float = 0
            for (i, c) in cases.enumerated() {
                worstMode = max(worstMode, maxDifference(Array(pooled[(i * h)..<((i + 1) * h)]), c[keyPath: key]))
            }
            #expect(worstMode <= Self.fp32Tolerance * 4, "\(mode): worst difference \(worstMode)")
        }
    }

    @Test("BertForSequenceClassification logits match the reference, labels from id2label")
    func classifierLogits() throws {
        let model = try bert(Self.classifier)
        let cases = try Self.cases()
        let out = model.forward(encodings(model, cases))
        #expect(model.outputs == 3)
        #expect(maxDifference(out.scores, cases.flatMap(\.logits)) <= Self.fp32Tolerance)
    }

    @Test("int8 embeddings stay close to the fp32 reference")
    func int8() throws {
        let worst = try worstCosine(try bert(Self.embedder, precision: .int8))
        #expect(worst >= Self.int8MinimumCosine, "worst cosine \(worst)")
    }

    /// The worst cosine of `model`'s embeddings to the reference's, over every case.
    func worstCosine(_ model: BertModel) throws -> Double {
        let cases = try Self.cases()
        return QuernModelsTests.worstCosine(
            model.forward(encodings(model, cases)).embeddings, cases.map(\.embedding), dimension: model.dimension)
    }

    @Test("many passes across threads give what one pass gives, in input order")
    func passes() throws {
        let model = try bert(Self.classifier)
        let cases = try Self.cases()
        let enc = Array(repeating: encodings(model, cases), count: 5).flatMap { $0 }
        let one = model.forward(enc, pool: .single)
        let pool = ThreadPool(threads: 2)
        for batch in [1, 3, 64] {
            let many = model.run(enc, batchSize: batch, pool: pool)
            #expect(maxDifference(many.embeddings, one.embeddings) <= 1e-6)
            #expect(maxDifference(many.scores, one.scores) <= 1e-6)
        }
    }

    @Test("a directory that asks for an unsupported pooling is refused by name")
    func unsupportedPooling() throws {
        let dir = try TempDir()
        for f in ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "modules.json"] {
            try Sys.writeFile(dir.path + "/" + f, Sys.readFile(Self.embedder + "/" + f, limit: 1 << 24))
        }
        try Sys.mkdir(dir.path + "/1_Pooling")
        try Sys.writeFile(
            dir.path + "/1_Pooling/config.json", Array(#"{"pooling_mode_mean_sqrt_len_tokens": true}"#.utf8))
        #expect(throws: QuernError.self) { try bert(dir.path) }
        do { _ = try bert(dir.path) } catch let e as QuernError {
            #expect(e.message.contains("pooling_mode_mean_sqrt_len_tokens"))
        }
    }
}

/// A bert model directory loaded through the registry.
func bert(_ path: String, precision: LinearOperator.Precision = .fp32) throws -> BertModel {
    try #require(try ModelRegistry.load(path, ModelOptions(precision: precision)) as? BertModel)
}
