import QuernCore
import QuernTestSupport
import Testing

@testable import QuernModels

/// The Unigram tokenizer against ids Hugging Face `tokenizers` produced
/// (scripts/make_tiny_xlmr.py): a SentencePiece model converted as XLM-R's is
/// (Precompiled rules, Strip, Replace, Metaspace) and one trained with `tokenizers`
/// (NFKC, Replace, Metaspace), on hard Unicode cases, debdesc texts and pairs.
@Suite("Unigram tokenizer")
struct UnigramTokenizerTests {
    static func tokenizer(_ name: String) throws -> UnigramTokenizer {
        let path = repoRoot + "/fixtures/text/\(name)/tokenizer.json"
        return try UnigramTokenizer(tokenizerJSON: Sys.readFile(path), source: path)
    }

    @Test(
        "identical ids to tokenizers for both tokenizers, on every golden text and pair",
        arguments: ["unigram-spm", "unigram-nfkc"])
    func matchesTokenizers(_ name: String) throws {
        let t = try Self.tokenizer(name)
        let session = t.makeSession()
        var checked = 0, mismatches: [String] = []
        for line in try Sys.readFile(repoRoot + "/fixtures/text/unigram-golden.jsonl").split(separator: 0x0A) {
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            guard o["tokenizer"]?.stringValue == name else { continue }
            let text = try #require(o["text"]?.stringValue)
            let want = try #require(o["ids"]?.arrayValue).map { Int32($0.intValue!) }
            let got: [Int32]
            if let pair = o["pair"]?.stringValue {
                got = t.template.encode(session.tokens(text), session.tokens(pair)).ids
            } else {
                got = t.template.encode(session.tokens(text)).ids
            }
            checked += 1
            if got != want { mismatches.append("\(text.debugDescription): \(got) != \(want)") }
        }
        #expect(checked > 200)
        #expect(
            mismatches.isEmpty, "\(mismatches.count) of \(checked):\n\(mismatches.prefix(8).joined(separator: "\n"))")
    }
}
