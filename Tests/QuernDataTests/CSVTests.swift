import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("RecordStream: CSV")
struct CSVTests {
    static let text =
        "id,text,a,b\n"  // 1
        + "r1,hello,1,2\n"  // 2
        + "\"r,2\",\"say \"\"hi\"\", ok\",3,4\n"  // 3
        + "r3,\"multi\nline\ntext\",5,6\n"  // 4-6
        + "\n"  // 7
        + "r4,short, 7 ,8\n"  // 8
        + "r5,x,1\n"  // 9: too few fields
        + "r6,x,NaN,1\n"  // 10
        + "r7,x,,1\n"  // 11
        + "r8,x,abc,1\n"  // 12
        + ",x,1,1\n"  // 13: no id
        + "r9,\"a\"\"b\",-1e-3,2\n"  // 14
        + "r10,x,inf,2\n"  // 15
        + "r11,x,1,2,3\n"  // 16: too many fields
        + "r12,bad\"quote,1,2\n"  // 17: bare quote (last: it opens a quote)

    @Test func rfc4180QuotingAndPhysicalLineNumbers() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", Self.text)
        let d = records(path, spec(.csv, text: "text"))
        let lines = d.items.map { $0.record?.line ?? $0.failure?.line }
        #expect(lines == [2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])
        #expect(
            d.codes == [
                nil, nil, nil, nil, .invalidRecord, .nonFinite, .missingValue, .invalidRecord, .missingValue,
                nil, .nonFinite, .invalidRecord, .invalidRecord
            ])
        #expect(d.records.map(\.id) == ["r1", "r,2", "r3", "r4", "r9"])
        #expect(d.records.map(\.text) == ["hello", "say \"hi\", ok", "multi\nline\ntext", "short", "a\"b"])
        #expect(d.records.map(\.features) == [[1, 2], [3, 4], [5, 6], [7, 8], [-0.001, 2]])
        #expect(d.records.map(\.line) == [2, 3, 4, 8, 14])
        #expect(d.failures.map(\.member) == Array(repeating: "t.csv", count: 8))
        #expect(d.failures[0].id == "r5")
    }

    @Test func featureColumnsChooseAndOrder() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", "label,b,id,a\ncat,2,x,1\n")
        #expect(records(path, spec(.csv, label: "label")).records.first?.features == [2, 1])
        #expect(records(path, spec(.csv, label: "label", columns: ["a", "b"])).records.first?.features == [1, 2])
        var s = spec(.csv, label: "label")
        s.modelFeatureNames = ["a"]
        #expect(records(path, s).records.first?.features == [1], "the model's feature names pick columns by name")
        s.modelFeatureNames = ["a", "zzz"]
        #expect(records(path, s).records.first?.features == [2, 1], "names the header lacks: every other column")
        let labelled = records(path, spec(.csv, label: "label")).records.first
        #expect(labelled?.label == "cat")
        #expect(labelled?.id == "x")
    }

    @Test("carried columns as strings; one the header lacks stops the stream naming output.include_fields")
    func carriedColumns() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", "id,a,url\nx,1,\"http://e/1,2\"\ny,2,\n")
        var s = spec(.csv, columns: ["a"])
        s.carryFields = ["url", "a"]
        #expect(
            records(path, s).records.map(\.carried) == [
                [.string("http://e/1,2"), .string("1")], [.string(""), .string("2")]
            ])
        s.carryFields = ["title"]
        let e = drain(path, s).error as? QuernError
        #expect(
            e?.field == "output.include_fields" && e?.message.contains("\"title\"") == true, "\(String(describing: e))")
    }

    @Test func crlfLineEndings() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", "id,a\r\nr1,1\r\n\"r\r\n2\",2\r\nr3,3")
        let d = records(path, spec(.csv))
        #expect(d.records.map(\.id) == ["r1", "r\r\n2", "r3"])
        #expect(d.records.map(\.features) == [[1], [2], [3]])
        #expect(d.records.map(\.line) == [2, 3, 5])
    }

    @Test func withoutAnIDColumnIdsAreMemberAndLine() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", "a,b\n1,2\n\n3,4\n")
        #expect(records(path, spec(.csv, id: nil)).ids == ["t.csv:2", "t.csv:4"])
    }

    @Test func headerProblemsAreThrown() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", "x,y\n1,2\n")
        let noID = drain(path, spec(.csv))
        #expect(noID.items.isEmpty)
        #expect(noID.quernError?.code == .missingValue)
        #expect(noID.quernError?.field == "input.id_field")
        #expect(noID.quernError?.member == "t.csv")

        let noLabel = drain(path, spec(.csv, id: nil, label: "label"))
        #expect(noLabel.quernError?.code == .missingValue)
        #expect(noLabel.quernError?.field == "input.label_field")

        let noColumn = drain(path, spec(.csv, id: nil, columns: ["x", "z"]))
        #expect(noColumn.quernError?.code == .missingValue)
        #expect(noColumn.quernError?.field == "input.feature_columns")
        #expect(noColumn.quernError?.message.contains("\"z\"") == true)

        let badHeader = try tmp.write("u.csv", Array("id,".utf8) + [0xC3, 0x28] + Array("\nr,1\n".utf8))
        #expect(drain(badHeader, spec(.csv)).quernError?.code == .invalidUTF8)
    }

    @Test
    func byteOrderMarkBeforeTheHeader() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", [0xEF, 0xBB, 0xBF] + Array("id,a\nr1,1\n".utf8))
        let d = drain(path, spec(.csv))
        #expect(d.error == nil)
        #expect(d.ids == ["r1"])
    }

    @Test func invalidUTF8RowIsARecordFailure() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", Array("id,a\nr1,1\nr".utf8) + [0xED, 0xA0, 0x80] + Array(",2\nr3,3\n".utf8))
        let d = records(path, spec(.csv))
        #expect(d.codes == [nil, .invalidUTF8, nil])
        let lines = d.items.map { $0.record?.line ?? $0.failure?.line }
        #expect(lines == [2, 3, 4])
    }
}
