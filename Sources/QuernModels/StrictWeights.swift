import QuernCore
import QuernKernels

/// How every family reads its weights: the checkpoint's tensor names mapped to Quern's
/// by one function (the family's key map), every tensor taken by its Quern name with
/// its shape checked, and at `finish()` any tensor that nobody took refused by name. A
/// family states the tensors it knows and deliberately leaves unused (a pooler without
/// a head, a saved position-id buffer) with `ignore`, so a leftover always means a
/// checkpoint of some other architecture, never a silently half-loaded model.
public struct StrictWeights {
    public let file: SafetensorsFile
    /// Quern name → the checkpoint's name.
    private let names: [String: String]
    private var taken: Set<String> = []

    /// `keyMap` renames a checkpoint's tensor to Quern's name for it (identity when the
    /// names agree). Two checkpoint tensors that map to one name are refused.
    public init(_ file: SafetensorsFile, keyMap: (String) -> String = { $0 }) throws {
        self.file = file
        var names: [String: String] = [:]
        for original in file.entries.keys.sorted() {
            let name = keyMap(original)
            if let other = names[name] {
                throw QuernError(
                    .modelMismatch,
                    "\(Path.basename(file.path)) holds both \"\(other)\" and \"\(original)\", which mean the same tensor \"\(name)\""
                )
            }
            names[name] = original
        }
        self.names = names
    }

    public func has(_ name: String) -> Bool { names[name] != nil }

    /// The stored shape of a tensor, without taking it.
    public func shape(_ name: String) -> [Int]? { names[name].flatMap { file.entries[$0]?.shape } }

    /// The stored dtype of a tensor ("F32", "I8", ...), without taking it.
    public func dtype(_ name: String) -> String? { names[name].flatMap { file.entries[$0]?.dtype } }

    /// A tensor as fp32, its shape checked against `shape`.
    public mutating func float32(_ name: String, shape: [Int]) throws -> Tensor {
        taken.insert(name)
        guard let original = names[name] else {
            throw QuernError(.modelMismatch, "\(Path.basename(file.path)) has no tensor \"\(name)\"")
        }
        return try file.float32(original, shape: shape)
    }

    /// An I8 tensor (quantized weights), its shape checked against `shape`.
    public mutating func int8(_ name: String, shape: [Int]) throws -> [Int8] {
        taken.insert(name)
        guard let original = names[name] else {
            throw QuernError(.modelMismatch, "\(Path.basename(file.path)) has no tensor \"\(name)\"")
        }
        return try file.int8(original, shape: shape).values
    }

    /// Marks the tensors `known` picks out as understood and unused.
    public mutating func ignore(where known: (String) -> Bool) {
        for name in names.keys where known(name) { taken.insert(name) }
    }

    /// Refuses a file holding tensors the family did not take or ignore, naming them.
    public func finish() throws {
        let extra = Set(names.keys).subtracting(taken)
        if !extra.isEmpty {
            throw QuernError(
                .modelMismatch,
                "\(Path.basename(file.path)) has tensors the config does not use: \(extra.sorted().prefix(5).joined(separator: ", "))"
            )
        }
    }
}
