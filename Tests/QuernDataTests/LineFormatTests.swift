import Foundation
import Testing
import QuernTestSupport
import QuernCore
import QuernData

@Suite("RecordStream: JSONL")
struct JSONLTests {
    static let mixed: [UInt8] = Array("""
    {"id":"a","features":[1,2.5,-3e2],"label":"x"}

       \t
    {"features":[4]}
    {"id":7,"features":[5,6]}
    {"id":"b","features":[1,
    {"id":"c","features":["x"]}
    {"id":"d","features":[1e39]}

    """.utf8) + Array(#"{"id":""#.utf8) + [0xFF, 0xFE] + Array(#"","features":[1]}"#.utf8) + Array("""

    {"id":"e","features":[0]}\r
    {"id":true,"features":[0]}
    [1,2]
    {"id":"f","features":[]}
    """.utf8)

    @Test func recordsAndFailuresInOrderWithPhysicalLineNumbers() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("data.jsonl", Self.mixed)
        let d = records(path, spec(.jsonl))
        #expect(d.items.count == 11)
        let lines = d.items.map { $0.record?.line ?? $0.failure?.line }
        #expect(lines == [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
        #expect(d.codes == [nil, .missingValue, nil, .invalidRecord, .invalidRecord, .nonFinite, .invalidUTF8, nil,
                            .invalidRecord, .invalidRecord, nil])
        #expect(d.ids == ["a", nil, "7", nil, "c", "d", nil, "e", nil, nil, "f"])
        let a = try #require(d.items[0].record)
        #expect(a.features == [1, 2.5, -300])
        #expect(a.member == "data.jsonl")
        #expect(a.label == nil, "labels are read only when the task wants them")
        #expect(d.items[2].record?.features == [5, 6])
        #expect(d.items[7].record?.features == [0], "a CRLF line ending is not part of the record")
        #expect(d.items[10].record?.features == [], "the last line needs no newline")
        for f in d.failures {
            #expect(f.member == "data.jsonl")
            #expect(f.error.line == f.line)
            #expect(f.error.member == "data.jsonl")
        }
        #expect(d.failures[0].error.message.contains("\"id\""))
    }

    @Test func withoutAnIDFieldIdsAreMemberAndLine() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("rows.jsonl", "{\"features\":[1]}\n\n{\"id\":\"ignored\",\"features\":[2]}\n")
        let d = records(path, spec(.jsonl, id: nil))
        #expect(d.ids == ["rows.jsonl:1", "rows.jsonl:3"])
        #expect(d.records.map(\.features) == [[1], [2]])
    }

    @Test func compressedPlainFilesAreOneMemberNamedWithoutTheSuffix() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("rows.jsonl", "{\"features\":[1]}\n{\"features\":[2]}\n")
        try shell("gzip -k rows.jsonl && zstd -q rows.jsonl -o rows.jsonl.zst && xz -k rows.jsonl && bzip2 -k rows.jsonl", cwd: tmp.path)
        for name in ["rows.jsonl.gz", "rows.jsonl.zst", "rows.jsonl.xz", "rows.jsonl.bz2"] {
            let d = records(tmp.path + "/" + name, spec(.jsonl, id: nil))
            #expect(d.ids == ["rows.jsonl:1", "rows.jsonl:2"], "\(name)")
            #expect(d.records.map(\.features) == [[1], [2]], "\(name)")
        }
    }

    @Test func featuresFromAnotherFieldOrFromNumericColumns() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("d.jsonl", """
        {"id":1,"vec":[1,2],"x":1,"y":2.5}
        {"id":2,"vec":[3],"x":1}
        {"id":3,"vec":"no","x":1,"y":"2"}
        {"id":4,"vec":[1e300],"x":1e300,"y":0}
        """)
        let byField = records(path, spec(.jsonl, featuresField: "vec"))
        #expect(byField.codes == [nil, nil, .missingValue, .nonFinite])
        #expect(byField.records.map(\.features) == [[1, 2], [3]])

        let byColumns = records(path, spec(.jsonl, columns: ["y", "x"]))
        #expect(byColumns.codes == [nil, .missingValue, .missingValue, .nonFinite])
        #expect(byColumns.records.first?.features == [2.5, 1])
        #expect(byColumns.failures.first?.error.message.contains("\"y\"") == true)
    }

    @Test func labelsAndTextWhenWanted() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("d.jsonl", """
        {"id":"a","features":[1],"label":3,"text":"hello \\"you\\""}
        {"id":"b","features":[1],"label":"cat","text":"x"}
        {"id":"c","features":[1],"text":"x"}
        {"id":"d","features":[1],"label":1.5,"text":"x"}
        {"id":"e","features":[1],"label":"y","text":5}
        """)
        let d = records(path, spec(.jsonl, text: "text", label: "label"))
        #expect(d.codes == [nil, nil, .missingValue, .missingValue, .missingValue])
        #expect(d.records.map(\.label) == ["3", "cat"])
        #expect(d.records.map(\.text) == ["hello \"you\"", "x"])
        #expect(d.ids == ["a", "b", "c", "d", "e"], "failures after the id is known carry it")
    }

    @Test func emptyFilesHaveNoRecords() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("empty.jsonl", "")
        try tmp.write("empty.csv", "")
        try tmp.write("blank.jsonl", "\n\n  \n")
        try shell("cp empty.jsonl e2.jsonl && gzip e2.jsonl && tar -cf empty.tar --files-from /dev/null", cwd: tmp.path)
        #expect(records(tmp.path + "/empty.jsonl", spec(.jsonl)).items.isEmpty)
        #expect(records(tmp.path + "/empty.csv", spec(.csv)).items.isEmpty)
        #expect(records(tmp.path + "/blank.jsonl", spec(.jsonl)).items.isEmpty)
        #expect(records(tmp.path + "/e2.jsonl.gz", spec(.jsonl)).items.isEmpty)
        #expect(records(tmp.path + "/empty.tar", spec(.jsonl)).items.isEmpty)
    }

    @Test func aMissingInputIsFileNotFound() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let d = drain(tmp.path + "/absent.jsonl", spec(.jsonl))
        #expect(d.quernError?.code == .fileNotFound)
    }

    @Test func progressReachesTheFileSize() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let text = String(repeating: "{\"id\":1,\"features\":[1]}\n", count: 1000)
        let path = try tmp.write("d.jsonl", text)
        let stream = try RecordStream(path: path, spec: spec(.jsonl))
        var n = 0
        while try stream.next() != nil { n += 1 }
        #expect(n == 1000)
        #expect(stream.progress.total == text.utf8.count)
        #expect(stream.progress.done == text.utf8.count)
        #expect(stream.decompressedBytes == text.utf8.count)
        #expect(stream.membersRead == 1)
    }
}

@Suite("RecordStream: CSV")
struct CSVTests {
    static let text = "id,text,a,b\n" +                 // 1
        "r1,hello,1,2\n" +                              // 2
        "\"r,2\",\"say \"\"hi\"\", ok\",3,4\n" +        // 3
        "r3,\"multi\nline\ntext\",5,6\n" +              // 4-6
        "\n" +                                          // 7
        "r4,short, 7 ,8\n" +                            // 8
        "r5,x,1\n" +                                    // 9: too few fields
        "r6,x,NaN,1\n" +                                // 10
        "r7,x,,1\n" +                                   // 11
        "r8,x,abc,1\n" +                                // 12
        ",x,1,1\n" +                                    // 13: no id
        "r9,\"a\"\"b\",-1e-3,2\n" +                     // 14
        "r10,x,inf,2\n" +                               // 15
        "r11,x,1,2,3\n" +                               // 16: too many fields
        "r12,bad\"quote,1,2\n"                          // 17: bare quote (last: it opens a quote)

    @Test func rfc4180QuotingAndPhysicalLineNumbers() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.csv", Self.text)
        let d = records(path, spec(.csv, text: "text"))
        let lines = d.items.map { $0.record?.line ?? $0.failure?.line }
        #expect(lines == [2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])
        #expect(d.codes == [nil, nil, nil, nil, .invalidRecord, .nonFinite, .missingValue, .invalidRecord, .missingValue,
                            nil, .nonFinite, .invalidRecord, .invalidRecord])
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

@Suite("RecordStream: TXT")
struct TextTests {
    @Test func oneRecordPerNonBlankLine() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("notes.txt", Array("hello, world\n\nsecond \"line\"\r\n  \n".utf8) + [0xC3, 0x28] + Array("\nlast é".utf8))
        var s = RecordSpec(format: .txt)
        s.wantsText = true
        let d = records(path, s)
        #expect(d.codes == [nil, nil, .invalidUTF8, nil])
        #expect(d.ids == ["notes.txt:1", "notes.txt:3", nil, "notes.txt:6"])
        #expect(d.records.map(\.text) == ["hello, world", "second \"line\"", "last é"])
        #expect(d.failures.first?.line == 5)
    }
}
