import QuernCore
import QuernModels

/// SentencePiece Unigram tokenizers: tokenizer.json (vocabulary, precompiled charsmap,
/// normalizers, Metaspace, templates) and the texts they are given.
extension ModelFuzz {
    static let unigramProbes = [
        "Hello, World!", "naïve café — ÉTÉ", "ＡＢＣ１２３ ﬁ ① ㎏", "中文字符 and 日本語 ｶﾞ", "<s> </s> <unk> <mask>",
        " ́alone", "  two  spaces  ", "▁", "tab\tnew\nline\u{0}\u{FEFF}", "🙂👍🏽🇫🇷", "", String(repeating: "x", count: 300)
    ]

    static func unigramJSON(_ bytes: [UInt8]) {
        guard let t = FuzzCheck.handled("Unigram tokenizer.json", { try UnigramTokenizer(tokenizerJSON: bytes) })
        else { return }
        let warmed = t.makeSession()
        for p in unigramProbes { _ = warmed.tokens(p) }
        for p in unigramProbes { checkUnigram(t, p, warmed: warmed) }
    }

    static let unigramFixture: UnigramTokenizer = {
        do {
            return try UnigramTokenizer(tokenizerJSON: FuzzFixtures.read("text/unigram-spm/tokenizer.json"))
        } catch {
            FuzzCheck.fail("the fixture Unigram tokenizer does not load: \(error)")
        }
    }()

    /// A text through the fixture (XLM-R's pipeline); after a NUL, the rest as its pair.
    static func unigramText(_ bytes: [UInt8]) {
        let s = String(decoding: bytes, as: UTF8.self)
        checkUnigram(unigramFixture, s, warmed: nil)
        if let cut = bytes.firstIndex(of: 0) {
            let session = unigramFixture.makeSession()
            let a = session.tokens(String(decoding: bytes[..<cut], as: UTF8.self))
            let b = session.tokens(String(decoding: bytes[(cut + 1)...], as: UTF8.self))
            for limit in [nil, 3, 16] as [Int?] {
                let pair = unigramFixture.template.encode(a, b, maxLength: limit)
                checkSequence(unigramFixture.vocabularySize, unigramFixture.template, pair, limit: limit)
            }
        }
    }

    /// Ids inside the vocabulary, truncation honoured, and a session's cache never
    /// changing the result.
    static func checkUnigram(_ t: UnigramTokenizer, _ s: String, warmed: (any EncoderTokenizerSession)?) {
        let plain = t.makeSession().tokens(s)
        if let warmed {
            FuzzCheck.require(warmed.tokens(s) == plain, "a session's cache changed \(s.debugDescription)")
        }
        for limit in [nil, 2, 16] as [Int?] {
            let sequence = t.template.encode(plain, maxLength: limit)
            checkSequence(t.vocabularySize, t.template, sequence, limit: limit)
            if limit == nil {
                FuzzCheck.require(sequence.ids.count == plain.count + t.template.addedSingle, "specials added wrongly")
            }
        }
    }
}
