import QuernCore

/// The tokenizer a model directory asks for: tokenizer.json's `model.type` picks BPE
/// (`BPETokenizer`), Unigram (`UnigramTokenizer`) or WordPiece (`WordPieceTokenizer`,
/// also from a bare vocab.txt).
public enum ModelTokenizer: Sendable {
    case wordPiece(WordPieceTokenizer)
    case unigram(UnigramTokenizer)
    case bpe(BPETokenizer)

    /// An encoder's tokenizer (WordPiece or Unigram), or nil for BPE.
    public var encoder: (any EncoderTokenizer)? {
        switch self {
        case .wordPiece(let t): t
        case .unigram(let t): t
        case .bpe: nil
        }
    }

    public static func load(directory: String) throws -> ModelTokenizer {
        let json = Path.join(directory, "tokenizer.json")
        guard Sys.isRegularFile(json) else { return .wordPiece(try WordPieceTokenizer.load(directory: directory)) }
        let bytes = try Sys.readFile(json, limit: 256 << 20)
        let root = try? JSONParser.parse(bytes).objectValue
        switch root?["model"]?.objectValue?["type"]?.stringValue {
        case "BPE":
            return .bpe(try BPETokenizer.load(directory: directory, root: root!, source: json))
        case "Unigram":
            func fail(_ what: String) -> QuernError { QuernError(.modelInvalid, "\(json): \(what)", field: "model") }
            return .unigram(try UnigramTokenizer(root: root!, fail: fail))
        default:
            // WordPiece, or a file WordPieceTokenizer explains what is wrong with.
            return .wordPiece(try WordPieceTokenizer(tokenizerJSON: bytes, source: json))
        }
    }

    /// An encoder family's tokenizer: WordPiece or Unigram; a BPE file is refused by name.
    public static func encoder(directory: String) throws -> any EncoderTokenizer {
        let t = try load(directory: directory)
        guard let e = t.encoder else {
            throw QuernError(
                .modelInvalid,
                "\(directory)/tokenizer.json is a BPE tokenizer; this encoder family reads WordPiece or Unigram ones",
                field: "model")
        }
        return e
    }
}
