import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("RecordStream: JSONL")
struct JSONLTests {
    static let mixed: [UInt8] =
        Array(
            """
            {"id":"a","features":[1,2.5,-3e2],"label":"x"}

               \t
            {"features":[4]}
            {"id":7,"features":[5,6]}
            {"id":"b","features":[1,
            {"id":"c","features":["x"]}
            {"id":"d","features":[1e39]}

            """.utf8) + Array(#"{"id":""#.utf8) + [0xFF, 0xFE] + Array(#"","features":[1]}"#.utf8)
        + Array(
            """

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
        #expect(
            d.codes == [
                nil, .missingValue, nil, .invalidRecord, .invalidRecord, .nonFinite, .invalidUTF8, nil,
                .invalidRecord, .invalidRecord, nil
            ])
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
        try shell(
            "gzip -k rows.jsonl && zstd -q rows.jsonl -o rows.jsonl.zst && xz -k rows.jsonl && bzip2 -k rows.jsonl",
            cwd: tmp.path)
        for name in ["rows.jsonl.gz", "rows.jsonl.zst", "rows.jsonl.xz", "rows.jsonl.bz2"] {
            let d = records(tmp.path + "/" + name, spec(.jsonl, id: nil))
            #expect(d.ids == ["rows.jsonl:1", "rows.jsonl:2"], "\(name)")
            #expect(d.records.map(\.features) == [[1], [2]], "\(name)")
        }
    }

    @Test func featuresFromAnotherFieldOrFromNumericColumns() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write(
            "d.jsonl",
            """
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
        let path = try tmp.write(
            "d.jsonl",
            """
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

    @Test("carried fields keep their JSON values, null when a record lacks one; the text field can be one")
    func carriedFields() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write(
            "d.jsonl",
            """
            {"id":"a","text":"x","title":"T","meta":{"n":[1,2]},"score":0.5}
            {"id":"b","text":"y","score":null}
            """)
        var s = spec(.jsonl, text: "text")
        s.wantsFeatures = false
        s.carryFields = ["title", "meta", "score", "text"]
        let d = records(path, s)
        #expect(d.records.count == 2)
        #expect(
            d.records[0].carried == [
                .string("T"), .object(JSONObject([("n", .array([.int(1), .int(2)]))])), .double(0.5), .string("x")
            ])
        #expect(d.records[1].carried == [.null, .null, .null, .string("y")])
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
