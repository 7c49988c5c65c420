import QuernCore
import QuernTestSupport
import Testing

@testable import QuernModels

/// The tokenizer against ids Hugging Face `tokenizers` produced with the same tiny
/// vocabulary (scripts/make_tokenizer_fixture.py); the full check on all-MiniLM-L6-v2,
/// debdesc and every code point is scripts/check-tokenizer.py.
@Suite("WordPiece tokenizer")
struct TokenizerTests {
    static let directory = repoRoot + "/fixtures/text/tiny-bert"

    struct Golden {
        let text: String
        let pair: String?
        let maxLength: Int?
        let ids: [Int32]
        let typeIDs: [Int32]?
    }

    static func golden() throws -> [Golden] {
        try Sys.readFile(repoRoot + "/fixtures/text/tokenizer-golden.jsonl").split(separator: 0x0A).map { line in
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            return Golden(
                text: try #require(o["text"]?.stringValue), pair: o["pair"]?.stringValue,
                maxLength: o["max_length"]?.intValue.map(Int.init),
                ids: try #require(o["ids"]?.arrayValue).map { Int32($0.intValue!) },
                typeIDs: o["type_ids"]?.arrayValue?.map { Int32($0.intValue!) })
        }
    }

    @Test("identical ids to tokenizers on hard Unicode cases, debdesc texts and pairs, with and without truncation")
    func matchesTokenizers() throws {
        let tokenizer = try WordPieceTokenizer.load(directory: Self.directory)
        let session = WordPieceTokenizer.Session(tokenizer)
        let cases = try Self.golden()
        #expect(cases.count == 560)
        var mismatches = 0
        for c in cases {
            let e =
                c.pair.map { session.encode(c.text, $0, maxLength: c.maxLength) }
                ?? session.encode(c.text, maxLength: c.maxLength)
            if e.ids != c.ids || (c.typeIDs != nil && e.typeIDs != c.typeIDs) {
                mismatches += 1
                Issue.record(
                    "\(c.text.debugDescription) \(c.pair?.debugDescription ?? "") max \(c.maxLength ?? 0): \(e.ids) != \(c.ids)"
                )
            }
        }
        #expect(mismatches == 0)
    }

    @Test("vocab.txt alone gives the same ids as tokenizer.json (BERT uncased defaults)")
    func vocabText() throws {
        let json = try WordPieceTokenizer(tokenizerJSON: Sys.readFile(Self.directory + "/tokenizer.json"))
        let txt = try WordPieceTokenizer(vocabTXT: Sys.readFile(Self.directory + "/vocab.txt"))
        #expect(json.vocabularySize == txt.vocabularySize)
        for c in try Self.golden() where c.pair == nil && c.maxLength == nil {
            #expect(txt.encode(c.text).ids == c.ids, "\(c.text.debugDescription)")
        }
    }

    @Test("pair truncation keeps what tokenizers' LongestFirst keeps")
    func longestFirst() {
        // (len a, len b, budget) → kept, from tokenizers 0.23 on the MiniLM tokenizer.
        let table: [(Int, Int, Int, Int, Int)] = [
            (1, 10, 5, 1, 4), (3, 10, 5, 2, 3), (10, 10, 5, 2, 3), (10, 3, 5, 3, 2), (7, 6, 5, 3, 2),
            (10, 3, 9, 6, 3), (10, 4, 9, 5, 4), (10, 5, 9, 5, 4), (4, 10, 9, 4, 5), (10, 10, 9, 4, 5),
            (10, 4, 8, 4, 4), (2, 3, 9, 2, 3)
        ]
        for (a, b, budget, ka, kb) in table {
            let kept = EncoderTemplate.longestFirst(a, b, budget: budget)
            #expect(kept.0 == ka && kept.1 == kb, "\(a), \(b) in \(budget): \(kept)")
        }
    }

    @Test("a word over 100 characters, or with no matching piece, is one [UNK]; specials match in raw text only")
    func edges() throws {
        let t = try WordPieceTokenizer.load(directory: Self.directory)
        let unk = t.unknownID
        #expect(t.encode(String(repeating: "a", count: 101)).ids == [t.clsID!, unk, t.sepID!])
        #expect(t.encode(String(repeating: "a", count: 100)).ids.count > 3)
        #expect(t.encode("\u{E000}").ids == [t.clsID!, t.sepID!])  // private use: cleaned away
        #expect(t.encode("\u{0378}").ids == [t.clsID!, unk, t.sepID!])  // unassigned: kept, unknown
        let mask = t.encode("[MASK]").ids, lower = t.encode("[mask]").ids
        #expect(mask.count == 3 && lower.count > 3)
    }

    @Test("tokenizer.json with a pipeline Quern does not implement is refused by name")
    func refusesOtherPipelines() throws {
        var json = try #require(try JSONParser.parse(Sys.readFile(Self.directory + "/tokenizer.json")).objectValue)
        json["normalizer"] = ["type": "NFKC"]
        #expect(throws: QuernError.self) { try WordPieceTokenizer(tokenizerJSON: JSONWriter.compact(.object(json))) }
        do {
            _ = try WordPieceTokenizer(tokenizerJSON: JSONWriter.compact(.object(json)))
        } catch let e as QuernError {
            #expect(e.message.contains("NFKC"))
        }
    }

    @Test("an added token takes its vocabulary id over a stated one, and every id it can emit counts in its size")
    func addedTokenIDs() throws {
        var json = try #require(try JSONParser.parse(Sys.readFile(Self.directory + "/tokenizer.json")).objectValue)
        var added = try #require(json["added_tokens"]?.arrayValue)
        let vocab = try #require(json["model"]?.objectValue?["vocab"]?.objectValue)
        let sep = try #require(vocab["[SEP]"]?.intValue)
        for (i, t) in added.enumerated() where t.objectValue?["content"]?.stringValue == "[SEP]" {
            var o = try #require(t.objectValue)
            o["id"] = .int(1_000_000)
            added[i] = .object(o)
        }
        json["added_tokens"] = .array(added)
        let t = try WordPieceTokenizer(tokenizerJSON: JSONWriter.compact(.object(json)))
        #expect(WordPieceTokenizer.Session(t).tokens("a [SEP] b").contains(Int32(sep)))
        // A template naming an id past the vocabulary makes the tokenizer that large, so a
        // model with fewer embeddings refuses it instead of reading past them.
        json["post_processor"] = .object(
            JSONObject([("type", "BertProcessing"), ("sep", ["[SEP]", 5000]), ("cls", ["[CLS]", 2])]))
        let big = try WordPieceTokenizer(tokenizerJSON: JSONWriter.compact(.object(json)))
        #expect(big.vocabularySize == 5001)
    }
}
