import QuernCore

/// The tokenizer a model directory asks for: tokenizer.json's `model.type` picks BPE
/// (`BPETokenizer`), Unigram (`UnigramTokenizer`) or WordPiece (`WordPieceTokenizer`,
/// also from a bare vocab.txt).
public enum ModelTokenizer: Sendable {
    case wordPiece(WordPieceTokenizer)
    case unigram(UnigramTokenizer)
    case bpe(BPETokenizer)

    /// As an encoder's tokenizer.
    public var encoder: any EncoderTokenizer {
        switch self {
        case .wordPiece(let t): t
        case .unigram(let t): t
        case .bpe(let t): t
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

    /// An encoder family's tokenizer, whichever model tokenizer.json has.
    public static func encoder(directory: String) throws -> any EncoderTokenizer {
        try load(directory: directory).encoder
    }
}
