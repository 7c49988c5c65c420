import QuernCore
import QuernKernels
import QuernTestSupport
import Testing

@testable import QuernModels

/// The `xlm-roberta` family on tiny random XLM-R models made with `transformers`
/// (scripts/make_tiny_xlmr.py: hidden 32, 2 layers, a 1,202-piece SentencePiece Unigram
/// tokenizer converted as XLM-R's is), against the float64 numpy forward pass stored with
/// them (itself checked against transformers' float32 run): token ids, mean-pooled
/// normalised embeddings, `<s>` states and XLMRobertaForSequenceClassification logits,
/// for 41 texts and 5 pairs, some cut at 64 tokens, two with a literal `<pad>` (which
/// takes the padding position, the words after it counting on without it).
@Suite("xlm-roberta on the tiny fixtures")
struct TinyRobertaTests {
    static let embedder = repoRoot + "/fixtures/models/tiny-xlmr"
    static let classifier = repoRoot + "/fixtures/models/tiny-xlmr-classifier"
    /// fp32 against a float64 reference: a few float32 roundings per layer.
    static let fp32Tolerance: Float = 2e-5
    static let int8MinimumCosine = 0.99

    typealias Case = ReferenceRow

    static func cases() throws -> [Case] { try ReferenceRow.read(repoRoot + "/fixtures/text/tiny-xlmr-expected.jsonl") }

    func encodings(_ model: BertModel, _ cases: [Case]) -> [TokenSequence] {
        QuernModelsTests.encodings(model, cases.map { ($0.text, $0.pair) })
    }

    @Test("the directory's settings: xlm-roberta, Unigram, mean pooling, Normalize, 64 tokens (66 positions)")
    func settings() throws {
        let m = try bert(Self.embedder)
        #expect(m.family == "xlm-roberta")
        #expect(m.tokenizer is UnigramTokenizer)
        #expect(m.encoder.pooling == .mean && m.encoder.normalize)
        #expect(m.maxLength == 64 && m.encoder.config.positionPadding == 1)
        #expect(m.head == nil && m.dimension == 32)
        let c = try bert(Self.classifier)
        #expect(c.labels == ["admin", "games", "science"] && c.outputs == 3)
    }

    @Test("ids match tokenizers (truncation keeps </s>); fp32 embeddings and <s> states match the reference")
    func fp32() throws {
        let model = try bert(Self.embedder)
        let cases = try Self.cases()
        let enc = encodings(model, cases)
        #expect(enc.map(\.ids) == cases.map(\.ids))
        #expect(enc.contains { $0.truncated > 0 })
        let out = model.forward(enc)
        let h = model.dimension
        var worst: Float = 0, worstCLS: Float = 0
        let ws = BertEncoder.Workspace()
        let offsets = model.encoder.hiddenStates(enc, workspace: ws)
        let cls = model.encoder.pool(ws.x, offsets: offsets, mode: .cls, normalize: false)
        for (i, c) in cases.enumerated() {
            worst = max(worst, maxDifference(Array(out.embeddings[(i * h)..<((i + 1) * h)]), c.embedding))
            worstCLS = max(worstCLS, maxDifference(Array(cls[(i * h)..<((i + 1) * h)]), c.cls))
        }
        #expect(worst <= Self.fp32Tolerance, "worst embedding difference \(worst)")
        #expect(worstCLS <= Self.fp32Tolerance * 4, "worst <s> difference \(worstCLS)")
    }

    @Test("XLMRobertaForSequenceClassification logits match the reference, labels from id2label")
    func classifierLogits() throws {
        let model = try bert(Self.classifier)
        let cases = try Self.cases()
        let out = model.forward(encodings(model, cases))
        #expect(maxDifference(out.scores, cases.flatMap(\.logits)) <= Self.fp32Tolerance)
    }

    @Test("int8 embeddings stay close to the fp32 reference")
    func int8() throws {
        let model = try bert(Self.embedder, precision: .int8)
        let cases = try Self.cases()
        let worst = worstCosine(
            model.forward(encodings(model, cases)).embeddings, cases.map(\.embedding), dimension: model.dimension)
        #expect(worst >= Self.int8MinimumCosine, "worst cosine \(worst)")
    }

    static let roberta = repoRoot + "/fixtures/models/tiny-roberta"

    @Test(
        "roberta with a byte-level BPE tokenizer (as roberta-base): ids, embeddings and <s> states match the reference")
    func robertaBPE() throws {
        let model = try bert(Self.roberta)
        #expect(model.family == "xlm-roberta" && model.tokenizer is BPETokenizer && model.maxLength == 64)
        let cases = try ReferenceRow.read(repoRoot + "/fixtures/text/tiny-roberta-expected.jsonl")
        let enc = encodings(model, cases)
        #expect(enc.map(\.ids) == cases.map(\.ids))
        #expect(enc.contains { $0.truncated > 0 })
        let out = model.forward(enc)
        let h = model.dimension
        let ws = BertEncoder.Workspace()
        let offsets = model.encoder.hiddenStates(enc, workspace: ws)
        let cls = model.encoder.pool(ws.x, offsets: offsets, mode: .cls, normalize: false)
        var worst: Float = 0, worstCLS: Float = 0
        for (i, c) in cases.enumerated() {
            worst = max(worst, maxDifference(Array(out.embeddings[(i * h)..<((i + 1) * h)]), c.embedding))
            worstCLS = max(worstCLS, maxDifference(Array(cls[(i * h)..<((i + 1) * h)]), c.cls))
        }
        #expect(worst <= Self.fp32Tolerance, "worst embedding difference \(worst)")
        #expect(worstCLS <= Self.fp32Tolerance * 4, "worst <s> difference \(worstCLS)")
    }

    @Test(
        "RoBERTa's BPE as an encoder tokenizer: tokenizers' ids for hard cases, debdesc texts and <s> A </s></s> B </s> pairs"
    )
    func robertaGolden() throws {
        let t = try BPETokenizer.load(directory: Self.roberta)
        let session = t.makeSession()
        var checked = 0, mismatches: [String] = []
        for line in try Sys.readFile(repoRoot + "/fixtures/text/bpe-roberta-golden.jsonl").split(separator: 0x0A) {
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            let text = try #require(o["text"]?.stringValue)
            let want = try #require(o["ids"]?.arrayValue).map { Int32($0.intValue!) }
            let got =
                o["pair"]?.stringValue.map { t.template.encode(session.tokens(text), session.tokens($0)).ids }
                ?? t.template.encode(session.tokens(text)).ids
            checked += 1
            if got != want { mismatches.append("\(text.debugDescription): \(got) != \(want)") }
        }
        #expect(checked > 250)
        #expect(
            mismatches.isEmpty, "\(mismatches.count) of \(checked):\n\(mismatches.prefix(8).joined(separator: "\n"))")
    }

    @Test(
        "a prompt starts every window as it starts the whole text: a short text's one window is the prompted sequence",
        arguments: ["tiny-bert", "tiny-xlmr", "tiny-roberta"])
    func promptedWindows(_ name: String) throws {
        let model = try bert(repoRoot + "/fixtures/models/" + name)
        let t = model.makeTokenizer()
        for prompt in ["query: ", "passage: ", "Represent this sentence for searching relevant passages: "] {
            let text = "Loadable modules for extending Sylpheed features"
            let windows = t.chunks(text, prompt: prompt, tokens: 64, overlap: 0, offsets: true)
            #expect(windows.count == 1)
            #expect(windows.first?.sequence.ids == t.encode(prompt + text).ids, "\(name): \(prompt)")
            #expect(windows.first?.characters == 0..<text.unicodeScalars.count, "\(name)")
        }
    }
}
