import CZlib
import QuernCore

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
        var r = deflateInit2_(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
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

    /// Decompresses a whole gzip file held in memory (all members); for tests and small
    /// files only: streams are read through `ArchiveReader`.
    public static func gunzip(_ data: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw QuernError(.internalError, "inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        try data.withUnsafeBufferPointer { input in
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
                    if stream.avail_in == 0 { return }
                    inflateReset(&stream)  // next gzip member
                    continue
                }
                guard r == Z_OK || (r == Z_BUF_ERROR && n > 0) else {
                    throw QuernError(.archiveCorrupt, "gzip data is corrupt or truncated (\(r))")
                }
            }
        }
        return out
    }
}
