import QuernCore

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
        guard bytes.count >= 10, bytes[0..<6].elementsEqual([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]), bytes[6] == 1 else {
            return nil
        }
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        guard bytes.count >= 10 + length else { return nil }
        let text = String(decoding: bytes[10..<(10 + length)], as: UTF8.self)
        guard let descr = NPYDecoder.value(of: "descr", in: text)?.trimmingCharacters(in: "'\" "),
            let shape = NPYDecoder.value(of: "shape", in: text)
        else { return nil }
        let dims = shape.filter { !"() ".contains($0) }.split(separator: ",").compactMap { Int($0) }
        return (descr, dims)
    }
}

/// NumPy `.npy` (format 1.0–3.0, C order): each row of the first axis is one record of
/// `prod(shape[1:])` features; ids are `member:ROW`, rows counted from 0 as NumPy does.
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
        guard try fill(10), buffer[0..<6].elementsEqual([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else {
            throw bad("bad magic")
        }
        let major = buffer[6]
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(buffer[8]) | Int(buffer[9]) << 8
            start = 10
        } else if major == 2 || major == 3 {
            guard try fill(12) else { throw bad("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(buffer[8 + $1]) << (8 * $1) }
            start = 12
        } else {
            throw bad("unsupported format version \(major)")
        }
        guard headerLength < 1 << 20, try fill(start + headerLength) else { throw bad("truncated header") }
        let text = String(decoding: buffer[start..<(start + headerLength)], as: UTF8.self)
        buffer.removeFirst(start + headerLength)
        guard let descr = Self.value(of: "descr", in: text)?.trimmingCharacters(in: "'\" "),
            let order = Self.value(of: "fortran_order", in: text),
            let shapeText = Self.value(of: "shape", in: text)
        else { throw bad("header lacks descr/fortran_order/shape") }
        if order.contains("True") {
            throw bad("Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        let sizes: [String: (Character, Int)] = [
            "<f4": ("f", 4), "<f8": ("f", 8), "|u1": ("u", 1), "|i1": ("i", 1),
            "<i2": ("i", 2), "<i4": ("i", 4), "<i8": ("i", 8), "<u2": ("u", 2)
        ]
        guard let (k, size) = sizes[descr] else {
            throw bad("dtype \(descr) is not supported (use float32, float64 or integers)")
        }
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
            if overflow || p > maxRowBytes {
                throw bad("a row of shape \(Array(dims.dropFirst())) exceeds limits.max_line_bytes")
            }
            rowBytes = p
        }
        rowLength = rowBytes / itemSize
        // Rows without values would cost nothing to claim and take forever to stream.
        guard rowLength > 0 || rows == 0 else { throw bad("rows of shape \(Array(dims.dropFirst())) have no values") }
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
                        throw QuernError(
                            .missingValue,
                            "\(member) has no labels member (a 1-D array such as y_\(Path.basename(member).replacingOccurrences(of: "x_", with: "")) next to it)",
                            member: member)
                    }
                    guard l.count == rows else {
                        throw QuernError(
                            .invalidRecord, "\(member) has \(rows) rows but its labels member has \(l.count) labels",
                            member: member)
                    }
                    labels = l
                }
            }
        }
        if isLabelsMember { return nil }
        guard row < rows else { return nil }
        let bytes = rowLength * itemSize
        guard try fill(bytes) else {
            throw QuernError(
                .archiveCorrupt, "\(member) is truncated: \(rows) rows promised, \(row) present", member: member)
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
            for i in record.features.indices {
                record.features[i] = record.features[i] * spec.featureScale + spec.featureOffset
            }
        }
        if let bad = record.features.firstIndex(where: { !$0.isFinite }) {
            return failure(
                index, record.line, .nonFinite, "feature \(bad) is \(record.features[bad]), not a finite number",
                id: record.id)
        }
        return .record(record)
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
                byMember[r.member, default: []].append(IDXDecoder.labelString(v))
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

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
