import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("RecordStream: PNG")
struct PNGTests {
    @Test("every filter type decodes to the original pixels; labels from directories")
    func png() throws {
        var s = spec(.png, id: nil, members: "*.png")
        s.wantsLabel = true
        let d = records(repoRoot + "/fixtures/data/digits-png.tar.gz", s)
        #expect(d.records.count == 450 && d.failures.isEmpty)
        let rows = try digitsRows()
        for r in d.records {
            let name = String(r.member.split(separator: "/").last!.dropLast(4))
            let expected = try #require(rows[name])
            #expect(r.features == expected.0.map { min($0 * 16, 255) }, "\(r.member)")
            #expect(r.label == expected.1)
        }
    }

    @Test("corrupt images are record errors naming the problem; the stream goes on")
    func pngErrors() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        // A valid image from the fixture, then broken copies of it.
        try Sys.mkdirs(tmp.path + "/in/3")
        let sample = try extractFirstPNG()
        var crc = sample
        crc[crc.count - 20] ^= 0xFF  // inside the IDAT data: its CRC no longer matches
        var interlaced = sample
        interlaced[28] = 1  // IHDR's interlace byte (the IHDR CRC is then wrong too, checked first)
        try Sys.writeFile(tmp.path + "/in/3/ok.png", sample)
        try Sys.writeFile(tmp.path + "/in/3/crc.png", crc)
        try Sys.writeFile(tmp.path + "/in/3/trunc.png", Array(sample.prefix(30)))
        try Sys.writeFile(tmp.path + "/in/3/text.png", Array("not a png".utf8))
        try run(["tar", "-czf", tmp.path + "/in.tar.gz", "-C", tmp.path + "/in", "3"])
        var s = spec(.png, id: nil, members: "*.png")
        s.wantsLabel = true
        let d = records(tmp.path + "/in.tar.gz", s)
        #expect(d.records.map(\.member) == ["3/ok.png"] && d.records.first?.label == "3")
        let messages = d.failures.map(\.error.message).joined(separator: " | ")
        #expect(d.failures.count == 3, "\(messages)")
        #expect(messages.contains("CRC mismatch") && messages.contains("signature"), "\(messages)")
    }

    @Test("a header claiming more pixels than limits.max_line_bytes is a record error before anything is inflated")
    func hugeHeader() throws {
        // 16384 × 16384 RGBA claims 1 GiB of pixels; the data is a few bytes.
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            let crc = typed.withUnsafeBytes { Zlib.crc32(0, $0) }
            return be32(body.count) + typed + be32(Int(crc))
        }
        func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
        let png =
            [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(16384) + be32(16384) + [8, 6, 0, 0, 0])
            + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("in/7/huge.png", png)
        try run(["tar", "-czf", tmp.path + "/in.tar.gz", "-C", tmp.path + "/in", "7"])
        let d = records(tmp.path + "/in.tar.gz", spec(.png, id: nil, members: "*.png"))
        #expect(d.records.isEmpty)
        let e = try #require(d.failures.first?.error)
        #expect(e.code == .lineTooLong && e.message.contains("16384x16384"), "\(e)")
    }

    /// The first PNG of the fixture archive, as bytes (via tar).
    func extractFirstPNG() throws -> [UInt8] {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try run(["tar", "-xzf", repoRoot + "/fixtures/data/digits-png.tar.gz", "-C", tmp.path, "test/0"])
        let dir = tmp.path + "/test/0"
        let name = try #require(try Sys.listDirectory(dir).sorted().first)
        return try Sys.readFile(dir + "/" + name)
    }
}
