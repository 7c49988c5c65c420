import QuernCore
import QuernKernels

/// A loaded model, whatever its family: where it came from, how to describe it, and
/// what it can do. What it can do is a set of capability protocols (`TabularModel`,
/// `TextEncoder`, `SequenceClassifier`, `LayerStackSource`); a task asks for the one it
/// needs with `capability(_:)` and says what is missing when the answer is nil.
public protocol Model: Sendable {
    /// The family's `model_type`.
    var family: String { get }
    /// The model directory.
    var path: String { get }
    /// `model.safetensors`' digest; nil for an architecture without weights.
    var weights: WeightsDigest? { get }
    /// What `quern inspect` prints.
    func describe() -> JSONValue
    /// This model as `C`, when it can do what `C` describes. The default is the model's
    /// own conformance; a model whose abilities depend on its files (a text encoder with
    /// or without a classification head) answers for those.
    func capability<C>(_ type: C.Type) -> C?
}

extension Model {
    public func capability<C>(_ type: C.Type) -> C? { self as? C }
}

/// A weights file's identity, for reports: which bytes a job ran.
public struct WeightsDigest: Sendable, Equatable {
    public let sha256: String
    public let bytes: Int

    public init(sha256: String, bytes: Int) {
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// Rows of features in, one output row each: the `predict` and `evaluate` tasks on
/// tabular and image records.
public protocol TabularModel: Model {
    /// Features each input row must have.
    var inputSize: Int { get }
    /// Outputs per row.
    var outputSize: Int { get }
    /// Class names by output index, for classifiers; empty for regressors.
    var labels: [String] { get }
    /// The feature names the model was trained on, when known (CSV columns by name).
    var featureNames: [String]? { get }
    /// `[batch, inputSize]` → `[batch, outputs]` (logits for classifiers).
    func forward(_ x: Tensor) -> Tensor
}

/// Texts in, one pooled vector each (and, with a head, its scores): `embed`, `score`,
/// and the head a `finetune` job trains on the frozen encoder.
public protocol TextEncoder: Model {
    /// Length of the pooled vectors.
    var dimension: Int { get }
    /// Tokens per sequence, special tokens included.
    var maxLength: Int { get }
    /// A tokenizer for one thread of work (sessions keep per-text caches), truncating
    /// to `maxLength`.
    func makeTokenizer() -> any TextTokenizer
    /// Runs sequences in passes of at most `batchSize`: pooled embeddings
    /// `[n, dimension]` and head scores `[n, outputs]`, in the order given.
    func run(_ sequences: [TokenSequence], batchSize: Int, pool: ThreadPool) -> TextOutput
    /// sentence-transformers' prompts (`config_sentence_transformers.json`): name → the
    /// text put before each input ("query: "), and the one to use when a job names none.
    var prompts: [String: String] { get }
    var defaultPromptName: String? { get }
    /// False when the pooling leaves the prompt's tokens out (`include_prompt: false`).
    var poolsPrompt: Bool { get }
    /// True when the vectors are L2-normalised (a Normalize module).
    var normalizes: Bool { get }
    /// Publishes a copy of this encoder in `directory` (built whole, then renamed into
    /// place) with `head` as its pooled-embedding classification head.
    func publish(
        head: StackConfig, tensors: [String: ([Int], TensorData)], normalizer: ([Float], [Float])?,
        to directory: String) throws
}

extension TextEncoder {
    public var prompts: [String: String] { [:] }
    public var defaultPromptName: String? { nil }
    public var poolsPrompt: Bool { true }
    public var normalizes: Bool { false }
}

/// A text encoder with a classification or regression head: `predict` and `evaluate`
/// on texts (or sentence pairs, for cross-encoders).
public protocol SequenceClassifier: TextEncoder {
    /// Class names by head output; empty for a regression head.
    var labels: [String] { get }
    /// Head outputs per sequence.
    var outputs: Int { get }
}

/// Turns texts into token ids the way the model's tokenizer does.
public protocol TextTokenizer {
    func encode(_ text: String) -> TokenSequence
    /// A sentence pair as one sequence (cross-encoders).
    func encode(_ a: String, _ b: String) -> TokenSequence
    /// The whole text as overlapping windows of at most `tokens` tokens, each with the
    /// specials and `prompt`'s tokens, and starting `tokens − specials − prompt − overlap`
    /// text tokens after the last.
    /// `offsets`: find each window's characters (`TextChunk.characters`; nil otherwise).
    func chunks(_ text: String, prompt: String, tokens: Int, overlap: Int, offsets: Bool) -> [TextChunk]
}

/// One window of a long text.
public struct TextChunk: Sendable {
    public var sequence: TokenSequence
    /// Which of the text's tokens (specials and prompt not counted) the window holds.
    public var tokens: Range<Int>
    /// Where they are in the text, in Unicode scalars (Python's string indices), widened
    /// to whole space-separated words; nil when the tokenizer's pieces do not follow them.
    public var characters: Range<Int>?

    public init(sequence: TokenSequence, tokens: Range<Int>, characters: Range<Int>?) {
        self.sequence = sequence
        self.tokens = tokens
        self.characters = characters
    }
}

/// What a text encoder computes for a batch of sequences.
public struct TextOutput: Sendable {
    /// `[sequences, dimension]`, pooled (and normalised when the model says so).
    public var embeddings: [Float]
    /// `[sequences, outputs]`: the head's logits (or values); empty without a head.
    public var scores: [Float]

    public init(embeddings: [Float], scores: [Float]) {
        self.embeddings = embeddings
        self.scores = scores
    }
}

/// A layer-stack model as data: the architecture, and the fp32 tensors when there are
/// any. What training starts from, and what quantization and pruning transform.
public protocol LayerStackSource: Model {
    var config: StackConfig { get }
    /// The fp32 tensors and input normalizer; nil for an architecture without weights
    /// and for an int8 model (its fp32 weights are gone).
    var fp32: LoadedWeights? { get }
}

/// A decoder language model: token ids in, next-token logits out, one KV cache per
/// sequence: the `generate` task.
public protocol CausalLM: Model {
    var decoder: Decoder { get }
    /// Ids that end a completion (generation_config.json's `eos_token_id`, one or more).
    var endTokens: [Int32] { get }
    var beginToken: Int32? { get }
    /// A prompt's token ids as the model's tokenizer gives them: special tokens written
    /// in the text (`<|im_start|>`) are matched as such, and `addSpecialTokens` adds the
    /// tokenizer's own (a BOS for Llama 3), as transformers' `encode` does.
    func tokenize(_ text: String, addSpecialTokens: Bool) -> [Int32]
    /// A token's text bytes as a completion shows them: empty for special tokens.
    func tokenBytes(_ id: Int32) -> [UInt8]
    /// A conversation (`[{role, content}]`) rendered with the model's chat template;
    /// the error says why when the template rejects it or the model has none.
    func chatPrompt(_ messages: [JSONValue], addGenerationPrompt: Bool) throws -> String
}
