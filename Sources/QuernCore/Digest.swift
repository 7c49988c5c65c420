import Crypto

/// SHA-256 of files and byte streams, hex encoded, for `report.json` provenance.
public struct SHA256Stream {
    private var hasher = SHA256()
    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    public func hex() -> String {
        hasher.finalize().map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            .joined()
    }

    /// Hashes a file by streaming it, without loading it whole.
    public static func file(_ path: String) throws -> (sha256: String, bytes: Int) {
        let fd = try Sys.open(path, O_RDONLY)
        defer { Sys.close(fd) }
        var h = SHA256Stream()
        var total = 0
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buf.deallocate() }
        while true {
            let n = try Sys.read(fd, buf)
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            total += n
        }
        return (h.hex(), total)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
