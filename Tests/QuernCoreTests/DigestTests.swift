import Foundation
import QuernCore
import QuernTestSupport
import Testing

@Suite("SHA256Stream")
struct SHA256Tests {
    @Test func knownDigests() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        // Verified with `printf 'abc' | sha256sum` (FIPS 180-2 test vector).
        try Sys.writeFileAtomically(dir + "/abc", bytes("abc"))
        let abc = try SHA256Stream.file(dir + "/abc")
        #expect(abc.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(abc.bytes == 3)
        try Sys.writeFileAtomically(dir + "/empty", [])
        let empty = try SHA256Stream.file(dir + "/empty")
        #expect(empty.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(empty.bytes == 0)
    }

    @Test func matchesSha256sumOnAFileLargerThanTheReadBuffer() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(3 << 20) + 12345).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let path = dir + "/random.bin"
        try Sys.writeFileAtomically(path, data)
        let output = String(decoding: try run(["sha256sum", path]), as: UTF8.self)
        let expected = String(output.prefix(64))
        let got = try SHA256Stream.file(path)
        #expect(got.sha256 == expected)
        #expect(got.bytes == data.count)
        // Incremental hashing in uneven pieces gives the same digest.
        var h = SHA256Stream()
        var i = 0
        for step in [1, 7, 4096, 1 << 20, 3] where i < data.count {
            let j = min(data.count, i + step)
            data[i..<j].withUnsafeBytes { h.update($0) }
            i = j
        }
        data[i...].withUnsafeBytes { h.update($0) }
        #expect(h.hex() == expected)
    }

    @Test func missingFileThrows() {
        #expect(throws: SystemError.self) { try SHA256Stream.file("/nonexistent/quern/file") }
    }
}
