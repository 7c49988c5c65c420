import QuernCore

#if canImport(Glibc)
import Glibc
#endif

/// Decodes the records of one archive member. One subclass per record format.
class MemberDecoder {
    let spec: RecordSpec
    let member: String

    init(spec: RecordSpec, member: String) {
        self.spec = spec
        self.member = member
    }

    static func make(spec: RecordSpec, limits: StreamLimits, member: String, source: BlockSource) throws -> MemberDecoder {
        switch spec.format {
        case .jsonl: return JSONLDecoder(spec: spec, member: member, lines: LineSplitter(source: source, maxBytes: limits.maxLineBytes, quoteAware: false))
        case .txt: return TextDecoder(spec: spec, member: member, lines: LineSplitter(source: source, maxBytes: limits.maxLineBytes, quoteAware: false))
        case .csv: return CSVDecoder(spec: spec, member: member, lines: LineSplitter(source: source, maxBytes: limits.maxLineBytes, quoteAware: true))
        case .npy: return NPYDecoder(spec: spec, member: member, source: source, maxRowBytes: limits.maxLineBytes)
        case .idx: return IDXDecoder(spec: spec, member: member, source: source, maxRowBytes: limits.maxLineBytes)
        case .png: return PNGDecoder(spec: spec, member: member, source: source, maxBytes: limits.maxLineBytes)
        }
    }

    /// The next item, or nil when the member is exhausted.
    func next(index: Int) throws -> StreamItem? { nil }

    func failure(_ index: Int, _ line: Int?, _ code: QuernError.Code, _ message: String, id: String? = nil) -> StreamItem {
        .failure(RecordFailure(index: index, id: id, member: member, line: line,
                               error: QuernError(code, message, line: line, member: member)))
    }

    func fallbackID(_ line: Int) -> String { "\(member):\(line)" }

    static func isBlank(_ b: UnsafeRawBufferPointer) -> Bool {
        b.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}

/// Converts a JSON value to a record id: strings as they are, integers in decimal.
func idString(_ v: JSONValue) -> String? {
    switch v {
    case .string(let s): return s
    case .int(let i): return String(i)
    default: return nil
    }
}

/// A format whose records are lines (or, for CSV, quote-aware lines). Subclasses
/// decode one line; blank lines and over-long lines are handled here.
class LineDecoder: MemberDecoder {
    var lines: LineSplitter

    init(spec: RecordSpec, member: String, lines: LineSplitter) {
        self.lines = lines
        super.init(spec: spec, member: member)
    }

    /// Decodes one non-blank line; nil means "not a record" (a CSV header).
    func decode(line bytes: UnsafeRawBufferPointer, number: Int, index: Int) throws -> StreamItem? { nil }

    override func next(index: Int) throws -> StreamItem? {
        while true {
            let item: StreamItem?? = try lines.next { item -> StreamItem? in
                switch item {
                case .tooLong(let n):
                    return failure(index, n, .lineTooLong, "line is longer than limits.max_line_bytes; it is skipped")
                case .line(let bytes, let n):
                    if MemberDecoder.isBlank(bytes) { return nil }
                    return try decode(line: bytes, number: n, index: index)
                }
            }
            guard let item else { return nil }      // end of member
            if let item { return item }              // blank line or header: keep going
        }
    }
}

/// JSON Lines: one object per line; blank lines are skipped.
final class JSONLDecoder: LineDecoder {
    let wanted: [[UInt8]]
    let idSlot: Int?, textSlot: Int?, pairSlot: Int?, labelSlot: Int?, featuresSlot: Int?
    let columnSlots: Range<Int>

    override init(spec: RecordSpec, member: String, lines: LineSplitter) {
        var keys: [String] = []
        func slot(_ name: String?, _ wanted: Bool) -> Int? {
            guard wanted, let name else { return nil }
            keys.append(name)
            return keys.count - 1
        }
        idSlot = slot(spec.idField, true)
        textSlot = slot(spec.textField, spec.wantsText)
        pairSlot = slot(spec.pairField, spec.wantsText)
        labelSlot = slot(spec.labelField, spec.wantsLabel)
        let columns = spec.wantsFeatures ? (spec.featureColumns ?? []) : []
        featuresSlot = slot(columns.isEmpty ? (spec.featuresField ?? "features") : nil, spec.wantsFeatures)
        let first = keys.count
        keys += columns
        columnSlots = first..<keys.count
        wanted = keys.map { Array($0.utf8) }
        super.init(spec: spec, member: member, lines: lines)
    }

    override func decode(line bytes: UnsafeRawBufferPointer, number line: Int, index: Int) -> StreamItem? {
        let values: [JSONValue?]
        do {
            values = try JSONParser.fields(of: bytes, wanted: wanted)
        } catch let e as JSONSyntaxError {
            let code: QuernError.Code = e.message.contains("UTF-8") ? .invalidUTF8 : .invalidRecord
            return failure(index, line, code, "not valid JSON: \(e.message) at byte \(e.offset + 1)")
        } catch {
            return failure(index, line, .invalidRecord, "\(error)")
        }
        var id = fallbackID(line)
        if let s = idSlot {
            guard let v = values[s] else {
                return failure(index, line, .missingValue, "record has no \"\(spec.idField!)\" field (input.id_field)")
            }
            guard let str = idString(v) else {
                return failure(index, line, .invalidRecord, "\"\(spec.idField!)\" must be a string or an integer, not \(v.typeName)")
            }
            id = str
        }
        var record = Record(index: index, id: id, member: member, line: line)
        if let s = textSlot {
            guard let v = values[s]?.stringValue else {
                let what = values[s].map { "is \($0.typeName), not a string" } ?? "is missing"
                return failure(index, line, .missingValue, "text field \"\(spec.textField!)\" \(what)", id: id)
            }
            record.text = v
        }
        if let s = pairSlot {
            guard let v = values[s]?.stringValue else {
                let what = values[s].map { "is \($0.typeName), not a string" } ?? "is missing"
                return failure(index, line, .missingValue, "pair text field \"\(spec.pairField!)\" \(what)", id: id)
            }
            record.pair = v
        }
        if let s = labelSlot {
            guard let v = values[s], let label = idString(v) else {
                return failure(index, line, .missingValue, "label field \"\(spec.labelField!)\" is missing or not a string/integer", id: id)
            }
            record.label = label
        }
        if let s = featuresSlot {
            guard let arr = values[s]?.arrayValue else {
                return failure(index, line, .missingValue, "features field \"\(wantedName(s))\" is missing or not an array of numbers", id: id)
            }
            record.features.reserveCapacity(arr.count)
            for (i, v) in arr.enumerated() {
                guard let d = v.doubleValue else {
                    return failure(index, line, .invalidRecord, "feature \(i) of \"\(wantedName(s))\" is \(v.typeName), not a number", id: id)
                }
                let f = Float(d)
                if !f.isFinite { return failure(index, line, .nonFinite, "feature \(i) (\(d)) does not fit in a float32", id: id) }
                record.features.append(f)
            }
        }
        for s in columnSlots {
            guard let d = values[s]?.doubleValue else {
                return failure(index, line, .missingValue, "feature field \"\(wantedName(s))\" is missing or not a number", id: id)
            }
            let f = Float(d)
            if !f.isFinite { return failure(index, line, .nonFinite, "feature \"\(wantedName(s))\" (\(d)) does not fit in a float32", id: id) }
            record.features.append(f)
        }
        return .record(record)
    }

    func wantedName(_ slot: Int) -> String { String(decoding: wanted[slot], as: UTF8.self) }
}

/// Plain text: one record per non-blank line; the line is the text.
final class TextDecoder: LineDecoder {
    override func decode(line bytes: UnsafeRawBufferPointer, number n: Int, index: Int) -> StreamItem? {
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard UTF8Check.isValid(p, bytes.count) else {
            return failure(index, n, .invalidUTF8, "line is not valid UTF-8")
        }
        var r = Record(index: index, id: fallbackID(n), member: member, line: n)
        r.text = String(decoding: bytes, as: UTF8.self)
        return .record(r)
    }
}

/// CSV with a header row (RFC 4180: quoted fields may hold commas, quotes and newlines).
final class CSVDecoder: LineDecoder {
    var header: [String]?
    var idCol: Int?, textCol: Int?, pairCol: Int?, labelCol: Int?
    var featureCols: [Int] = []

    /// Splits one CSV record into fields; nil if its quoting is malformed.
    static func fields(_ b: UnsafeRawBufferPointer) -> [String]? {
        var out: [String] = []
        var i = 0
        let n = b.count
        while true {
            if i < n && b[i] == 0x22 {
                var field: [UInt8] = []
                i += 1
                while true {
                    guard i < n else { return nil }  // unterminated quote
                    if b[i] == 0x22 {
                        if i + 1 < n && b[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                        i += 1
                        break
                    }
                    field.append(b[i])
                    i += 1
                }
                guard i == n || b[i] == 0x2C else { return nil }  // text after closing quote
                out.append(String(decoding: field, as: UTF8.self))
            } else {
                var j = i
                while j < n && b[j] != 0x2C {
                    if b[j] == 0x22 { return nil }  // bare quote inside an unquoted field
                    j += 1
                }
                out.append(String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<j]), as: UTF8.self))
                i = j
            }
            if i >= n { return out }
            i += 1  // the comma
            if i == n { out.append(""); return out }
        }
    }

    func setHeader(_ names: [String]) throws {
        header = names
        func column(_ name: String?, _ field: String) throws -> Int? {
            guard let name else { return nil }
            guard let i = names.firstIndex(of: name) else {
                throw QuernError(.missingValue, "column \"\(name)\" is not in the header of \(member) (columns: \(names.prefix(8).joined(separator: ", "))\(names.count > 8 ? ", ..." : ""))", field: field, member: member)
            }
            return i
        }
        idCol = try column(spec.idField, "input.id_field")
        textCol = spec.wantsText ? try column(spec.textField, "input.text_field") : nil
        pairCol = spec.wantsText ? try column(spec.pairField, "input.pair_field") : nil
        labelCol = spec.wantsLabel ? try column(spec.labelField, "input.label_field") : nil
        if spec.wantsFeatures {
            if let cols = spec.featureColumns {
                featureCols = try cols.map { try column($0, "input.feature_columns")! }
            } else if let cols = spec.modelFeatureNames, Set(cols).isSubset(of: names) {
                featureCols = cols.map { names.firstIndex(of: $0)! }
            } else {
                let skip = Set([spec.idField, spec.labelField, spec.textField, spec.pairField].compactMap { $0 })
                featureCols = names.indices.filter { !skip.contains(names[$0]) }
            }
        }
    }

    override func decode(line bytes: UnsafeRawBufferPointer, number n: Int, index: Int) throws -> StreamItem? {
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard UTF8Check.isValid(p, bytes.count) else {
            if header == nil { throw QuernError(.invalidUTF8, "the CSV header of \(member) is not valid UTF-8", member: member) }
            return failure(index, n, .invalidUTF8, "CSV record is not valid UTF-8")
        }
        guard let fields = CSVDecoder.fields(bytes) else {
            if header == nil { throw QuernError(.invalidRecord, "the CSV header of \(member) has malformed quoting", line: n, member: member) }
            return failure(index, n, .invalidRecord, "malformed CSV quoting (RFC 4180: a quote inside a field is written \"\")")
        }
        if header == nil {
            try setHeader(fields)
            return nil
        }
        return decode(fields, line: n, index: index)
    }

    func decode(_ fields: [String], line: Int, index: Int) -> StreamItem {
        let header = header!
        var id = fallbackID(line)
        if let c = idCol, c < fields.count, !fields[c].isEmpty { id = fields[c] }
        guard fields.count == header.count else {
            return failure(index, line, .invalidRecord, "row has \(fields.count) fields; the header has \(header.count)", id: id)
        }
        if idCol != nil && fields[idCol!].isEmpty {
            return failure(index, line, .missingValue, "the id column \"\(spec.idField!)\" is empty")
        }
        var record = Record(index: index, id: id, member: member, line: line)
        if let c = textCol { record.text = fields[c] }
        if let c = pairCol { record.pair = fields[c] }
        if let c = labelCol {
            guard !fields[c].isEmpty else { return failure(index, line, .missingValue, "the label column \"\(header[c])\" is empty", id: id) }
            record.label = fields[c]
        }
        record.features.reserveCapacity(featureCols.count)
        for c in featureCols {
            let text = fields[c]
            guard let v = parseNumber(text) else {
                return failure(index, line, text.isEmpty ? .missingValue : .invalidRecord,
                               text.isEmpty ? "column \"\(header[c])\" is empty" : "column \"\(header[c])\" is not a number: \"\(text.prefix(40))\"", id: id)
            }
            guard v.isFinite else {
                return failure(index, line, .nonFinite, "column \"\(header[c])\" is \(text), not a finite number", id: id)
            }
            record.features.append(v)
        }
        return .record(record)
    }
}

/// Parses a decimal number the way `strtod` does, requiring the whole text (spaces
/// around it allowed) to be the number.
func parseNumber(_ text: String) -> Float? {
    let trimmed = text.trimmingSpaces
    if trimmed.isEmpty { return nil }
    return trimmed.withCString { p -> Float? in
        var end: UnsafeMutablePointer<CChar>?
        let v = strtod(p, &end)
        guard let end, end.pointee == 0, end != UnsafeMutablePointer(mutating: p) else { return nil }
        return Float(v)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// NumPy `.npy` (format 1.0–3.0, C order): each row of the first axis is one record of
/// `prod(shape[1:])` features; ids are `member:ROW`, rows counted from 0 as NumPy does.
/// The header of a NumPy .npy file (format 1.0): magic, version, and a dict literal
/// padded with spaces so the data starts on a 64-byte boundary.
public enum NPYHeader {
    /// `descr` is NumPy's type string: `<f4` (float32), `|i1` (int8).
    public static func encode(descr: String, shape: [Int]) -> [UInt8] {
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var dict = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }".utf8)
        let unpadded = 10 + dict.count + 1
        dict += [UInt8](repeating: 0x20, count: (64 - unpadded % 64) % 64)
        dict.append(0x0A)
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(dict.count & 0xFF), UInt8(dict.count >> 8)] + dict
    }

    /// `descr` and `shape` of a version 1.0 header at the start of `bytes` (as `encode`
    /// writes them); nil for anything else.
    public static func decode(_ bytes: [UInt8]) -> (descr: String, shape: [Int])? {
        guard bytes.count >= 10, bytes[0..<6].elementsEqual([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]), bytes[6] == 1 else { return nil }
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        guard bytes.count >= 10 + length else { return nil }
        let text = String(decoding: bytes[10..<(10 + length)], as: UTF8.self)
        guard let descr = NPYDecoder.value(of: "descr", in: text)?.trimmingCharacters(in: "'\" "),
              let shape = NPYDecoder.value(of: "shape", in: text) else { return nil }
        let dims = shape.filter { !"() ".contains($0) }.split(separator: ",").compactMap { Int($0) }
        return (descr, dims)
    }
}

final class NPYDecoder: MemberDecoder {
    let source: BlockSource
    let maxRowBytes: Int
    var buffer: [UInt8] = []
    var headerParsed = false
    var rows = 0, rowLength = 0, itemSize = 0
    var kind: Character = "f"
    var row = 0
    var dimensions = 0

    init(spec: RecordSpec, member: String, source: BlockSource, maxRowBytes: Int) {
        self.source = source
        self.maxRowBytes = maxRowBytes
        super.init(spec: spec, member: member)
    }

    /// Fills the buffer to at least `n` bytes; false at the end of the member.
    func fill(_ n: Int) throws -> Bool {
        while buffer.count < n {
            guard let b = try source.next() else { return false }
            buffer.append(contentsOf: b)
        }
        return true
    }

    func parseHeader() throws {
        func bad(_ why: String) -> QuernError {
            QuernError(.invalidRecord, "\(member) is not a usable .npy file: \(why)", member: member)
        }
        guard try fill(10), buffer[0..<6].elementsEqual([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else { throw bad("bad magic") }
        let major = buffer[6]
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(buffer[8]) | Int(buffer[9]) << 8
            start = 10
        } else if major == 2 || major == 3 {
            guard try fill(12) else { throw bad("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(buffer[8 + $1]) << (8 * $1) }
            start = 12
        } else { throw bad("unsupported format version \(major)") }
        guard headerLength < 1 << 20, try fill(start + headerLength) else { throw bad("truncated header") }
        let text = String(decoding: buffer[start..<(start + headerLength)], as: UTF8.self)
        buffer.removeFirst(start + headerLength)
        guard let descr = Self.value(of: "descr", in: text)?.trimmingCharacters(in: "'\" "),
              let order = Self.value(of: "fortran_order", in: text),
              let shapeText = Self.value(of: "shape", in: text) else { throw bad("header lacks descr/fortran_order/shape") }
        if order.contains("True") { throw bad("Fortran-ordered arrays are not supported; save with np.ascontiguousarray") }
        let sizes: [String: (Character, Int)] = ["<f4": ("f", 4), "<f8": ("f", 8), "|u1": ("u", 1), "|i1": ("i", 1),
                                                  "<i2": ("i", 2), "<i4": ("i", 4), "<i8": ("i", 8), "<u2": ("u", 2)]
        guard let (k, size) = sizes[descr] else { throw bad("dtype \(descr) is not supported (use float32, float64 or integers)") }
        kind = k
        itemSize = size
        let parts = shapeText.filter { !"() ".contains($0) }.split(separator: ",")
        var dims: [Int] = []
        for p in parts {
            guard let d = Int(p), d >= 0 else { throw bad("shape \(shapeText) is not a tuple of sizes") }
            dims.append(d)
        }
        guard let first = dims.first else { throw bad("a 0-d array has no records") }
        rows = first
        dimensions = dims.count
        var rowBytes = itemSize
        for d in dims.dropFirst() {
            let (p, overflow) = rowBytes.multipliedReportingOverflow(by: d)
            if overflow || p > maxRowBytes { throw bad("a row of shape \(Array(dims.dropFirst())) exceeds limits.max_line_bytes") }
            rowBytes = p
        }
        rowLength = rowBytes / itemSize
        headerParsed = true
    }

    /// The text after `'key':` in a NumPy header dict, up to the next top-level comma.
    static func value(of key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        var depth = 0
        var out = ""
        for c in header[r.upperBound...] {
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1; if depth < 0 { break } }
            if (c == "," && depth == 0) || c == "}" { break }
            out.append(c)
        }
        if depth == 0, out.contains("(") { out += ")" }
        return out.trimmingSpaces
    }

    var labels: [String]?
    var isLabelsMember = false

    override func next(index: Int) throws -> StreamItem? {
        if !headerParsed {
            try parseHeader()
            if spec.wantsLabel {
                if rowLength == 1 && spec.idxLabels[IDXDecoder.pairKey(member)] != nil && dimensions == 1 {
                    isLabelsMember = true  // a labels member: read in the first pass
                } else {
                    guard let l = spec.idxLabels[IDXDecoder.pairKey(member)] else {
                        throw QuernError(.missingValue, "\(member) has no labels member (a 1-D array such as y_\(Path.basename(member).replacingOccurrences(of: "x_", with: "")) next to it)", member: member)
                    }
                    guard l.count == rows else {
                        throw QuernError(.invalidRecord, "\(member) has \(rows) rows but its labels member has \(l.count) labels", member: member)
                    }
                    labels = l
                }
            }
        }
        if isLabelsMember { return nil }
        guard row < rows else { return nil }
        let bytes = rowLength * itemSize
        guard try fill(bytes) else {
            throw QuernError(.archiveCorrupt, "\(member) is truncated: \(rows) rows promised, \(row) present", member: member)
        }
        var record = Record(index: index, id: "\(member):\(row)", member: member, line: row)
        record.label = labels?[row]
        record.features = [Float](unsafeUninitializedCapacity: rowLength) { out, count in
            buffer.withUnsafeBytes { raw in
                for i in 0..<rowLength {
                    let at = i * itemSize
                    switch (kind, itemSize) {
                    case ("f", 4): out[i] = raw.loadUnaligned(fromByteOffset: at, as: Float.self)
                    case ("f", 8): out[i] = Float(raw.loadUnaligned(fromByteOffset: at, as: Double.self))
                    case ("u", 1): out[i] = Float(raw[at])
                    case ("u", 2): out[i] = Float(raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))
                    case ("i", 1): out[i] = Float(Int8(bitPattern: raw[at]))
                    case ("i", 2): out[i] = Float(raw.loadUnaligned(fromByteOffset: at, as: Int16.self))
                    case ("i", 4): out[i] = Float(raw.loadUnaligned(fromByteOffset: at, as: Int32.self))
                    default: out[i] = Float(raw.loadUnaligned(fromByteOffset: at, as: Int64.self))
                    }
                }
            }
            count = rowLength
        }
        buffer.removeFirst(bytes)
        row += 1
        if spec.featureScale != 1 || spec.featureOffset != 0 {
            for i in record.features.indices { record.features[i] = record.features[i] * spec.featureScale + spec.featureOffset }
        }
        if let bad = record.features.firstIndex(where: { !$0.isFinite }) {
            return failure(index, record.line, .nonFinite, "feature \(bad) is \(record.features[bad]), not a finite number", id: record.id)
        }
        return .record(record)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// IDX (the MNIST format): a 4-byte magic (0, 0, element type, number of dimensions),
/// big-endian 32-bit sizes, then the elements, big-endian. A member with two or more
/// dimensions holds one record per first index (an image, flattened row by row); a
/// 1-D member holds labels, paired with the images member whose name matches once
/// "images"/"labels" and "idx1"/"idx3" are set aside (`train-images-idx3-ubyte` ↔
/// `train-labels-idx1-ubyte`). Labels are read in a first pass over the archive, so
/// member order does not matter.
final class IDXDecoder: MemberDecoder {
    let source: BlockSource
    let maxRowBytes: Int
    var buffer: [UInt8] = []
    var start = 0
    var dims: [Int] = []
    var type: UInt8 = 0
    var itemSize = 1
    var rowLength = 0
    var row = 0
    var labels: [String]?

    init(spec: RecordSpec, member: String, source: BlockSource, maxRowBytes: Int) {
        self.source = source
        self.maxRowBytes = maxRowBytes
        super.init(spec: spec, member: member)
    }

    static let itemSizes: [UInt8: Int] = [0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8]

    /// The name both members of an images/labels pair reduce to.
    static func pairKey(_ name: String) -> String {
        var s = name.lowercased()
        for token in ["labels", "images", "idx1", "idx3", "label", "image"] { s = s.replacingOccurrences(of: token, with: "") }
        // NumPy's convention: x_train.npy holds the inputs, y_train.npy the labels.
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        if var last = parts.last.map(String.init), last.hasPrefix("x_") || last.hasPrefix("y_") {
            last.removeFirst(2)
            return (parts.dropLast().map(String.init) + [last]).joined(separator: "/")
        }
        return s
    }

    func fill(_ n: Int) throws -> Bool {
        while buffer.count - start < n {
            guard let b = try source.next() else { return false }
            if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
            buffer.append(contentsOf: b)
        }
        return true
    }

    func take(_ n: Int) -> ArraySlice<UInt8> {
        defer { start += n }
        return buffer[start..<(start + n)]
    }

    func parseHeader() throws {
        func bad(_ why: String) -> QuernError { QuernError(.invalidRecord, "\(member) is not a usable IDX file: \(why)", member: member) }
        guard try fill(4) else { throw bad("shorter than its 4-byte magic") }
        let magic = Array(take(4))
        guard magic[0] == 0, magic[1] == 0, let size = Self.itemSizes[magic[2]], magic[3] >= 1 else {
            throw bad("bad magic \(magic.map { String(format: "%02x", $0) }.joined()) (expected 00 00 type dims)")
        }
        type = magic[2]
        itemSize = size
        guard try fill(4 * Int(magic[3])) else { throw bad("truncated header") }
        dims = (0..<Int(magic[3])).map { _ in take(4).reduce(0) { $0 << 8 | Int($1) } }
        var bytes = itemSize, overflow = false
        for d in dims.dropFirst() where !overflow { (bytes, overflow) = bytes.multipliedReportingOverflow(by: d) }
        guard !overflow, bytes <= maxRowBytes else { throw bad("a record of shape \(Array(dims.dropFirst())) exceeds limits.max_line_bytes") }
        rowLength = dims.dropFirst().reduce(1, *)
        if dims.count >= 2 && spec.wantsLabel {
            guard let l = spec.idxLabels[Self.pairKey(member)] else {
                throw QuernError(.missingValue, "\(member) has no labels member (a 1-D IDX file such as \(member.replacingOccurrences(of: "images", with: "labels").replacingOccurrences(of: "idx3", with: "idx1"))) in the archive", member: member)
            }
            guard l.count == dims[0] else {
                throw QuernError(.invalidRecord, "\(member) has \(dims[0]) images but its labels member has \(l.count) labels", member: member)
            }
            labels = l
        }
    }

    func value(_ bytes: ArraySlice<UInt8>) -> Float {
        let b = Array(bytes)
        switch type {
        case 0x08: return Float(b[0])
        case 0x09: return Float(Int8(bitPattern: b[0]))
        case 0x0B: return Float(Int16(bitPattern: UInt16(b[0]) << 8 | UInt16(b[1])))
        case 0x0C: return Float(Int32(bitPattern: b.reduce(0) { $0 << 8 | UInt32($1) }))
        case 0x0D: return Float(bitPattern: b.reduce(0) { $0 << 8 | UInt32($1) })
        default: return Float(Double(bitPattern: b.reduce(0) { $0 << 8 | UInt64($1) }))
        }
    }

    override func next(index: Int) throws -> StreamItem? {
        if dims.isEmpty { try parseHeader() }
        guard dims.count >= 2 else { return nil }  // a labels member: read in the first pass
        guard row < dims[0] else { return nil }
        let bytes = rowLength * itemSize
        guard try fill(bytes) else {
            throw QuernError(.archiveCorrupt, "\(member) is truncated: \(dims[0]) records promised, \(row) present", member: member)
        }
        var record = Record(index: index, id: "\(member):\(row)", member: member, line: row)
        let raw = take(bytes)
        if type == 0x08 {
            record.features = raw.map { Float($0) }
        } else {
            record.features = (0..<rowLength).map { value(raw[(raw.startIndex + $0 * itemSize)..<(raw.startIndex + ($0 + 1) * itemSize)]) }
        }
        if spec.featureScale != 1 || spec.featureOffset != 0 {
            for i in record.features.indices { record.features[i] = record.features[i] * spec.featureScale + spec.featureOffset }
        }
        record.label = labels?[row]
        row += 1
        if start > 1 << 20 { buffer.removeFirst(start); start = 0 }
        if let bad = record.features.firstIndex(where: { !$0.isFinite }) {
            return failure(index, record.line, .nonFinite, "feature \(bad) is \(record.features[bad]), not a finite number", id: record.id)
        }
        return .record(record)
    }

    /// First pass: every 1-D IDX member of the archive (inside the member glob), as
    /// label strings by pairing key.
    static func readLabels(path: String, spec: RecordSpec) throws -> [String: [String]] {
        let reader = try ArchiveReader(path: path)
        var out: [String: [String]] = [:]
        while let entry = try reader.next() {
            guard case .read = RecordStream.disposition(entry, spec: spec) else { continue }
            var header: [UInt8] = []
            var data: [UInt8] = []
            var isLabels: Bool?
            while let block = try reader.readBlock() {
                if isLabels == nil {
                    header.append(contentsOf: block.prefix(max(0, 8 - header.count)))
                    if header.count >= 4 { isLabels = header[0] == 0 && header[1] == 0 && header[3] == 1 }
                    if isLabels == false { continue }
                }
                if isLabels == true {
                    data.append(contentsOf: block)
                    if data.count > 64 << 20 { throw QuernError(.invalidRecord, "labels member \(entry.name) is over 64 MiB", member: entry.name) }
                }
            }
            guard isLabels == true, data.count >= 8, let size = itemSizes[data[2]] else { continue }
            let n = data[4..<8].reduce(0) { $0 << 8 | Int($1) }
            guard data.count >= 8 + n * size else {
                throw QuernError(.archiveCorrupt, "labels member \(entry.name) is truncated: \(n) labels promised", member: entry.name)
            }
            let labels: [String] = (0..<n).map { i in
                let b = data[(8 + i * size)..<(8 + (i + 1) * size)]
                switch data[2] {
                case 0x08: return String(b.first!)
                case 0x09: return String(Int8(bitPattern: b.first!))
                default:
                    let v = b.reduce(0) { $0 << 8 | Int($1) }
                    return String(v)
                }
            }
            out[pairKey(entry.name)] = labels
        }
        return out
    }
}

/// One PNG member is one record: 8-bit grayscale or RGB (an alpha channel is dropped),
/// not interlaced, decoded with zlib and PNG's five scanline filters; chunk CRCs are
/// checked. Features are channel-major (CHW), the layout `cnn` models take. The label is
/// the name of the member's directory.
final class PNGDecoder: MemberDecoder {
    let source: BlockSource
    let maxBytes: Int
    var done = false

    init(spec: RecordSpec, member: String, source: BlockSource, maxBytes: Int) {
        self.source = source
        self.maxBytes = maxBytes
        super.init(spec: spec, member: member)
    }

    override func next(index: Int) throws -> StreamItem? {
        guard !done else { return nil }
        done = true
        var data: [UInt8] = []
        while let b = try source.next() {
            data.append(contentsOf: b)
            if data.count > maxBytes {
                return failure(index, nil, .lineTooLong, "\(member) is larger than limits.max_line_bytes (\(maxBytes) bytes)")
            }
        }
        var record = Record(index: index, id: member, member: member, line: 1)
        do {
            record.features = try Self.decode(data)
        } catch let e as QuernError {
            return failure(index, nil, e.code, "\(member): \(e.message)", id: member)
        }
        if spec.featureScale != 1 || spec.featureOffset != 0 {
            for i in record.features.indices { record.features[i] = record.features[i] * spec.featureScale + spec.featureOffset }
        }
        if spec.wantsLabel {
            let parts = member.split(separator: "/")
            guard parts.count >= 2 else {
                return failure(index, nil, .missingValue, "\(member) is not in a directory named after its label (e.g. train/7/\(member))", id: member)
            }
            record.label = String(parts[parts.count - 2])
        }
        return .record(record)
    }

    /// Pixels as floats, channel-major.
    static func decode(_ png: [UInt8]) throws -> [Float] {
        func bad(_ why: String) -> QuernError { QuernError(.invalidRecord, "not a usable PNG: \(why)") }
        guard png.count >= 8, png[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw bad("bad signature") }
        func be32(_ at: Int) -> Int { png[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var at = 8
        var width = 0, height = 0, colorType = -1
        var idat: [UInt8] = []
        var sawEnd = false
        while at + 12 <= png.count {
            let length = be32(at)
            guard length <= png.count - at - 12 else { throw bad("chunk runs past the end of the file") }
            let type = String(decoding: png[(at + 4)..<(at + 8)], as: UTF8.self)
            let body = (at + 8)..<(at + 8 + length)
            let crc = png[(at + 4)..<(at + 8 + length)].withUnsafeBytes { Zlib.crc32(0, $0) }
            guard crc == UInt32(be32(at + 8 + length)) else { throw bad("CRC mismatch in chunk \(type)") }
            switch type {
            case "IHDR":
                guard length == 13 else { throw bad("IHDR has \(length) bytes") }
                width = be32(body.lowerBound)
                height = be32(body.lowerBound + 4)
                let depth = png[body.lowerBound + 8]
                colorType = Int(png[body.lowerBound + 9])
                guard depth == 8 else { throw bad("bit depth \(depth); only 8-bit images are read") }
                guard [0, 2, 4, 6].contains(colorType) else { throw bad("color type \(colorType) (palette images are not read; save as grayscale or RGB)") }
                guard png[body.lowerBound + 12] == 0 else { throw bad("interlaced (Adam7) images are not read; save without interlacing") }
                guard width > 0, height > 0, width <= 1 << 14, height <= 1 << 14 else { throw bad("size \(width)x\(height)") }
            case "IDAT": idat.append(contentsOf: png[body])
            case "IEND": sawEnd = true
            default: break
            }
            at = body.upperBound + 4
            if sawEnd { break }
        }
        guard colorType >= 0 else { throw bad("no IHDR chunk") }
        guard sawEnd else { throw bad("truncated (no IEND chunk)") }
        let channels = [0: 1, 2: 3, 4: 2, 6: 4][colorType]!
        let stride = width * channels
        let raw = try Zlib.inflateZlib(idat, expected: height * (stride + 1))
        // Undo the per-scanline filters (None, Sub, Up, Average, Paeth).
        var pixels = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            let line = y * (stride + 1) + 1
            for x in 0..<stride {
                let a = x >= channels ? Int(pixels[y * stride + x - channels]) : 0
                let b = y > 0 ? Int(pixels[(y - 1) * stride + x]) : 0
                let c = x >= channels && y > 0 ? Int(pixels[(y - 1) * stride + x - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw bad("unknown scanline filter \(filter)")
                }
                pixels[y * stride + x] = UInt8(truncatingIfNeeded: Int(raw[line + x]) + predictor)
            }
        }
        let kept = colorType == 4 ? 1 : (colorType == 6 ? 3 : channels)  // alpha dropped
        var out = [Float](repeating: 0, count: kept * width * height)
        for ch in 0..<kept {
            for i in 0..<(width * height) { out[ch * width * height + i] = Float(pixels[i * channels + ch]) }
        }
        return out
    }
}

extension NPYDecoder {
    /// First pass for labelled NPY input: every 1-D array member (inside the member glob)
    /// as label strings (integers as decimal) by pairing key.
    static func readLabels(path: String, spec: RecordSpec, limits: StreamLimits) throws -> [String: [String]] {
        var labelSpec = spec
        labelSpec.wantsLabel = false
        labelSpec.featureScale = 1
        labelSpec.featureOffset = 0
        let stream = try RecordStream(path: path, spec: labelSpec, limits: limits)
        var byMember: [String: [String]] = [:], oneDimensional: Set<String> = []
        var widths: [String: Int] = [:]
        while let item = try stream.next() {
            guard case .record(let r) = item else { continue }
            widths[r.member] = r.features.count
            if r.features.count == 1 {
                let v = r.features[0]
                byMember[r.member, default: []].append(v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v))
                oneDimensional.insert(r.member)
            }
        }
        var out: [String: [String]] = [:]
        // Only 1-D members whose pair is a wider array are labels (a lone column of
        // features stays features).
        let wide = Set(widths.filter { $0.value > 1 }.keys.map(IDXDecoder.pairKey))
        for (member, labels) in byMember where wide.contains(IDXDecoder.pairKey(member)) {
            out[IDXDecoder.pairKey(member)] = labels
        }
        return out
    }
}
