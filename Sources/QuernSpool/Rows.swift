import QuernCore
import QuernData
#if canImport(Glibc)
import Glibc
#endif

/// One output line before encoding: the record id plus the task's fields, in order.
public struct ResultRow: Sendable {
    public enum Value: Sendable {
        case string(String)
        case int(Int)
        case float(Float)
        case floats([Float])
        case strings([String])
        case bool(Bool)
    }

    public var id: String
    public var fields: [(String, Value)]

    public init(id: String, fields: [(String, Value)]) {
        self.id = id
        self.fields = fields
    }
}

/// Encodes rows as JSON Lines or CSV. For CSV the header comes from the first row
/// (vectors become `name_0 … name_n` columns) and is part of the checkpoint, so a
/// resumed job writes exactly the bytes an uninterrupted one would.
public struct RowEncoder: Sendable {
    public let format: Manifest.OutputFormat
    public private(set) var header: [String]?

    public init(format: Manifest.OutputFormat, header: [String]? = nil) {
        self.format = format
        self.header = header
    }

    public mutating func encode(_ row: ResultRow) -> [UInt8] {
        switch format {
        case .jsonl, .npy:
            return Self.jsonLine(row)
        case .csv:
            return csvRow(row)
        }
    }

    /// One JSONL line: `{"id": …, fields…}` and a newline.
    public static func jsonLine(_ row: ResultRow) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        w.key("id")
        w.string(row.id)
        for (name, value) in row.fields {
            w.raw(",")
            w.key(name)
            switch value {
            case .string(let s): w.string(s)
            case .int(let i): w.int(i)
            case .float(let f): w.float(f)
            case .bool(let b): if b { w.raw("true") } else { w.raw("false") }
            case .floats(let v):
                w.raw("[")
                for (i, f) in v.enumerated() {
                    if i > 0 { w.raw(",") }
                    w.float(f)
                }
                w.raw("]")
            case .strings(let v):
                w.raw("[")
                for (i, t) in v.enumerated() {
                    if i > 0 { w.raw(",") }
                    w.string(t)
                }
                w.raw("]")
            }
        }
        w.raw("}\n")
        return w.bytes
    }

    /// One CSV row (after the header line, the first time).
    mutating func csvRow(_ row: ResultRow) -> [UInt8] {
        var cells: [String] = [row.id]
        var names: [String] = ["id"]
        for (name, value) in row.fields {
            switch value {
            case .string(let s): cells.append(s); names.append(name)
            case .int(let i): cells.append(String(i)); names.append(name)
            case .float(let f): cells.append(f.isFinite ? f.description : ""); names.append(name)
            case .bool(let b): cells.append(b ? "true" : "false"); names.append(name)
            case .floats(let v):
                for (i, f) in v.enumerated() { cells.append(f.isFinite ? f.description : ""); names.append("\(name)_\(i)") }
            case .strings(let v):
                for (i, t) in v.enumerated() { cells.append(t); names.append("\(name)_\(i)") }
            }
        }
        var out: [UInt8] = []
        if header == nil {
            header = names
            out += Self.csvLine(names)
        }
        return out + Self.csvLine(cells)
    }

    /// RFC 4180: quote a cell holding a comma, quote, CR or LF; double inner quotes.
    static func csvLine(_ cells: [String]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, c) in cells.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            if c.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) {
                out.append(0x22)
                for b in c.utf8 { if b == 0x22 { out.append(0x22) }; out.append(b) }
                out.append(0x22)
            } else {
                out += Array(c.utf8)
            }
        }
        out.append(0x0A)
        return out
    }
}

/// `output.format: npy` (embed): the vectors go to `results.npy.gz` and each result
/// line keeps the record's id, its `row` in that array and, for int8, its `scale`
/// (vector ≈ int8 row × scale). While the job runs the vectors are a gzip of raw rows
/// (resumable like the other outputs); at the end one gzip member holding the NPY
/// header, which needs the row count, goes in front of it: a multi-member gzip, which
/// gzip, zlib and Python's gzip module read as one stream.
final class VectorOutput {
    static let name = "results.npy.gz"
    let dtype: Manifest.VectorType
    let data: ChunkedGzipWriter
    private(set) var dimension: Int?

    init(path: String, level: Int, dtype: Manifest.VectorType, resume: (GzipPosition, [UInt8])?, dimension: Int?) throws {
        self.dtype = dtype
        self.dimension = dimension
        data = try ChunkedGzipWriter(path: path, level: level, resume: resume)
    }

    /// Appends one vector; the result line's fields that locate it.
    func append(_ v: [Float], row: Int) throws -> [(String, ResultRow.Value)] {
        if dimension == nil { dimension = v.count }
        guard v.count == dimension else {
            throw QuernError(.internalError, "vector of \(v.count) values in an array of \(dimension!)")
        }
        switch dtype {
        case .float32:
            try v.withUnsafeBytes { try data.append(Array($0)) }
            return [("row", .int(row))]
        case .int8:
            // Symmetric, one scale per row: the largest magnitude maps to ±127.
            let peak = v.reduce(0) { max($0, abs($1)) }
            let scale = peak > 0 ? peak / 127 : 1
            try data.append(v.map { UInt8(bitPattern: Int8(max(-127, min(127, ($0 / scale).rounded())))) })
            return [("row", .int(row)), ("scale", .float(scale))]
        }
    }

    /// Finishes the data and writes `final`: header member, then the data member.
    func publish(rows: Int, to final: String, level: Int) throws {
        try data.finish()
        try Self.assemble(final + ".partial", descr: dtype == .float32 ? "<f4" : "|i1", shape: [rows, dimension ?? 0],
                          level: level, parts: [(data.path, 0)])
        try Sys.unlink(data.path)
        try Sys.rename(final + ".partial", final)
    }

    /// Writes `path`: one gzip member holding the NPY header for `shape`, then the gzip
    /// data of each part (a file, and the offset its data starts at) as it is. A job's
    /// vectors have one part; a merged cluster job's, one per shard.
    static func assemble(_ path: String, descr: String, shape: [Int], level: Int, parts: [(String, Int)]) throws {
        let headerPath = path + ".header"
        let h = try ChunkedGzipWriter(path: headerPath, level: level)
        try h.append(NPYHeader.encode(descr: descr, shape: shape))
        try h.finish()
        let out = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        defer { Sys.close(out) }
        try Sys.appendFile(headerPath, to: out, path: path)
        try Sys.unlink(headerPath)
        for (file, offset) in parts { try Sys.appendFile(file, from: offset, to: out, path: path) }
    }
}
