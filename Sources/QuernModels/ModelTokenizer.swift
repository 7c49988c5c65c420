import QuernCore

/// The tokenizer a model directory asks for: tokenizer.json's `model.type` picks BPE
/// (`BPETokenizer`) or WordPiece (`WordPieceTokenizer`, also from a bare vocab.txt).
public enum ModelTokenizer: Sendable {
    case wordPiece(WordPieceTokenizer)
    case bpe(BPETokenizer)

    public static func load(directory: String) throws -> ModelTokenizer {
        let json = Path.join(directory, "tokenizer.json")
        guard Sys.isRegularFile(json) else { return .wordPiece(try WordPieceTokenizer.load(directory: directory)) }
        let bytes = try Sys.readFile(json, limit: 256 << 20)
        let root = try? JSONParser.parse(bytes).objectValue
        guard let root, root["model"]?.objectValue?["type"]?.stringValue == "BPE" else {
            // WordPiece, or a file WordPieceTokenizer explains what is wrong with.
            return .wordPiece(try WordPieceTokenizer(tokenizerJSON: bytes, source: json))
        }
        let bpe = try BPETokenizer.load(directory: directory, root: root, source: json)
        return .bpe(bpe)
    }
}
