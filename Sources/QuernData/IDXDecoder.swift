import QuernCore

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
        for token in ["labels", "images", "idx1", "idx3", "label", "image"] {
            s = s.replacingOccurrences(of: token, with: "")
        }
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
        func bad(_ why: String) -> QuernError {
            QuernError(.invalidRecord, "\(member) is not a usable IDX file: \(why)", member: member)
        }
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
        guard !overflow, bytes <= maxRowBytes else {
            throw bad("a record of shape \(Array(dims.dropFirst())) exceeds limits.max_line_bytes")
        }
        rowLength = dims.dropFirst().reduce(1, *)
        // Records without values would cost nothing to claim and take forever to stream.
        guard dims.count < 2 || rowLength > 0 || dims[0] == 0 else {
            throw bad("records of shape \(Array(dims.dropFirst())) have no values")
        }
        if dims.count >= 2 && spec.wantsLabel {
            guard let l = spec.idxLabels[Self.pairKey(member)] else {
                throw QuernError(
                    .missingValue,
                    "\(member) has no labels member (a 1-D IDX file such as \(member.replacingOccurrences(of: "images", with: "labels").replacingOccurrences(of: "idx3", with: "idx1"))) in the archive",
                    member: member)
            }
            guard l.count == dims[0] else {
                throw QuernError(
                    .invalidRecord, "\(member) has \(dims[0]) images but its labels member has \(l.count) labels",
                    member: member)
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
            throw QuernError(
                .archiveCorrupt, "\(member) is truncated: \(dims[0]) records promised, \(row) present", member: member)
        }
        var record = Record(index: index, id: "\(member):\(row)", member: member, line: row)
        let raw = take(bytes)
        if type == 0x08 {
            record.features = raw.map { Float($0) }
        } else {
            record.features = (0..<rowLength).map {
                value(raw[(raw.startIndex + $0 * itemSize)..<(raw.startIndex + ($0 + 1) * itemSize)])
            }
        }
        if spec.featureScale != 1 || spec.featureOffset != 0 {
            for i in record.features.indices {
                record.features[i] = record.features[i] * spec.featureScale + spec.featureOffset
            }
        }
        record.label = labels?[row]
        row += 1
        if start > 1 << 20 { buffer.removeFirst(start); start = 0 }
        if let bad = record.features.firstIndex(where: { !$0.isFinite }) {
            return failure(
                index, record.line, .nonFinite, "feature \(bad) is \(record.features[bad]), not a finite number",
                id: record.id)
        }
        return .record(record)
    }

    /// First pass: every 1-D IDX member of the archive (inside the member glob), as
    /// label strings by pairing key.
    static func readLabels(path: String, spec: RecordSpec, limits: StreamLimits) throws -> [String: [String]] {
        let reader = try ArchiveReader(path: path)
        var out: [String: [String]] = [:]
        var decompressed = 0
        while let entry = try reader.next() {
            guard case .read = RecordStream.disposition(entry, spec: spec) else { continue }
            var header: [UInt8] = []
            var data: [UInt8] = []
            var isLabels: Bool?
            while let block = try reader.readBlock() {
                decompressed += block.count
                try limits.check(decompressed: decompressed, compressed: reader.compressedBytesRead)
                if isLabels == nil {
                    header.append(contentsOf: block.prefix(max(0, 8 - header.count)))
                    if header.count >= 4 { isLabels = header[0] == 0 && header[1] == 0 && header[3] == 1 }
                    if isLabels == false { continue }
                }
                if isLabels == true {
                    data.append(contentsOf: block)
                    if data.count > 64 << 20 {
                        throw QuernError(
                            .invalidRecord, "labels member \(entry.name) is over 64 MiB", member: entry.name)
                    }
                }
            }
            guard isLabels == true, let labels = try parseLabels(data, member: entry.name) else { continue }
            out[pairKey(entry.name)] = labels
        }
        return out
    }

    /// The labels of a 1-D IDX member, as strings; nil when `data` is not one.
    static func parseLabels(_ data: [UInt8], member: String) throws -> [String]? {
        guard data.count >= 8, data[0] == 0, data[1] == 0, data[3] == 1, let size = itemSizes[data[2]] else {
            return nil
        }
        let n = data[4..<8].reduce(0) { $0 << 8 | Int($1) }
        guard data.count >= 8 + n * size else {
            throw QuernError(
                .archiveCorrupt, "labels member \(member) is truncated: \(n) labels promised", member: member)
        }
        return (0..<n).map { i in
            let b = data[(8 + i * size)..<(8 + (i + 1) * size)]
            switch data[2] {
            case 0x08: return String(b.first!)
            case 0x09: return String(Int8(bitPattern: b.first!))
            case 0x0D: return labelString(Float(bitPattern: b.reduce(0) { $0 << 8 | UInt32($1) }))
            case 0x0E: return labelString(Double(bitPattern: b.reduce(0) { $0 << 8 | UInt64($1) }))
            default:
                // Signed big-endian integers of 2 or 4 bytes.
                let v = b.reduce(0) { $0 << 8 | Int($1) }
                return String(size == 2 ? Int(Int16(truncatingIfNeeded: v)) : Int(Int32(truncatingIfNeeded: v)))
            }
        }
    }

    /// A numeric label as text: whole numbers without a fraction ("3", as NumPy's integer
    /// labels read), others as Swift prints them.
    static func labelString<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
