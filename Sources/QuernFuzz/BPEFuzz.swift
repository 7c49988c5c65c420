import QuernCore
import QuernModels

/// The byte-level BPE tokenizer: its tokenizer.json, and the texts and ids it is given.
extension ModelFuzz {
    static let bpeProbes = [
        "Hello, world! It's 12345 o'clock", "naïve café — ÉTÉ, cafe\u{301}", "中文字符 and 日本語 한국어",
        "<|begin_of_text|>a <mask> b [WORD] nice<|im_end|>", "I'LL 'S 'ſ '' x", String(repeating: "ab", count: 200),
        "tab\tnew\nline\r\n\u{0}\u{FEFF}\u{3000} \u{A0}", "🙂👍🏽 👨‍👩‍👧", "", "\u{1100}\u{1161}\u{11A8} a\u{301}\u{316}",
        "x - y, z::w. ab"
    ]

    static func bpeJSON(_ bytes: [UInt8]) {
        guard let t = FuzzCheck.handled("BPE tokenizer.json", { try BPETokenizer(tokenizerJSON: bytes) }) else {
            return
        }
        let warmed = BPETokenizer.Session(t)
        for p in bpeProbes { _ = warmed.encode(p) }
        for p in bpeProbes { checkBPE(t, p, warmed: warmed) }
    }

    /// The fixture tokenizers (fixtures/text/bpe): every pipeline Quern implements.
    static let bpeFixtures: [(String, BPETokenizer)] = ["smollm2", "llama3", "qwen2", "starcoder-unk", "splits"].map {
        name in
        do {
            return (name, try BPETokenizer(tokenizerJSON: FuzzFixtures.read("text/bpe/\(name)/tokenizer.json")))
        } catch {
            FuzzCheck.fail("the fixture BPE tokenizer \(name) does not load: \(error)")
        }
    }

    /// A text through every fixture tokenizer; the same bytes as pairs of id bytes through
    /// every decoder.
    static func bpeText(_ bytes: [UInt8]) {
        let s = String(decoding: bytes, as: UTF8.self)
        for (name, t) in bpeFixtures {
            checkBPE(t, s)
            if name == "smollm2" {
                // No normalizer, no stripping: decoding gives the text back, less the bytes the
                // vocabulary lacks (SmolLM2 has no token for 21 bytes, and drops them).
                let back = t.decode(t.encode(s, addSpecialTokens: false), skipSpecialTokens: false)
                let kept = String(decoding: s.utf8.filter { t.id(byte: $0) != nil }, as: UTF8.self)
                FuzzCheck.require(
                    back == kept, "smollm2: decode(encode(\(s.debugDescription))) is \(back.debugDescription)")
            }
            var ids: [Int32] = []
            for i in stride(from: 0, to: bytes.count - 1, by: 2) {
                ids.append(Int32(bytes[i]) << 8 | Int32(bytes[i + 1]))
            }
            checkDecoding(t, ids)
        }
    }

    /// Invariants of an encoding: ids inside the vocabulary, the template around the text,
    /// a session's caches neutral (a fresh session, the same one again, and `warmed`, which
    /// has seen other texts, agree), streaming decoding equal to decoding at once.
    static func checkBPE(_ t: BPETokenizer, _ s: String, warmed: BPETokenizer.Session? = nil) {
        let fresh = BPETokenizer.Session(t)
        let plain = fresh.encode(s, addSpecialTokens: false), full = fresh.encode(s)
        FuzzCheck.require(
            plain.allSatisfy { $0 >= 0 && Int($0) < t.vocabularySize },
            "an id outside the vocabulary for \(s.debugDescription)")
        FuzzCheck.require(full == t.prefixIDs + plain + t.suffixIDs, "special tokens added wrongly")
        for session in [fresh] + (warmed.map { [$0] } ?? []) {
            FuzzCheck.require(
                session.encode(s, addSpecialTokens: false) == plain, "a session's cache changed \(s.debugDescription)")
        }
        checkDecoding(t, full)
    }

    static func checkDecoding(_ t: BPETokenizer, _ ids: [Int32]) {
        for skip in [false, true] {
            var stream = BPETokenizer.StreamDecoder(t, skipSpecialTokens: skip)
            let streamed = ids.map { stream.next($0) }.joined() + stream.finish()
            let whole = t.decode(ids, skipSpecialTokens: skip)
            FuzzCheck.require(
                streamed == whole, "streamed \(streamed.debugDescription), decoded \(whole.debugDescription)")
        }
    }
}
