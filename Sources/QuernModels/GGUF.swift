import QuernCore
import QuernKernels

/// A GGUF file (llama.cpp's model format, versions 2 and 3), memory-mapped. The whole
/// header is checked on open, before anything is allocated by a size read from it: every
/// count and length must fit in the bytes left in the file, every tensor must have 1 to
/// `maxDimensions` dimensions of 1 to `maxDimension` each, a type Quern reads, rows of
/// whole blocks, a byte size that does not overflow, an offset that is a multiple of the
/// alignment and bytes inside the file that overlap no other tensor; keys and tensor names
/// are unique UTF-8. A damaged or hostile file fails at open with a message that names the
/// key or tensor and what a GGUF must be; it never traps and never allocates more than a
/// small multiple of the file's own size.
///
/// Layout (all little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count;
/// the metadata (string key, u32 value type, value); the tensor infos (string name, u32
/// dimension count, u64 dimensions, u32 ggml type, u64 offset); padding to `alignment`
/// (`general.alignment`, default 32); the data section. A string is a u64 byte length and
/// UTF-8 bytes; an array is a u32 element type, a u64 count and the elements.
///
/// Dimensions: GGUF lists a tensor's dimensions fastest-varying first (ggml's `ne`, `ne0`
/// being the row length), the reverse of Quern's row-major shapes: `GGUFTensorInfo.shape`
/// is `dims.reversed()`. So a linear layer's weight with dims `[in, out]` has shape
/// `[out, in]`, PyTorch's layout; `token_embd.weight` with dims `[hidden, vocab]` has shape
/// `[vocab, hidden]`.
public struct GGUFFile: Sendable {
    /// Most dimensions a tensor may have (ggml's GGML_MAX_DIMS).
    public static let maxDimensions = 4
    /// Largest single dimension accepted; ggml indexes rows with 32-bit integers in places,
    /// and no model comes near it.
    public static let maxDimension = Int(Int32.max)
    /// Deepest nesting of arrays inside metadata arrays (GGUF allows nesting; llama.cpp
    /// writes none). Bounds the reader's recursion.
    public static let maxArrayNesting = 8
    /// Alignment of the data section and of every tensor when `general.alignment` is absent.
    public static let defaultAlignment = 32

    public let path: String
    public let version: Int
    public let metadata: [String: GGUFValue]
    /// Tensor infos by name.
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in the order the file lists them.
    public let tensorNames: [String]
    /// Alignment of the data section and of each tensor's offset within it.
    public let alignment: Int
    /// Byte offset of the data section in the file; tensor offsets count from here.
    public let dataStart: Int
    private let map: MappedFile

    public init(path: String) throws {
        self.path = path
        map = try MappedFile(path: path)
        var r = GGUFReader(bytes: map.bytes, path: path)
        let magic = try r.take(4, "the magic \"GGUF\"")
        guard Array(magic) == Array("GGUF".utf8) else {
            let hex = magic.map { ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }.joined(separator: " ")
            throw r.invalid("starts with the bytes \(hex), not \"GGUF\": it is not a GGUF model file")
        }
        let rawVersion = try r.u32("the version")
        guard rawVersion & 0xFFFF != 0 else {
            throw r.invalid(
                "its version field reads \(rawVersion): the file is big-endian; Quern reads little-endian GGUF files")
        }
        guard rawVersion == 2 || rawVersion == 3 else {
            throw r.invalid(
                "is GGUF version \(rawVersion); Quern reads versions 2 and 3"
                    + (rawVersion == 1 ? " (convert the model again with a current llama.cpp)" : ""))
        }
        version = Int(rawVersion)
        let tensorCount = try r.count(
            "the tensor count", each: GGUFReader.minTensorInfoBytes, of: "tensor infos")
        let keyCount = try r.count("the metadata count", each: GGUFReader.minKeyValueBytes, of: "metadata entries")

        // Capacity grows with what is read, not with what a header claims.
        var metadata: [String: GGUFValue] = [:]
        metadata.reserveCapacity(min(keyCount, GGUFReader.reserveLimit))
        for i in 0..<keyCount {
            let key = try r.string("the key of metadata entry \(i)")
            guard metadata[key] == nil else {
                throw r.invalid("has the metadata key \"\(key)\" twice; a GGUF's keys are unique")
            }
            metadata[key] = try r.value(key: key)
        }
        self.metadata = metadata

        var alignment = Self.defaultAlignment
        if let a = metadata["general.alignment"] {
            guard case .uint32(let v) = a, v != 0, v & (v - 1) == 0 else {
                throw r.invalid(
                    "has general.alignment \(a); it must be a uint32 power of two (the data's alignment in bytes)")
            }
            alignment = Int(v)
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(min(tensorCount, GGUFReader.reserveLimit))
        var names: Set<String> = []
        for i in 0..<tensorCount {
            let info = try r.tensorInfo(i)
            guard names.insert(info.name).inserted else {
                throw r.invalid("has the tensor \"\(info.name)\" twice; a GGUF's tensor names are unique")
            }
            infos.append(info)
        }

        // The data section starts at the next multiple of the alignment.
        let (padded, overflow) = r.offset.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw r.invalid("its data section cannot start inside the file") }
        dataStart = padded / alignment * alignment
        let dataBytes = map.bytes.count - min(dataStart, map.bytes.count)
        for t in infos {
            guard t.offset % alignment == 0 else {
                throw r.invalid(
                    "tensor \"\(t.name)\" starts at data offset \(t.offset), not a multiple of the alignment "
                        + "\(alignment); every GGUF tensor starts aligned")
            }
            guard dataStart <= map.bytes.count, t.offset <= dataBytes, t.byteCount <= dataBytes - t.offset else {
                throw r.invalid(
                    "tensor \"\(t.name)\" (\(t.byteCount) bytes of \(t.type.name) at data offset \(t.offset)) runs past "
                        + "the end of the file, whose data section holds \(dataBytes) bytes: the file is truncated "
                        + "or its tensor infos are wrong")
            }
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw r.invalid("tensors \"\(a.name)\" and \"\(b.name)\" overlap; every GGUF tensor has bytes of its own")
        }
        tensorNames = infos.map(\.name)
        tensors = Dictionary(uniqueKeysWithValues: infos.map { ($0.name, $0) })
    }

    /// The raw bytes of a tensor of this file, valid while this `GGUFFile` (or a copy of it)
    /// is alive.
    public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        precondition(tensors[tensor.name] == tensor, "tensor \(tensor.name) is not one of \(path)'s")
        let start = dataStart + tensor.offset
        return UnsafeRawBufferPointer(rebasing: map.bytes[start..<(start + tensor.byteCount)])
    }

    /// A tensor dequantized to fp32, row-major in Quern's order (`GGUFTensorInfo.shape`),
    /// checking its shape if given.
    public func float32(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
        guard let t = tensors[name] else {
            throw QuernError(.modelMismatch, "\(Path.basename(path)) has no tensor \"\(name)\"", field: "model")
        }
        if let expected, expected != t.shape {
            throw QuernError(
                .modelMismatch,
                "tensor \"\(name)\" has shape \(t.shape) (GGUF dims \(t.dims)); the model's metadata implies \(expected)",
                field: "model")
        }
        return QuantBlocks.dequantize(type: t.type, bytes: bytes(of: t), count: t.elementCount)
    }

    // MARK: Typed metadata

    /// A metadata value, or an error naming the key. The typed getters below also throw
    /// when the value has another type, and return `default` (when given) for an absent key.
    public func value(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw metadataError("has no metadata \"\(key)\"") }
        return v
    }

    public func string(_ key: String, default fallback: String? = nil) throws -> String {
        if metadata[key] == nil, let fallback { return fallback }
        guard case .string(let s) = try value(key) else { throw typeError(key, "a string") }
        return s
    }

    /// An integer of any GGUF integer type.
    public func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        if metadata[key] == nil, let fallback { return fallback }
        guard let i = try value(key).intValue else { throw typeError(key, "an integer") }
        return i
    }

    /// A number of any GGUF numeric type (float32 converts exactly).
    public func double(_ key: String, default fallback: Double? = nil) throws -> Double {
        if metadata[key] == nil, let fallback { return fallback }
        guard let d = try value(key).doubleValue else { throw typeError(key, "a number") }
        return d
    }

    public func bool(_ key: String, default fallback: Bool? = nil) throws -> Bool {
        if metadata[key] == nil, let fallback { return fallback }
        guard case .bool(let b) = try value(key) else { throw typeError(key, "a bool") }
        return b
    }

    public func array(_ key: String) throws -> GGUFArray {
        guard case .array(let a) = try value(key) else { throw typeError(key, "an array") }
        return a
    }

    public func strings(_ key: String) throws -> [String] {
        guard case .string(let s) = try array(key) else { throw typeError(key, "an array of strings") }
        return s
    }

    /// An array of any GGUF integer type.
    public func ints(_ key: String) throws -> [Int] {
        guard let i = try array(key).intValues else { throw typeError(key, "an array of integers") }
        return i
    }

    /// An array of float32 (or float64, rounded to float32).
    public func floats(_ key: String) throws -> [Float] {
        switch try array(key) {
        case .float32(let f): return f
        case .float64(let d): return d.map(Float.init)
        default: throw typeError(key, "an array of floats")
        }
    }

    private func metadataError(_ what: String) -> QuernError {
        QuernError(.modelInvalid, "\(path): \(what)", field: "model")
    }

    private func typeError(_ key: String, _ wanted: String) -> QuernError {
        metadataError("metadata \"\(key)\" is \(metadata[key].map { "\($0)" } ?? "absent"), where \(wanted) is needed")
    }

    // MARK: Rotary permutation

    /// Undoes llama.cpp's reordering of the query and key projection rows, giving back
    /// Hugging Face's order. `values` is the weight `[rows, cols]` in Quern's row-major
    /// shape (`attn_q.weight`: rows = heads·headDim, `attn_k.weight`: rows =
    /// kvHeads·headDim, with `heads` the key/value head count for it).
    ///
    /// Why: Hugging Face's Llama applies rotary embeddings to the two halves of each head
    /// (`rotate_half`: dimension `i` pairs with `i + headDim/2`); ggml's rope pairs adjacent
    /// dimensions `2i` and `2i + 1`. llama.cpp's `convert_hf_to_gguf.py` (`LlamaModel.permute`)
    /// therefore reshapes each head's rows as `[2, headDim/2]` and swaps the two axes:
    /// GGUF row `h·headDim + 2i + j` holds HF row `h·headDim + j·headDim/2 + i`
    /// (`i < headDim/2`, `j < 2`). transformers' GGUF loader reverses it
    /// (`reverse_permute_weights`: reshape `[heads, headDim/2, 2]`, swap axes 1 and 2), and so
    /// does this: HF row `h·headDim + j·headDim/2 + i` ← GGUF row `h·headDim + 2i + j`.
    public static func unpermuteRotary(_ values: [Float], rows: Int, cols: Int, heads: Int) throws -> [Float] {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0, values.count == rows * cols else {
            throw QuernError(
                .modelInvalid,
                "a rotary projection of [\(rows), \(cols)] (\(values.count) values) does not split into \(heads) "
                    + "heads of an even size", field: "model")
        }
        let headDim = rows / heads, half = headDim / 2
        var out = [Float](repeating: 0, count: values.count)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half {
                    let hf = h * headDim + j * half + i, gguf = h * headDim + 2 * i + j
                    out[(hf * cols)..<((hf + 1) * cols)] = values[(gguf * cols)..<((gguf + 1) * cols)]
                }
            }
        }
        return out
    }
}

/// One tensor's entry in a GGUF header.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// Dimensions as the file lists them, fastest-varying first (ggml's `ne`: `dims[0]` is
    /// the row length).
    public let dims: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the data section (`GGUFFile.dataStart`).
    public let offset: Int
    public let byteCount: Int
    public let elementCount: Int

    /// Quern's row-major shape: `dims` reversed (`[rows, cols]` for a matrix).
    public var shape: [Int] { dims.reversed() }
}

/// A metadata value, typed as the file types it.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)

    /// The value as an Int when it is an integer that fits.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// The value as a Double when it is a number.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: intValue.map(Double.init)
        }
    }

    public var description: String {
        switch self {
        case .string(let s): "the string \"\(s.count > 40 ? String(s.prefix(40)) + "..." : s)\""
        case .bool(let b): "the bool \(b)"
        case .float32(let v): "the float32 \(v)"
        case .float64(let v): "the float64 \(v)"
        case .array(let a): "an array of \(a.count) \(a.elementType)"
        case .uint8(let v): "the uint8 \(v)"
        case .int8(let v): "the int8 \(v)"
        case .uint16(let v): "the uint16 \(v)"
        case .int16(let v): "the int16 \(v)"
        case .uint32(let v): "the uint32 \(v)"
        case .int32(let v): "the int32 \(v)"
        case .uint64(let v): "the uint64 \(v)"
        case .int64(let v): "the int64 \(v)"
        }
    }
}

/// A metadata array: elements of one type, stored unboxed (a byte array stays a byte
/// array). The elements of a nested array are arrays, each with its own type.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8])
    case int8([Int8])
    case uint16([UInt16])
    case int16([Int16])
    case uint32([UInt32])
    case int32([Int32])
    case uint64([UInt64])
    case int64([Int64])
    case float32([Float])
    case float64([Double])
    case bool([Bool])
    case string([String])
    case array([GGUFArray])

    public var count: Int {
        switch self {
        case .uint8(let a): a.count
        case .int8(let a): a.count
        case .uint16(let a): a.count
        case .int16(let a): a.count
        case .uint32(let a): a.count
        case .int32(let a): a.count
        case .uint64(let a): a.count
        case .int64(let a): a.count
        case .float32(let a): a.count
        case .float64(let a): a.count
        case .bool(let a): a.count
        case .string(let a): a.count
        case .array(let a): a.count
        }
    }

    /// GGUF's name for the element type ("uint32", "string", "array").
    public var elementType: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float32: "float32"
        case .float64: "float64"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        }
    }

    /// The elements as Ints when they are integers that all fit.
    public var intValues: [Int]? {
        func all<T: BinaryInteger>(_ a: [T]) -> [Int]? {
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let i = Int(exactly: v) else { return nil }
                out.append(i)
            }
            return out
        }
        return switch self {
        case .uint8(let a): all(a)
        case .int8(let a): all(a)
        case .uint16(let a): all(a)
        case .int16(let a): all(a)
        case .uint32(let a): all(a)
        case .int32(let a): all(a)
        case .uint64(let a): all(a)
        case .int64(let a): all(a)
        default: nil
        }
    }
}

/// The header parser: a cursor over the mapped bytes whose every read is bounded by what
/// is left in the file.
private struct GGUFReader {
    /// The smallest tensor info: an empty name (8), the dimension count (4), one
    /// dimension (8), the type (4), the offset (8).
    static let minTensorInfoBytes = 32
    /// The smallest metadata entry: an empty key (8), the value type (4), a 1-byte value.
    static let minKeyValueBytes = 13
    /// Most elements reserved ahead for a count read from the file; beyond it, storage
    /// grows only as elements are actually read.
    static let reserveLimit = 1 << 16

    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - offset }

    func invalid(_ what: String) -> QuernError {
        QuernError(.modelInvalid, "\(path): \(what)", field: "model")
    }

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard n <= remaining else {
            throw invalid(
                "ends at byte \(bytes.count), inside \(what()) (byte \(offset), \(n) bytes): the file is truncated, "
                    + "or a count or length before it is wrong")
        }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 {
        UInt32(littleEndian: try take(4, what()).loadUnaligned(as: UInt32.self))
    }

    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 {
        UInt64(littleEndian: try take(8, what()).loadUnaligned(as: UInt64.self))
    }

    /// A u64 count of items that take at least `each` bytes, refused when the rest of the
    /// file could not hold them: the bound that keeps a hostile count from allocating.
    mutating func count(_ what: @autoclosure () -> String, each: Int, of items: @autoclosure () -> String) throws
        -> Int
    {
        let at = offset
        let n = try u64(what())
        guard n <= UInt64(remaining / max(each, 1)) else {
            throw invalid(
                "\(what()) at byte \(at) is \(n), more \(items()) than the \(remaining) bytes after it can hold "
                    + "(each takes at least \(each)): the count is wrong, or the file is truncated")
        }
        return Int(n)
    }

    /// A length-prefixed UTF-8 string.
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let n = try count("the length of \(what())", each: 1, of: "bytes")
        let at = offset
        let raw = try take(n, what())
        guard n == 0 || UTF8Check.isValid(raw.assumingMemoryBound(to: UInt8.self).baseAddress!, n) else {
            throw invalid("\(what()) at byte \(at) is not UTF-8; GGUF strings are UTF-8")
        }
        return String(decoding: raw, as: UTF8.self)
    }

    /// The value of metadata `key`: its u32 type, then the value.
    mutating func value(key: String) throws -> GGUFValue {
        let type = try u32("the value type of \"\(key)\"")
        return try value(type: type, key: key)
    }

    mutating func value(type: UInt32, key: String) throws -> GGUFValue {
        let what = "the value of \"\(key)\""
        switch type {
        case 0: return .uint8(try take(1, what)[0])
        case 1: return .int8(Int8(bitPattern: try take(1, what)[0]))
        case 2: return .uint16(UInt16(littleEndian: try take(2, what).loadUnaligned(as: UInt16.self)))
        case 3: return .int16(Int16(littleEndian: try take(2, what).loadUnaligned(as: Int16.self)))
        case 4: return .uint32(try u32(what))
        case 5: return .int32(Int32(bitPattern: try u32(what)))
        case 6: return .float32(Float(bitPattern: try u32(what)))
        case 7: return .bool(try bool(key))
        case 8: return .string(try string(what))
        case 9: return .array(try array(key: key, depth: 1))
        case 10: return .uint64(try u64(what))
        case 11: return .int64(Int64(bitPattern: try u64(what)))
        case 12: return .float64(Double(bitPattern: try u64(what)))
        default:
            throw invalid("metadata \"\(key)\" has value type \(type); GGUF value types are 0 to 12")
        }
    }

    mutating func bool(_ key: String) throws -> Bool {
        let b = try take(1, "a bool of \"\(key)\"")[0]
        guard b <= 1 else { throw invalid("metadata \"\(key)\" has a bool byte \(b); a GGUF bool is 0 or 1") }
        return b == 1
    }

    /// An array: u32 element type, u64 count (bounded by the bytes left), elements.
    mutating func array(key: String, depth: Int) throws -> GGUFArray {
        guard depth <= GGUFFile.maxArrayNesting else {
            throw invalid("metadata \"\(key)\" nests arrays more than \(GGUFFile.maxArrayNesting) deep")
        }
        let type = try u32("the element type of the array \"\(key)\"")
        // The smallest encoding of one element of each type (a string's length, an
        // array's type and count).
        let sizes: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8]
        guard let size = sizes[type] else {
            throw invalid("the array \"\(key)\" has element type \(type); GGUF value types are 0 to 12")
        }
        let n = try count("the length of the array \"\(key)\"", each: size, of: "elements")
        let what = "the array \"\(key)\""
        func fixed<T>(_ make: (UnsafeRawBufferPointer, Int) -> T) throws -> [T] {
            let raw = try take(n * size, what)
            return (0..<n).map { make(raw, $0 * size) }
        }
        switch type {
        case 0: return .uint8(Array(try take(n, what)))
        case 1: return .int8(try fixed { b, at in Int8(bitPattern: b[at]) })
        case 2:
            return .uint16(
                try fixed { b, at in UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt16.self)) })
        case 3:
            return .int16(
                try fixed { b, at in Int16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: Int16.self)) })
        case 4:
            return .uint32(
                try fixed { b, at in UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self)) })
        case 5:
            return .int32(
                try fixed { b, at in Int32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: Int32.self)) })
        case 6:
            return .float32(
                try fixed { b, at in
                    Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                })
        case 7:
            var out: [Bool] = []
            out.reserveCapacity(min(n, Self.reserveLimit))
            for _ in 0..<n { out.append(try bool(key)) }
            return .bool(out)
        case 8:
            var out: [String] = []
            out.reserveCapacity(min(n, Self.reserveLimit))
            for i in 0..<n { out.append(try string("element \(i) of the array \"\(key)\"")) }
            return .string(out)
        case 9:
            var out: [GGUFArray] = []
            out.reserveCapacity(min(n, Self.reserveLimit))
            for _ in 0..<n { out.append(try array(key: key, depth: depth + 1)) }
            return .array(out)
        case 10:
            return .uint64(
                try fixed { b, at in UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self)) })
        case 11:
            return .int64(
                try fixed { b, at in Int64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: Int64.self)) })
        default:
            return .float64(
                try fixed { b, at in
                    Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
                })
        }
    }

    /// Tensor info `i`: name, dimensions, type, offset, with the size checks that need
    /// nothing but the info itself.
    mutating func tensorInfo(_ i: Int) throws -> GGUFTensorInfo {
        let name = try string("the name of tensor \(i)")
        let rank = try u32("the dimension count of tensor \"\(name)\"")
        guard rank >= 1, rank <= GGUFFile.maxDimensions else {
            throw invalid(
                "tensor \"\(name)\" has \(rank) dimensions; a GGUF tensor has 1 to \(GGUFFile.maxDimensions)")
        }
        var dims: [Int] = []
        for _ in 0..<rank {
            let d = try u64("the dimensions of tensor \"\(name)\"")
            guard d >= 1, d <= UInt64(GGUFFile.maxDimension) else {
                throw invalid(
                    "tensor \"\(name)\" has a dimension of \(d); each must be 1 to \(GGUFFile.maxDimension)")
            }
            dims.append(Int(d))
        }
        let rawType = try u32("the type of tensor \"\(name)\"")
        guard let type = GGMLType(rawValue: rawType) else {
            let known = GGMLType.allCases.map(\.name).joined(separator: ", ")
            let what =
                GGMLType.ggmlName(rawType).map { "\(rawType) (\($0)), which Quern does not read" }
                ?? "\(rawType), which is not a ggml type"
            throw invalid("tensor \"\(name)\" has ggml type \(what); Quern reads \(known)")
        }
        let rawOffset = try u64("the offset of tensor \"\(name)\"")
        var elements = 1
        for d in dims {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw invalid("tensor \"\(name)\" with dims \(dims) has too many elements") }
            elements = p
        }
        guard dims[0] % type.blockWeights == 0 else {
            throw invalid(
                "tensor \"\(name)\" of type \(type.name) has rows of \(dims[0]) weights, not a whole number of its "
                    + "\(type.blockWeights)-weight blocks")
        }
        guard let byteCount = type.byteCount(weights: elements), rawOffset <= UInt64(Int.max) else {
            throw invalid("tensor \"\(name)\" with dims \(dims) of \(type.name) is larger than any file")
        }
        return GGUFTensorInfo(
            name: name, dims: dims, type: type, offset: Int(rawOffset), byteCount: byteCount, elementCount: elements)
    }
}
