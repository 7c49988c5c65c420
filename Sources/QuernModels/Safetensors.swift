import QuernCore
import QuernKernels

/// A `.safetensors` file, memory-mapped. The header is checked completely on open
/// (dtypes known, shapes matching byte ranges, ranges inside the file and not
/// overlapping), so a truncated or hand-edited file fails at load, naming the tensor.
public final class SafetensorsFile {
    public struct Entry: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        public let range: Range<Int>
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let map: MappedFile
    private let dataStart: Int

    static let itemSizes: [String: Int] = [
        "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1,
        "I16": 2, "I32": 4, "I64": 8, "BOOL": 1
    ]

    public init(path: String) throws {
        self.path = path
        func bad(_ why: String) -> QuernError {
            QuernError(.modelInvalid, "\(path) is not a valid safetensors file: \(why)")
        }
        map = try MappedFile(path: path)
        let b = map.bytes
        guard b.count >= 8 else { throw bad("shorter than its 8-byte header length") }
        let rawLength = b.loadUnaligned(as: UInt64.self).littleEndian
        guard rawLength <= 100 << 20, 8 + Int(rawLength) <= b.count else {
            throw bad("header length \(rawLength) runs past the end of the file")
        }
        let headerLength = Int(rawLength)
        dataStart = 8 + headerLength
        let header: JSONValue
        do {
            header = try JSONParser.parse(Array(b[8..<dataStart]))
        } catch {
            throw bad("header is not JSON (\(error))")
        }
        guard let obj = header.objectValue else { throw bad("header is not a JSON object") }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let dataSize = b.count - dataStart
        for (name, value) in obj.pairs {
            if name == "__metadata__" {
                for (k, v) in value.objectValue?.pairs ?? [] { metadata[k] = v.stringValue ?? "" }
                continue
            }
            /// Every element an integer >= 0, or nil.
            func naturals(_ v: JSONValue?) -> [Int]? {
                guard let a = v?.arrayValue else { return nil }
                let ints = a.compactMap { $0.intValue }.filter { $0 >= 0 }.map(Int.init)
                return ints.count == a.count ? ints : nil
            }
            guard let o = value.objectValue, let dtype = o["dtype"]?.stringValue,
                let shape = naturals(o["shape"]), let offs = naturals(o["data_offsets"]), offs.count == 2
            else {
                throw bad("entry \"\(name)\" lacks dtype, shape (non-negative integers) or data_offsets")
            }
            guard let item = Self.itemSizes[dtype] else { throw bad("tensor \"\(name)\" has unknown dtype \(dtype)") }
            guard offs[0] <= offs[1], offs[1] <= dataSize else {
                throw bad("tensor \"\(name)\" bytes \(offs) lie outside the data (\(dataSize) bytes)")
            }
            var bytes = item
            for d in shape {
                let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("tensor \"\(name)\" shape \(shape) is too large") }
                bytes = p
            }
            guard bytes == offs[1] - offs[0] else {
                throw bad("tensor \"\(name)\" has shape \(shape) of \(dtype) but \(offs[1] - offs[0]) bytes")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, range: offs[0]..<offs[1])
        }
        // Empty tensors occupy no bytes and cannot overlap anything.
        let sorted = entries.values.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.range.upperBound > b.range.lowerBound {
            throw bad("tensors \"\(a.name)\" and \"\(b.name)\" overlap")
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// Reads a tensor as fp32 (converting F16/BF16/F64), checking its shape if given.
    public func float32(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        guard let e = entries[name] else {
            throw QuernError(.modelMismatch, "\(Path.basename(path)) has no tensor \"\(name)\"")
        }
        if let expected, expected != e.shape {
            throw QuernError(.modelMismatch, "tensor \"\(name)\" has shape \(e.shape); the config implies \(expected)")
        }
        let raw = UnsafeRawBufferPointer(
            rebasing: map.bytes[(dataStart + e.range.lowerBound)..<(dataStart + e.range.upperBound)])
        let n = e.shape.reduce(1, *)
        let values: [Float]
        switch e.dtype {
        case "F32":
            values = (0..<n).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        case "F64": values = (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
        case "F16":
            values = (0..<n).map {
                Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))
            }
        case "BF16":
            values = (0..<n).map {
                Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16)
            }
        default:
            throw QuernError(.modelMismatch, "tensor \"\(name)\" is \(e.dtype); a floating-point tensor is needed here")
        }
        return Tensor(shape: e.shape, data: values)
    }

    /// Reads an I8 tensor (quantized weights), checking its shape if given.
    public func int8(_ name: String, shape expected: [Int]? = nil) throws -> (shape: [Int], values: [Int8]) {
        guard let e = entries[name] else {
            throw QuernError(.modelMismatch, "\(Path.basename(path)) has no tensor \"\(name)\"")
        }
        if let expected, expected != e.shape {
            throw QuernError(.modelMismatch, "tensor \"\(name)\" has shape \(e.shape); the config implies \(expected)")
        }
        guard e.dtype == "I8" else {
            throw QuernError(.modelMismatch, "tensor \"\(name)\" is \(e.dtype); a quantized model stores I8 weights")
        }
        let raw = UnsafeRawBufferPointer(
            rebasing: map.bytes[(dataStart + e.range.lowerBound)..<(dataStart + e.range.upperBound)])
        return (e.shape, raw.map { Int8(bitPattern: $0) })
    }
}

/// A tensor to write: fp32 values, or int8 ones (quantized weights).
public enum TensorData: Sendable {
    case f32([Float])
    case i8([Int8])
}

public enum Safetensors {
    /// Serialises fp32 tensors (name → shape, values) in the safetensors layout: 8-byte
    /// little-endian header length, JSON header padded to 8 bytes, data in name order.
    public static func encode(_ tensors: [String: ([Int], [Float])], metadata: [String: String] = [:]) -> [UInt8] {
        encode(typed: tensors.mapValues { ($0.0, TensorData.f32($0.1)) }, metadata: metadata)
    }

    /// Serialises fp32 and int8 tensors.
    public static func encode(typed tensors: [String: ([Int], TensorData)], metadata: [String: String] = [:]) -> [UInt8]
    {
        var header = JSONObject()
        var meta = JSONObject()
        meta["format"] = "pt"
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) { meta[k] = .string(v) }
        header["__metadata__"] = .object(meta)
        var data: [UInt8] = []
        for name in tensors.keys.sorted() {
            let (shape, values) = tensors[name]!
            let start = data.count
            let dtype: String
            switch values {
            case .f32(let v):
                precondition(shape.reduce(1, *) == v.count, "\(name): shape \(shape) vs \(v.count) values")
                dtype = "F32"
                for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { data += $0 } }
            case .i8(let v):
                precondition(shape.reduce(1, *) == v.count, "\(name): shape \(shape) vs \(v.count) values")
                dtype = "I8"
                data += v.map { UInt8(bitPattern: $0) }
            }
            header[name] = [
                "dtype": .string(dtype), "shape": .array(shape.map { .int(Int64($0)) }),
                "data_offsets": [.int(Int64(start)), .int(Int64(data.count))]
            ]
        }
        var h = JSONWriter.compact(.object(header))
        while (8 + h.count) % 8 != 0 { h.append(0x20) }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
        return out + h + data
    }
}
