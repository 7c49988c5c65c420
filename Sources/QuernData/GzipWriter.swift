import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// Where a chunked gzip file stands: enough to resume it byte-identically after a crash.
public struct GzipPosition: Equatable, Sendable {
    /// Bytes of the file that hold finished segments (header included).
    public var offset: Int
    /// CRC-32 and length of the uncompressed data in those segments.
    public var crc: UInt32
    public var length: UInt64

    public init(offset: Int, crc: UInt32, length: UInt64) {
        self.offset = offset
        self.crc = crc
        self.length = length
    }

    public var json: JSONValue {
        ["offset": .int(Int64(offset)), "crc": .int(Int64(crc)), "length": .int(Int64(length))]
    }

    public init(json: JSONValue) throws {
        guard let o = json.objectValue, let off = o["offset"]?.intValue, let crc = o["crc"]?.intValue,
            let len = o["length"]?.intValue
        else { throw QuernError(.internalError, "bad gzip position in checkpoint") }
        self.init(offset: Int(off), crc: UInt32(crc), length: UInt64(len))
    }
}

/// Writes one gzip member as a chain of independently compressed deflate segments.
///
/// Bytes are buffered until a segment holds at least `segmentBytes`, at a boundary the
/// caller chooses (a whole record), so segment boundaries depend only on the data. A
/// checkpoint records the `position` of the last whole segment plus the still-buffered
/// bytes; resuming truncates the file there and carries on, and the finished file is
/// identical to the one an uninterrupted run writes. Readers see one ordinary gzip stream.
public final class ChunkedGzipWriter {
    public let path: String
    private let fd: Int32
    private let level: Int32
    private let segmentBytes: Int
    public private(set) var position: GzipPosition
    public private(set) var pending: [UInt8] = []
    private var finished = false

    static let header: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3]  // mtime 0, OS unix: reproducible

    /// Starts a new file, or resumes one at `resume` with its buffered bytes.
    public init(
        path: String, level: Int = 6, segmentBytes: Int = 1 << 20,
        resume: (GzipPosition, [UInt8])? = nil
    ) throws {
        self.path = path
        self.level = Int32(level)
        self.segmentBytes = segmentBytes
        if let (pos, pending) = resume {
            fd = try Sys.open(path, O_WRONLY | O_CREAT)
            try Sys.ftruncate(fd, pos.offset, path: path)
            _ = try Sys.lseek(fd, pos.offset, SEEK_SET)
            position = pos
            self.pending = pending
        } else {
            fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
            try Sys.writeAll(fd, Self.header, path: path)
            position = GzipPosition(offset: Self.header.count, crc: 0, length: 0)
        }
    }

    deinit { if !finished { Sys.close(fd) } }

    /// Appends bytes (callers append whole records). Returns true when a segment was
    /// written, which is a natural moment to checkpoint.
    @discardableResult
    public func append(_ bytes: [UInt8]) throws -> Bool {
        pending.append(contentsOf: bytes)
        guard pending.count >= segmentBytes else { return false }
        try writeSegment(final: false)
        return true
    }

    private func writeSegment(final: Bool) throws {
        let compressed = try pending.withUnsafeBytes { raw in
            position.crc = Zlib.crc32(position.crc, raw)
            return try Zlib.deflateSegment(raw, level: level, final: final)
        }
        position.length += UInt64(pending.count)
        try Sys.writeAll(fd, compressed, path: path)
        position.offset += compressed.count
        pending.removeAll(keepingCapacity: true)
    }

    /// Makes everything written so far durable (before a checkpoint names it).
    public func sync() throws { try Sys.fsync(fd, path: path) }

    /// Writes the final segment and the gzip trailer and closes the file. The publisher
    /// fsyncs it together with the job's other files.
    public func finish() throws {
        try writeSegment(final: true)
        var trailer = [UInt8]()
        for v in [position.crc, UInt32(truncatingIfNeeded: position.length)] {
            for shift in stride(from: 0, to: 32, by: 8) {
                trailer.append(UInt8(truncatingIfNeeded: v >> UInt32(shift)))
            }
        }
        try Sys.writeAll(fd, trailer, path: path)
        Sys.close(fd)
        finished = true
    }
}
