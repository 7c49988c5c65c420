import QuernCore

/// The `xlm-roberta` family (also `roberta` and `camembert` configs): XLM-RoBERTa
/// encoders such as multilingual-e5, bge-m3 and paraphrase-multilingual, from a Hugging
/// Face directory. The architecture is BERT's (`BertEncoder`, loaded as `Bert` loads
/// one, with sentence-transformers' modules, heads and prompts); what differs is here:
/// tensors nested under `roberta.` in task models, positions counted from the padding id
/// + 1 (a padding token taking the padding id's row), a single token type, the
/// classification head `classifier.dense` → tanh → `classifier.out_proj` on `<s>`, and a
/// SentencePiece Unigram tokenizer (`UnigramTokenizer`; XLM-R) or a byte-level BPE one
/// (`BPETokenizer`; English RoBERTa).
public enum Roberta: ModelFamily {
    public static let modelType = "xlm-roberta"
    public static let aliases = ["roberta", "camembert"]
    public static var provides: [Any.Type] { Bert.provides }

    public static let variant = EncoderVariant(
        family: modelType, prefix: "roberta.", headDense: "classifier.dense", headOut: "classifier.out_proj",
        positionsAfterPadding: true)

    public static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model {
        try Bert.loadEncoder(files, options: options, variant: variant)
    }
}
