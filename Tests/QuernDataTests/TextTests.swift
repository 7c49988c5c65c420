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
}
