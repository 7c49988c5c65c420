import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("RecordStream: TXT")
struct TextTests {
    @Test func oneRecordPerNonBlankLine() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write(
            "notes.txt", Array("hello, world\n\nsecond \"line\"\r\n  \n".utf8) + [0xC3, 0x28] + Array("\nlast é".utf8))
        var s = RecordSpec(format: .txt)
        s.wantsText = true
        let d = records(path, s)
        #expect(d.codes == [nil, nil, .invalidUTF8, nil])
        #expect(d.ids == ["notes.txt:1", "notes.txt:3", nil, "notes.txt:6"])
        #expect(d.records.map(\.text) == ["hello, world", "second \"line\"", "last é"])
        #expect(d.failures.first?.line == 5)
    }

    @Test("a byte-order mark is dropped, and a line that only begins like one is kept, at every block size")
    func byteOrderMarkAcrossBlocks() throws {
        var s = RecordSpec(format: .txt)
        s.wantsText = true
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        // (member, its texts, how many lines fail as not UTF-8)
        let cases: [([UInt8], [String], Int)] = [
            (bom + Array("a\nb".utf8), ["a", "b"], 0),
            (bom + Array("\nb\n".utf8), ["b"], 0),
            (bom, [], 0),
            (bom + bom + Array("x".utf8), ["\u{FEFF}x"], 0),
            (Array("\u{FEFE}x\ny".utf8), ["\u{FEFE}x", "y"], 0),
            (Array(bom.prefix(2)) + Array("\u{00A0}z\ny".utf8), ["y"], 1),
            (Array(bom.prefix(1)) + Array("x".utf8), [], 1)
        ]
        for (bytes, texts, failures) in cases {
            for chunk in 1...bytes.count {
                let items = try RecordStream.decode(member: "m.txt", bytes: bytes, spec: s, chunkSize: chunk)
                #expect(items.compactMap(\.record).map { $0.text ?? "" } == texts, "\(bytes) in blocks of \(chunk)")
                #expect(items.compactMap(\.failure).count == failures, "\(bytes) in blocks of \(chunk)")
            }
        }
    }
}
