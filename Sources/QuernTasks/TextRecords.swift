import QuernCore
import QuernData
import QuernKernels
import QuernModels

/// Records to a text encoder: each record's text (or its sentence pair) tokenized and
/// truncated as the model says, then run in the encoder's passes.
final class TextRecords {
    let model: any TextEncoder
    let tokenizer: any TextTokenizer
    let batchSize: Int
    let pool: ThreadPool
    /// Put before every single text (not before sentence pairs, which cross-encoders
    /// read as they are): see `prompt(_:_:)`.
    let prompt: String

    init(model: any TextEncoder, batchSize: Int, prompt: String = "", pool: ThreadPool = .shared) {
        self.model = model
        tokenizer = model.makeTokenizer()
        self.batchSize = batchSize
        self.prompt = prompt
        self.pool = pool
    }

    /// The records of `manifest` for `model`, prompted as the manifest and the model say.
    convenience init(_ manifest: Manifest, model: any TextEncoder) throws {
        self.init(model: model, batchSize: manifest.batchSize, prompt: try Self.prompt(manifest, model))
    }

    /// The job's prompt: `prompt` as given, the model's prompt named `prompt_name`, else
    /// the model's default prompt, else none: what sentence-transformers' `encode` does.
    static func prompt(_ manifest: Manifest, _ model: any TextEncoder) throws -> String {
        var text = manifest.prompt ?? ""
        if let name = manifest.promptName ?? (manifest.prompt == nil ? model.defaultPromptName : nil) {
            guard let p = model.prompts[name] else {
                let known = model.prompts.keys.sorted()
                throw QuernError(
                    .invalidValue,
                    known.isEmpty
                        ? "prompt_name \"\(name)\": this model has no prompts (config_sentence_transformers.json); give the text as \"prompt\""
                        : "prompt_name \"\(name)\" is not one of this model's prompts: \(known.joined(separator: ", "))",
                    field: "prompt_name")
            }
            text = p
        }
        if !text.isEmpty && !model.poolsPrompt {
            throw QuernError(
                .invalidValue,
                "this model's pooling leaves the prompt's tokens out (include_prompt: false), which Quern does not support",
                field: manifest.promptName != nil ? "prompt_name" : "prompt")
        }
        return text
    }

    /// Records to hand to a task at a time: enough passes for every thread to run whole
    /// passes of its own.
    static func window(batchSize: Int) -> Int { max(batchSize * 32, 1024) }
    var window: Int { Self.window(batchSize: batchSize) }

    /// The record's text, or its pair as one sequence when `pairs` (cross-encoders).
    func encode(_ r: Record, pairs: Bool) -> Result<TokenSequence, QuernError> {
        guard let text = r.text else {
            return .failure(QuernError(.missingValue, "record has no text", line: r.line, member: r.member))
        }
        if pairs {
            guard let b = r.pair else {
                return .failure(QuernError(.missingValue, "record has no pair text", line: r.line, member: r.member))
            }
            return .success(tokenizer.encode(text, b))
        }
        return .success(tokenizer.encode(prompt + text))
    }

    /// Encodes and runs the records: the model's output and, per record, its row in that
    /// output or its error, and whether its text was cut to the model's length.
    func run(_ batch: [Record], pairs: Bool = false) -> (TextOutput, [Result<Int, QuernError>], truncated: [Bool]) {
        var sequences: [TokenSequence] = []
        sequences.reserveCapacity(batch.count)
        let rows = batch.map { r -> Result<Int, QuernError> in
            encode(r, pairs: pairs).map { e in
                sequences.append(e)
                return sequences.count - 1
            }
        }
        let truncated = rows.map { (try? $0.get()).map { sequences[$0].truncated > 0 } ?? false }
        return (model.run(sequences, batchSize: batchSize, pool: pool), rows, truncated)
    }

    /// Every record of a whole-input task's input, as `take` makes it; a record `take`
    /// refuses (by throwing a QuernError) goes to the error file with that error, as do
    /// undecodable ones. An input with nothing usable is an error.
    static func readAll<T>(
        _ manifest: Manifest, spec: RecordSpec, context: WholeInputContext, _ take: (Record) throws -> T
    ) throws -> [T] {
        let stream = try RecordStream(path: context.inputPath, spec: spec, limits: manifest.limits.stream)
        var out: [T] = []
        while let item = try stream.next() {
            if context.shouldStop() { throw QuernError(.io, "stopped by signal while reading records") }
            switch item {
            case .record(let r):
                do {
                    out.append(try take(r))
                } catch let e as QuernError {
                    try context.errors.record(r, e)
                }
            case .failure(let f):
                try context.errors.record(f)
            }
        }
        guard !out.isEmpty else {
            throw QuernError(.emptyInput, "the input holds no usable records", field: "input.path")
        }
        return out
    }

    /// Embeddings of plain texts, in passes of `window` (whole-input tasks).
    func embed(_ texts: [String], stop: () -> Bool) throws -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(texts.count * model.dimension)
        for start in stride(from: 0, to: texts.count, by: window) {
            if stop() { throw QuernError(.io, "stopped by signal while computing embeddings") }
            let sequences = texts[start..<min(start + window, texts.count)].map { tokenizer.encode(prompt + $0) }
            out += model.run(sequences, batchSize: batchSize, pool: pool).embeddings
        }
        return out
    }
}
