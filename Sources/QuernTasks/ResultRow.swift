import QuernCore
import QuernKernels

/// One output line before encoding: the record id plus the task's fields, in order.
/// Tasks make rows; the spool's writers encode them (JSON Lines, CSV, NPY).
public struct ResultRow: Sendable {
    public enum Value: Sendable {
        case string(String)
        case int(Int)
        case float(Float)
        case floats([Float])
        case strings([String])
        case bool(Bool)
        /// Structured output (OpenAI response bodies, logprobs): compact JSON in JSONL,
        /// the same text in a CSV cell.
        case json(JSONValue)
    }

    public var id: String
    public var fields: [(String, Value)]
    /// More rows the same record gives (embed's row per chunk), written after this one.
    public var following: [ResultRow] = []

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
            case .json(let v): w.value(v)
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

    /// JSONL lines of a window's rows, formatted on all threads: an embed window is
    /// hundreds of thousands of floats, and formatting them on the writing thread alone
    /// would leave the other cores idle between windows. Nil for CSV (its header is
    /// state) and NPY (the vectors go to their own file first), which format in order.
    public static func jsonLinesInParallel(
        _ outcomes: [Result<ResultRow, QuernError>], _ encoder: RowEncoder,
        pool: ThreadPool = .shared
    ) -> [[UInt8]]? {
        guard encoder.format == .jsonl, pool.threads > 1, outcomes.count >= 64 else { return nil }
        var lines = [[UInt8]](repeating: [], count: outcomes.count)
        let chunk = (outcomes.count + pool.threads * 4 - 1) / (pool.threads * 4)
        lines.withUnsafeMutableBufferPointer { out in
            pool.parallelFor((outcomes.count + chunk - 1) / chunk) { c in
                for i in (c * chunk)..<min(outcomes.count, (c + 1) * chunk) {
                    if case .success(let row) = outcomes[i] {
                        out[i] = RowEncoder.jsonLine(row) + row.following.flatMap { RowEncoder.jsonLine($0) }
                    }
                }
            }
        }
        return lines
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
            case .json(let v): cells.append(String(decoding: JSONWriter.compact(v), as: UTF8.self)); names.append(name)
            case .floats(let v):
                for (i, f) in v.enumerated() {
                    cells.append(f.isFinite ? f.description : ""); names.append("\(name)_\(i)")
                }
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
