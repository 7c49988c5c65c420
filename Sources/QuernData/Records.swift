import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

public enum RecordFormat: String, Sendable, CaseIterable {
    case jsonl, csv, txt, npy, idx, png
    /// OpenAI's Batch API input: JSON Lines of `{"custom_id", "method", "url", "body"}`
    /// requests, read as JSONL with `custom_id` as the id and the whole object kept.
    case openaiBatch = "openai-batch"

    /// Formats whose records bring their label without a `label_field`: IDX and NPY
    /// arrays are labelled by the 1-D member paired with them (`train-images-idx3-ubyte`
    /// with `train-labels-idx1-ubyte`, `x_train.npy` with `y_train.npy`), PNG images by
    /// the directory they are in (`train/7/img.png` is a 7, as torchvision's ImageFolder).
    public var carriesLabels: Bool { self == .idx || self == .png || self == .npy }
}

/// What to take from each record: which fields, and what the task needs.
public struct RecordSpec: Sendable {
    public var format: RecordFormat
    /// Glob over member paths (`*.jsonl`); nil takes every regular member.
    public var members: String?
    public var idField: String?
    public var textField: String?
    /// The second text of a sentence pair (cross-encoders, pair scoring).
    public var pairField: String?
    public var labelField: String?
    /// JSONL: a field holding an array of numbers.
    public var featuresField: String?
    /// CSV columns (or JSONL numeric fields) that form the feature vector, in order.
    /// Nil for CSV means every column except the id and label columns.
    public var featureColumns: [String]?
    /// The feature names the model was trained on: for CSV without `featureColumns`,
    /// these columns are taken by name when the header has them all.
    public var modelFeatureNames: [String]?
    public var wantsText = false
    /// JSONL: keep each record's whole object (`Record.object`), for tasks that read
    /// structured fields (chat messages, per-record options, OpenAI request bodies).
    public var wantsObject = false
    /// JSONL fields or CSV columns copied into each result line (`output.include_fields`):
    /// `Record.carried` holds their values in this order (null when a JSONL record lacks one).
    public var carryFields: [String] = []
    public var wantsFeatures = false
    public var wantsLabel = false
    /// Applied to every feature of image formats (IDX, NPY): x·scale + offset, e.g.
    /// 1/255 to bring 8-bit pixels to [0, 1].
    public var featureScale: Float = 1
    public var featureOffset: Float = 0
    /// IDX and NPY labels by pairing key (see `IDXDecoder.pairKey`), read before the arrays.
    var idxLabels: [String: [String]] = [:]

    public init(
        format: RecordFormat, members: String? = nil, idField: String? = nil, textField: String? = nil,
        labelField: String? = nil, featuresField: String? = nil, featureColumns: [String]? = nil
    ) {
        self.format = format
        self.members = members
        self.idField = idField
        self.textField = textField
        self.labelField = labelField
        self.featuresField = featuresField
        self.featureColumns = featureColumns
    }
}

/// Bounds that keep a hostile or broken input from exhausting memory or disk.
public struct StreamLimits: Sendable {
    /// Longest line (or CSV record, or NPY row) held in memory.
    public var maxLineBytes = 16 << 20
    /// Total decompressed bytes the job may read; nil is unbounded.
    public var maxInputBytes: Int? = nil
    /// A stream that expands more than this many times its compressed size is a bomb...
    /// (real JSONL/CSV gzips 5–20×; deflate's ceiling is about 1030×, so 200 leaves a
    /// wide margin on both sides)
    public var maxExpansionRatio = 200.0
    /// ...once it has produced at least this many bytes (small files compress very well).
    public var ratioFloorBytes = 64 << 20

    public init() {}

    /// Refuses a stream that has decompressed past `maxInputBytes`, or expanded past
    /// `maxExpansionRatio` of the compressed bytes read so far: every pass over an input
    /// (the record stream and the label pre-passes) is held to the same bounds.
    public func check(decompressed: Int, compressed: Int) throws {
        if let max = maxInputBytes, decompressed > max {
            throw QuernError(
                .decompressionLimit,
                "the input decompresses to more than limits.max_input_bytes (\(max) bytes); raise the limit if this is expected",
                field: "limits.max_input_bytes")
        }
        if decompressed > ratioFloorBytes, Double(decompressed) > maxExpansionRatio * Double(Swift.max(compressed, 1)) {
            throw QuernError(
                .decompressionLimit,
                "the input expands more than \(Int(maxExpansionRatio))x its compressed size (\(decompressed) bytes from \(compressed)); this looks like a decompression bomb. Raise limits.max_expansion_ratio if the data really is that repetitive",
                field: "limits.max_expansion_ratio")
        }
    }
}

public struct Record: Sendable {
    /// Position in the stream, counting failures too: the resume point of a checkpoint.
    public var index: Int
    public var id: String
    public var member: String
    /// 1-based line of the record in its member (the row number for NPY).
    public var line: Int
    public var text: String?
    /// The second text of a pair, when the spec names `pairField`.
    public var pair: String?
    public var features: [Float] = []
    public var label: String?
    /// The record's JSON object, when the spec asks for it (JSONL).
    public var object: JSONObject?
    /// The values of `RecordSpec.carryFields`, in order.
    public var carried: [JSONValue] = []
}

/// A record that could not be read: it goes to the job's error file, the job goes on.
public struct RecordFailure: Error, Sendable {
    public var index: Int
    public var id: String?
    public var member: String
    public var line: Int?
    public var error: QuernError
}

public enum StreamItem: Sendable {
    case record(Record)
    case failure(RecordFailure)
}

/// Streams records out of a file or archive: members in archive order, records in member
/// order, each with an id. Memory is bounded by the longest line, not by the data set.
/// Job-level problems (corrupt archive, decompression bomb) are thrown; record-level ones
/// come back as `.failure` items.
public final class RecordStream {
    public let spec: RecordSpec
    public let limits: StreamLimits
    private let prefetcher: ArchivePrefetcher
    private let totalBytes: Int
    private var index = 0
    /// Decompressed bytes read so far.
    public private(set) var decompressedBytes = 0
    private var compressed = 0
    private var member: MemberDecoder?
    private var source: BlockSource?
    private var finished = false
    public private(set) var membersRead = 0

    /// The part of the input a stream reads (a shard's share, see `ShardPlan`).
    public enum Selection: Sendable, Equatable {
        case all
        /// Members by ordinal among those that yield records or an error (skipped
        /// members, like directories and those outside `input.members`, do not count);
        /// the others' data is never decoded. Record indices count from 0 in the first
        /// selected member.
        case members(Range<Int>)
        /// Records (and record errors) by index in the whole input; those before the
        /// range are decoded and dropped, the stream ends at its end.
        case records(Range<Int>)
    }
    public let selection: Selection
    /// Ordinal of the next member that yields items (for `.members`).
    private var memberOrdinal = 0

    public init(path: String, spec: RecordSpec, limits: StreamLimits = StreamLimits(), selection: Selection = .all)
        throws
    {
        var spec = spec
        if spec.format == .idx && spec.wantsLabel {
            spec.idxLabels = try IDXDecoder.readLabels(path: path, spec: spec, limits: limits)
        }
        if spec.format == .npy && spec.wantsLabel {
            spec.idxLabels = try NPYDecoder.readLabels(path: path, spec: spec, limits: limits)
        }
        self.spec = spec
        self.limits = limits
        self.selection = selection
        let reader = try ArchiveReader(path: path)
        totalBytes = Sys.fileSize(path: path)
        // The producer thread sees the entries in the same order as next() does, so it
        // can number them the same way on its own.
        var ordinal = 0
        prefetcher = ArchivePrefetcher(reader: reader) { entry in
            let disposition = RecordStream.disposition(entry, spec: spec)
            if case .skip = disposition { return false }
            defer { ordinal += 1 }
            if case .members(let r) = selection, !r.contains(ordinal) { return false }
            if case .read = disposition { return true }
            return false
        }
    }

    /// Members that yield records or an error (see `Selection.members`), from the
    /// headers alone.
    public static func countMembers(path: String, spec: RecordSpec) throws -> Int {
        let reader = try ArchiveReader(path: path)
        var n = 0
        while let entry = try reader.next() {
            if case .skip = disposition(entry, spec: spec) { continue }
            n += 1
        }
        return n
    }

    /// The items of one member held in memory, decoded as if read from an archive whose
    /// blocks are `chunkSize` bytes: how the fuzz harnesses and the decoder tests reach a
    /// decoder without a file. Job-level problems are thrown, as `next()` throws them.
    public static func decode(
        member: String, bytes: [UInt8], spec: RecordSpec, limits: StreamLimits = StreamLimits(),
        chunkSize: Int = 1 << 20, maxItems: Int = .max
    ) throws -> [StreamItem] {
        let source = BlockSource(bytes: bytes, chunkSize: chunkSize)
        let decoder = try MemberDecoder.make(spec: spec, limits: limits, member: member, source: source)
        var items: [StreamItem] = []
        while items.count < maxItems, let item = try decoder.next(index: items.count) { items.append(item) }
        return items
    }

    deinit { prefetcher.cancel() }

    /// (compressed bytes read, file size): how far through the input the stream is.
    public var progress: (done: Int, total: Int) { (compressed, totalBytes) }

    enum Disposition {
        case skip
        case unsafe(String)
        case read
    }

    /// What to do with a member: directories and members outside the glob are passed
    /// over silently; links, devices, absolute paths and `..` are refused as unsafe.
    static func disposition(_ entry: ArchiveReader.Entry, spec: RecordSpec) -> Disposition {
        if entry.kind == .directory { return .skip }
        if let glob = spec.members, !Sys.globMatch(glob, entry.name) { return .skip }
        switch entry.kind {
        case .symlink, .hardlink:
            return .unsafe("member \(entry.name) is a link; links are skipped, store the file itself")
        case .other:
            return .unsafe("member \(entry.name) is not a regular file (device, fifo or socket); it is skipped")
        default: break
        }
        if entry.name.hasPrefix("/") { return .unsafe("member \(entry.name) has an absolute path; it is skipped") }
        if entry.name.split(separator: "/").contains("..") {
            return .unsafe("member \(entry.name) has a '..' component; it is skipped")
        }
        return .read
    }

    public func next() throws -> StreamItem? {
        guard case .records(let range) = selection else { return try nextItem() }
        while index < range.lowerBound, try nextItem() != nil {}
        guard index < range.upperBound, let item = try nextItem() else {
            finish()
            return nil
        }
        return item
    }

    /// Stops reading: the rest of the input is not wanted.
    private func finish() {
        finished = true
        member = nil
        source = nil
        prefetcher.cancel()
    }

    private func nextItem() throws -> StreamItem? {
        while !finished {
            if let m = member {
                if let item = try m.next(index: index) {
                    index += 1
                    return item
                }
                // Let the producer finish the member if the decoder stopped early.
                while try source?.next() != nil {}
                member = nil
                source = nil
                continue
            }
            switch prefetcher.next() {
            case .entry(let entry, let read):
                let disposition = Self.disposition(entry, spec: spec)
                if case .skip = disposition { continue }
                defer { memberOrdinal += 1 }
                if case .members(let r) = selection, !r.contains(memberOrdinal) { continue }
                if case .unsafe(let problem) = disposition {
                    defer { index += 1 }
                    return .failure(
                        RecordFailure(
                            index: index, id: nil, member: entry.name, line: nil,
                            error: QuernError(.unsafeMember, problem, member: entry.name)))
                }
                guard read else { continue }
                membersRead += 1
                let s = BlockSource(prefetcher: prefetcher) { [unowned self] chunk in try self.account(chunk) }
                source = s
                member = try MemberDecoder.make(spec: spec, limits: limits, member: entry.name, source: s)
            case .end:
                finished = true
            case .failure(let e):
                finished = true
                throw e
            case .data, .endOfMember:
                throw QuernError(.internalError, "archive stream out of order")
            }
        }
        return nil
    }

    private func account(_ chunk: ArchivePrefetcher.Chunk) throws {
        decompressedBytes += chunk.count
        compressed = chunk.compressedAfter
        try limits.check(decompressed: decompressedBytes, compressed: compressed)
    }
}

/// Hands one member's data to its decoder, chunk by chunk, accounting every byte
/// against the limits. A chunk stays valid until the next call. The data comes from the
/// archive prefetcher, or from memory (`RecordStream.decode(member:...)`).
final class BlockSource {
    private enum Backing {
        case archive(ArchivePrefetcher)
        case memory(UnsafeMutableRawBufferPointer, chunkSize: Int)
    }
    private let backing: Backing
    let account: (ArchivePrefetcher.Chunk) throws -> Void
    var current: ArchivePrefetcher.Chunk?
    private var offset = 0
    var done = false

    init(prefetcher: ArchivePrefetcher, account: @escaping (ArchivePrefetcher.Chunk) throws -> Void) {
        self.backing = .archive(prefetcher)
        self.account = account
    }

    init(bytes: [UInt8], chunkSize: Int) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        copy.copyBytes(from: bytes)
        self.backing = .memory(copy, chunkSize: max(1, chunkSize))
        self.account = { _ in }
    }

    deinit {
        switch backing {
        case .archive(let p): if let c = current { p.recycle(c) }
        case .memory(let bytes, _): bytes.deallocate()
        }
    }

    func next() throws -> UnsafeRawBufferPointer? {
        switch backing {
        case .archive(let prefetcher): return try next(from: prefetcher)
        case .memory(let bytes, let chunkSize):
            guard offset < bytes.count else { return nil }
            let n = min(chunkSize, bytes.count - offset)
            defer { offset += n }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        }
    }

    private func next(from prefetcher: ArchivePrefetcher) throws -> UnsafeRawBufferPointer? {
        if let c = current {
            prefetcher.recycle(c)
            current = nil
        }
        if done { return nil }
        switch prefetcher.next() {
        case .data(let chunk):
            current = chunk
            try account(chunk)
            return chunk.bytes
        case .endOfMember:
            done = true
            return nil
        case .failure(let e):
            done = true
            throw e
        case .entry, .end:
            done = true
            throw QuernError(.internalError, "archive stream out of order")
        }
    }
}

/// Splits a byte stream into lines (or, for CSV, into records: a newline inside quotes
/// does not end one). A line longer than the limit is reported, not buffered.
struct LineSplitter {
    enum Item {
        case line(UnsafeRawBufferPointer, lineNumber: Int)
        case tooLong(lineNumber: Int)
    }

    let source: BlockSource
    let maxBytes: Int
    let quoteAware: Bool
    var block = UnsafeRawBufferPointer(start: nil, count: 0)
    var cursor = 0
    var carry: [UInt8] = []
    var overflowing = false
    var physicalLine = 1
    /// How many bytes of a UTF-8 byte-order mark (Excel's CSVs) the member has begun
    /// with so far; nil once the start is settled. The mark is not part of the first
    /// line, and it may span blocks.
    var byteOrderMark: Int? = 0
    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    init(source: BlockSource, maxBytes: Int, quoteAware: Bool) {
        self.source = source
        self.maxBytes = maxBytes
        self.quoteAware = quoteAware
    }

    /// Offset of the record end (`\n`) in `block[from...]`, or nil; tracks quotes for CSV.
    private var inQuotes = false
    private var newlinesInRecord = 0
    mutating func findEnd(from: Int) -> Int? {
        guard let base = block.baseAddress else { return nil }
        if !quoteAware {
            guard let p = memchr(base + from, 0x0A, block.count - from) else { return nil }
            return base.distance(to: UnsafeRawPointer(p))
        }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        var i = from
        while i < block.count {
            let c = bytes[i]
            if c == 0x22 {
                inQuotes.toggle()
            } else if c == 0x0A {
                if !inQuotes { return i }
                newlinesInRecord += 1
            }
            i += 1
        }
        return nil
    }

    /// Hands the next line to `body`; the bytes are valid only inside it. Nil at the end.
    mutating func next<T>(_ body: (Item) throws -> T) throws -> T? {
        while true {
            if cursor >= block.count {
                guard let b = try source.next() else {
                    // A member that is only the start of a mark: those bytes are its line.
                    if let m = byteOrderMark {
                        byteOrderMark = nil
                        carry.append(contentsOf: Self.bom[..<m])
                    }
                    // End of member: whatever is carried is the last line (no final newline).
                    if overflowing {
                        overflowing = false; carry = []; return try body(.tooLong(lineNumber: takeLine()))
                    }
                    if carry.isEmpty { return nil }
                    defer { carry = [] }
                    let n = takeLine()
                    return try carry.withUnsafeBytes { try body(.line(trimCR($0), lineNumber: n)) }
                }
                block = b
                cursor = 0
            }
            if let m = byteOrderMark {
                var matched = m
                while matched < 3, cursor < block.count, block[cursor] == Self.bom[matched] {
                    matched += 1
                    cursor += 1
                }
                if matched == 3 {
                    byteOrderMark = nil
                } else if cursor < block.count {
                    // Not a mark after all: the bytes skipped so far begin the first line.
                    byteOrderMark = nil
                    carry.append(contentsOf: Self.bom[..<matched])
                } else {
                    byteOrderMark = matched
                    continue
                }
            }
            if let end = findEnd(from: cursor) {
                let start = cursor
                cursor = end + 1
                if overflowing {
                    overflowing = false
                    return try body(.tooLong(lineNumber: takeLine()))
                }
                if carry.isEmpty {
                    if end - start > maxBytes { return try body(.tooLong(lineNumber: takeLine())) }
                    let n = takeLine()
                    return try body(.line(trimCR(UnsafeRawBufferPointer(rebasing: block[start..<end])), lineNumber: n))
                }
                carry.append(contentsOf: block[start..<end])
                defer { carry.removeAll(keepingCapacity: carry.count < 1 << 20) }
                if carry.count > maxBytes { return try body(.tooLong(lineNumber: takeLine())) }
                let n = takeLine()
                return try carry.withUnsafeBytes { try body(.line(trimCR($0), lineNumber: n)) }
            }
            // No record end in the rest of this block: carry it over (or drop it if too long).
            if !overflowing {
                carry.append(contentsOf: block[cursor..<block.count])
                if carry.count > maxBytes { carry = []; overflowing = true }
            }
            cursor = block.count
        }
    }

    private mutating func takeLine() -> Int {
        let n = physicalLine
        physicalLine += 1 + newlinesInRecord
        newlinesInRecord = 0
        return n
    }

    private func trimCR(_ b: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        if b.count > 0 && b[b.count - 1] == 0x0D { return UnsafeRawBufferPointer(rebasing: b[0..<(b.count - 1)]) }
        return b
    }
}
