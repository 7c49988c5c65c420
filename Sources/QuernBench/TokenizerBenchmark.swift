import Foundation
import QuernCore
import QuernModels

/// `quern bench tokenize`: texts and tokens per second of Quern's encoder tokenizer
/// (WordPiece or Unigram, as the model's tokenizer.json says)
/// against Hugging Face `tokenizers` (scripts/bench/tokenize_anchor.py) on one thread,
/// on the same texts: corpus lines as they are, and joined eight at a time (longer
/// texts, about 80 tokens).
public struct TokenizerBenchmark {
    let model: String
    let corpus: String
    let anchor: String?
    let python: String
    let limit: Int
    let repeats = 3

    public init(model: String, corpus: String, anchorScript: String?, python: String, limit: Int) {
        self.model = model
        self.corpus = corpus
        anchor = anchorScript
        self.python = python
        self.limit = limit
    }

    /// The texts as the anchor builds them: the first `limit · join` lines, `join` per text.
    func texts(join: Int) throws -> [String] {
        var raw: [String] = []
        for line in try Sys.readFile(corpus, limit: 1 << 32).split(separator: 0x0A) where raw.count < limit * join {
            guard let t = try JSONParser.parse(Array(line)).objectValue?["text"]?.stringValue else { continue }
            raw.append(t)
        }
        return stride(from: 0, to: raw.count, by: join).prefix(limit).map {
            raw[$0..<min($0 + join, raw.count)].joined(separator: " ")
        }
    }

    func anchorRun(join: Int) -> JSONObject? {
        Anchor.jsonLines(
            python: python, script: anchor, arguments: [model, corpus, "--limit", String(limit), "--join", String(join)]
        )?.last
    }

    public func run() throws {
        let tokenizer = try ModelTokenizer.encoder(directory: model)
        let template = tokenizer.template
        print("quern bench tokenize  (one thread; \(model))")
        print(
            "target: Quern >= 1.0x Hugging Face tokenizers single-threaded, identical ids (scripts/check-tokenizer.py)\n"
        )
        print("texts                    count   tokens   quern texts/s  tokenizers texts/s  ratio   quern tokens/s")
        for join in [1, 8] {
            let inputs = try texts(join: join)
            let session = tokenizer.makeSession()
            let clock = SystemTime()
            var best = Double.infinity, tokens = 0
            for _ in 0..<repeats {
                tokens = 0
                let t0 = clock.monotonic()
                for t in inputs { tokens += template.encode(session.tokens(t)).ids.count }
                best = min(best, clock.monotonic() - t0)
            }
            let ours = Double(inputs.count) / best
            let reference = anchorRun(join: join)
            // The faster of the two ways `tokenizers` offers: encode_batch and a loop of encode.
            let theirs = [
                reference?["batch_texts_per_second"]?.doubleValue, reference?["loop_texts_per_second"]?.doubleValue
            ]
            .compactMap { $0 }.max()
            if let refTokens = reference?["tokens"]?.intValue, Int(refTokens) != tokens {
                print("warning: token counts differ (quern \(tokens), tokenizers \(refTokens))")
            }
            let label = join == 1 ? "corpus lines" : "\(join) lines joined"
            print(
                label.padding(toLength: 22, withPad: " ", startingAt: 0)
                    + String(format: " %7d %8d %15.0f ", inputs.count, tokens, ours)
                    + (theirs.map { String(format: "%19.0f %6.2f", $0, ours / $0) } ?? "                  -      -")
                    + String(format: " %16.0f", Double(tokens) / best))
        }
    }
}
