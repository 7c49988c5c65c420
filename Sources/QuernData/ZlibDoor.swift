import CZlib
import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// The one door to zlib.
public enum Zlib {
    public static func crc32(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        var c = UInt(crc)
        var p = base.assumingMemoryBound(to: UInt8.self)
        var left = bytes.count
        // zlib takes a 32-bit length; feed larger buffers in pieces.
        while left > 0 {
            let n = min(left, 1 << 30)
            c = CZlib.crc32(c, p, uInt(n))
            p += n
            left -= n
        }
        return UInt32(c)
    }

    /// Compresses `input` as one self-contained raw-deflate segment: a fresh stream that
    /// ends on a sync flush (byte-aligned, not final). Segments concatenate into one valid
    /// deflate stream, and each depends only on its own bytes, which is what makes
    /// checkpointed outputs byte-identical to uninterrupted ones (pigz uses the same idea).
    /// With `final`, the segment ends the stream instead.
    public static func deflateSegment(_ input: UnsafeRawBufferPointer, level: Int32, final: Bool) throws -> [UInt8] {
        var stream = z_stream()
        var r = deflateInit2_(
            &stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard r == Z_OK else { throw QuernError(.internalError, "deflateInit2 failed (\(r))") }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 64
        var out = [UInt8](repeating: 0, count: bound)
        let produced: Int = out.withUnsafeMutableBufferPointer { o in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = o.baseAddress
            stream.avail_out = uInt(o.count)
            r = deflate(&stream, final ? Z_FINISH : Z_SYNC_FLUSH)
            return o.count - Int(stream.avail_out)
        }
        guard r == (final ? Z_STREAM_END : Z_OK), stream.avail_in == 0 else {
            throw QuernError(.internalError, "deflate failed (\(r))")
        }
        out.removeLast(out.count - produced)
        return out
    }

    /// Inflates a zlib stream (PNG's IDAT data) that must produce exactly `expected`
    /// bytes: more is refused as soon as it appears, so a hostile image cannot expand
    /// past its declared size.
    public static func inflateZlib(_ data: [UInt8], expected: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw QuernError(.internalError, "inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: expected + 1)
        let result: (Int32, Int) = data.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = o.baseAddress
                stream.avail_out = uInt(o.count)
                let r = inflate(&stream, Z_FINISH)
                return (r, o.count - Int(stream.avail_out))
            }
        }
        guard result.0 == Z_STREAM_END, result.1 == expected else {
            throw QuernError(
                .invalidRecord,
                result.1 > expected
                    ? "image data inflates to more than its declared size"
                    : "image data is corrupt or truncated (zlib \(result.0), \(result.1) of \(expected) bytes)")
        }
        out.removeLast()
        return out
    }

    /// The first gzip member of `data`: its compressed length (header to trailer) and
    /// its decompressed bytes. For a small leading member, like the NPY header member
    /// in front of `results.npy.gz`'s data, which a merge replaces.
    public static func firstGzipMember(_ data: [UInt8]) throws -> (length: Int, bytes: [UInt8]) {
        try inflateMembers(data, windowBits: 15 + 16, all: false)
    }

    /// Decompresses a whole gzip file held in memory (all members), for tests; streams
    /// are read through `ArchiveReader`.
    public static func gunzip(_ data: [UInt8]) throws -> [UInt8] {
        try inflateMembers(data, windowBits: 15 + 32, all: true).bytes
    }

    /// Inflates the first member of `data`, or every member when `all`; returns the
    /// compressed bytes consumed and the decompressed bytes.
    private static func inflateMembers(_ data: [UInt8], windowBits: Int32, all: Bool) throws -> (
        length: Int, bytes: [UInt8]
    ) {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw QuernError(.internalError, "inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        return try data.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let (r, n): (Int32, Int) = chunk.withUnsafeMutableBufferPointer { c in
                    stream.next_out = c.baseAddress
                    stream.avail_out = uInt(c.count)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    return (r, c.count - Int(stream.avail_out))
                }
                out.append(contentsOf: chunk[0..<n])
                if r == Z_STREAM_END {
                    if !all || stream.avail_in == 0 { return (input.count - Int(stream.avail_in), out) }
                    inflateReset(&stream)  // next gzip member
                    continue
                }
                guard r == Z_OK || (r == Z_BUF_ERROR && n > 0) else {
                    throw QuernError(.archiveCorrupt, "gzip data is corrupt or truncated (\(r))")
                }
            }
        }
    }
}

/// Streams a gzip file's decompressed bytes and verifies every member's CRC-32 and
/// length, which libarchive's gzip filter does not (it skips the trailer). Gzip inputs
/// are therefore inflated here and handed to libarchive already decompressed.
public final class GzipInflater {
    private let fd: Int32
    private let path: String
    private var stream = z_stream()
    private let input: UnsafeMutableRawBufferPointer
    private let output: UnsafeMutableRawBufferPointer
    private var inputEOF = false
    private var memberEnded = false
    private var finished = false
    /// Compressed bytes consumed so far (for progress and the expansion-ratio check).
    public private(set) var compressedConsumed = 0
    /// The error behind a failed read, for the caller to report (libarchive sees only -1).
    public private(set) var error: QuernError?

    public init(path: String, inputSize: Int = 256 << 10, outputSize: Int = 1 << 20) throws {
        self.path = path
        fd = try Sys.open(path, O_RDONLY)
        input = .allocate(byteCount: inputSize, alignment: 64)
        output = .allocate(byteCount: outputSize, alignment: 64)
        // 15 + 16: gzip wrapper only, with its trailer checked.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            Sys.close(fd)
            throw QuernError(.internalError, "inflateInit2 failed")
        }
    }

    deinit {
        inflateEnd(&stream)
        Sys.close(fd)
        input.deallocate()
        output.deallocate()
    }

    /// Whether the file starts with the gzip magic bytes.
    public static func isGzip(_ path: String) -> Bool { Sys.readPrefix(path, count: 2) == [0x1F, 0x8B] }

    private func fail(_ message: String) -> QuernError {
        let e = QuernError(.archiveCorrupt, "\(Path.basename(path)): \(message)")
        error = e
        return e
    }

    private func refill() throws {
        let n: Int
        do {
            n = try Sys.read(fd, input)
        } catch let e as SystemError {
            // The file could not be read (a disk or network error), not bad data.
            var q = QuernError(.io, e.description)
            q.transient = e.isTransient
            error = q
            throw q
        }
        if n == 0 { inputEOF = true }
        stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = uInt(n)
    }

    /// The next decompressed bytes (valid until the next call); empty at the end.
    public func read() throws -> UnsafeRawBufferPointer {
        while !finished {
            if stream.avail_in == 0 && !inputEOF { try refill() }
            if memberEnded {
                // Another member may follow (concatenated gzip); anything else ends the data.
                if stream.avail_in == 0 && inputEOF { finished = true; break }
                if stream.avail_in > 0 && stream.next_in[0] != 0x1F { finished = true; break }
                inflateReset(&stream)
                memberEnded = false
            }
            if stream.avail_in == 0 && inputEOF {
                throw fail("gzip data is truncated (the file ends inside a compressed member)")
            }
            stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(output.count)
            let before = stream.avail_in
            let r = inflate(&stream, Z_NO_FLUSH)
            compressedConsumed += Int(before - stream.avail_in)
            let produced = output.count - Int(stream.avail_out)
            switch r {
            case Z_STREAM_END: memberEnded = true
            case Z_OK, Z_BUF_ERROR: break
            default:
                let detail = stream.msg.map { String(cString: $0) } ?? "error \(r)"
                throw fail("gzip data is corrupt (\(detail))")
            }
            if produced > 0 { return UnsafeRawBufferPointer(rebasing: output[0..<produced]) }
        }
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }
}
