import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("RecordStream: NPY")
struct NPYTests {
    @Test func float32Matrix() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("m.npy", npy(descr: "<f4", shape: "(3, 2)", data: f32([1, 2, 3.5, -4, 0, 1e-3])))
        let d = records(path, spec(.npy, id: nil))
        #expect(d.ids == ["m.npy:0", "m.npy:1", "m.npy:2"])
        #expect(d.records.map(\.features) == [[1, 2], [3.5, -4], [0, 1e-3]])
        #expect(d.records.map(\.member) == ["m.npy", "m.npy", "m.npy"])
    }

    @Test func float64AndHigherDimensions() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write(
            "d.npy", npy(descr: "<f8", shape: "(2, 2, 2)", data: f64([0.5, -1, 2, 3, 1e10, -0.25, 7, 8])))
        let d = records(path, spec(.npy, id: nil))
        #expect(d.records.map(\.features) == [[0.5, -1, 2, 3], [1e10, -0.25, 7, 8]])
    }

    @Test func unsignedBytesAndOneDimensionalArrays() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("u.npy", npy(descr: "|u1", shape: "(4,)", data: [0, 1, 128, 255]))
        let d = records(path, spec(.npy, id: nil))
        #expect(d.records.map(\.features) == [[0], [1], [128], [255]])
        let m = try tmp.write("u2.npy", npy(descr: "|u1", shape: "(2, 3)", data: [1, 2, 3, 4, 5, 6]))
        #expect(records(m, spec(.npy, id: nil)).records.map(\.features) == [[1, 2, 3], [4, 5, 6]])
    }

    @Test func version2HeaderAndSignedIntegers() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let data = le(Int32(-5)) + le(Int32(7)) + le(Int32(Int32.max)) + le(Int32(0))
        let path = try tmp.write("i.npy", npy(descr: "<i4", shape: "(2, 2)", data: data, major: 2))
        #expect(records(path, spec(.npy, id: nil)).records.map(\.features) == [[-5, 7], [Float(Int32.max), 0]])
    }

    @Test func nonFiniteRowsAreFailuresAndTheStreamGoesOn() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("n.npy", npy(descr: "<f4", shape: "(3, 2)", data: f32([1, 2, .nan, 0, 5, 6])))
        let d = records(path, spec(.npy, id: nil))
        #expect(d.codes == [nil, .nonFinite, nil])
        #expect(d.ids == ["n.npy:0", "n.npy:1", "n.npy:2"])
    }

    @Test func aTruncatedFileIsThrownAfterTheRowsItHas() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = try tmp.write("t.npy", npy(descr: "<f4", shape: "(3, 2)", data: f32([1, 2, 3, 4, 5])))
        let d = drain(path, spec(.npy, id: nil))
        #expect(d.records.map(\.features) == [[1, 2], [3, 4]])
        #expect(d.quernError?.code == .archiveCorrupt)
        #expect(d.quernError?.member == "t.npy")

        let headerOnly = try tmp.write("h.npy", Array(npy(descr: "<f4", shape: "(3, 2)", data: []).prefix(30)))
        #expect(drain(headerOnly, spec(.npy, id: nil)).error != nil)
    }

    @Test func unusableHeadersAreThrown() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let fortran = try tmp.write("f.npy", npy(descr: "<f4", shape: "(1, 2)", data: f32([1, 2]), fortran: true))
        #expect(drain(fortran, spec(.npy, id: nil)).quernError != nil)
        let complex = try tmp.write("c.npy", npy(descr: "<c8", shape: "(1, 1)", data: f32([1, 2])))
        #expect(drain(complex, spec(.npy, id: nil)).quernError != nil)
        let notNPY = try tmp.write("x.npy", "{\"id\":1}\n")
        #expect(drain(notNPY, spec(.npy, id: nil)).quernError != nil)
    }

    @Test
    func hugeShapesAreRefusedNotACrash() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        for shape in ["(1, 4294967296, 4294967296)", "(2, 4611686018427387904)", "(99999999999999999999, 2)"] {
            let path = try tmp.write("o.npy", npy(descr: "<f8", shape: shape, data: f64([1, 2])))
            #expect(drain(path, spec(.npy, id: nil)).quernError != nil, "\(shape)")
        }
    }

    @Test func npyMembersOfATarArchive() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("src/a.npy", npy(descr: "<f4", shape: "(2, 1)", data: f32([1, 2])))
        try tmp.write("src/b.npy", npy(descr: "<f4", shape: "(1, 1)", data: f32([3])))
        try shell("tar -czf ../n.tar.gz a.npy b.npy", cwd: tmp.path + "/src")
        let d = records(tmp.path + "/n.tar.gz", spec(.npy, id: nil, members: "*.npy"))
        #expect(d.ids == ["a.npy:0", "a.npy:1", "b.npy:0"])
        #expect(d.records.map(\.features) == [[1], [2], [3]])
    }

    @Test func theDigitsFixtureMatchesItsJSONLTwin() throws {
        let n = records(repoRoot + "/fixtures/data/digits-test.npy", spec(.npy, id: nil))
        let j = records(repoRoot + "/fixtures/data/digits-test.jsonl", spec(.jsonl, label: "label"))
        #expect(n.records.count == 450)
        #expect(j.records.count == 450)
        #expect(n.records.map(\.features) == j.records.map(\.features))
        #expect(n.records.first?.features.count == 64)
        #expect(n.records.last?.id == "digits-test.npy:449")
    }
}

@Suite("RecordStream: labelled NPY pairs")
struct NPYLabelTests {
    @Test("x_train.npy rows take their labels from y_train.npy, whatever the member order")
    func pairs() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try Sys.mkdirs(tmp.path + "/d")
        try Sys.writeFile(
            tmp.path + "/d/y_train.npy",
            npy(descr: "<i8", shape: "(3,)", data: le(Int64(7)) + le(Int64(0)) + le(Int64(3))))
        try Sys.writeFile(
            tmp.path + "/d/x_train.npy", npy(descr: "<f4", shape: "(3, 2)", data: f32([1, 2, 3, 4, 5, 6])))
        try run(["tar", "-czf", tmp.path + "/a.tar.gz", "-C", tmp.path + "/d", "y_train.npy", "x_train.npy"])
        var s = spec(.npy, id: nil)
        s.wantsLabel = true
        let d = records(tmp.path + "/a.tar.gz", s)
        #expect(d.records.map(\.features) == [[1, 2], [3, 4], [5, 6]])
        #expect(d.records.map(\.label) == ["7", "0", "3"])
        // Without labels wanted, the 1-D array is ordinary records again.
        #expect(records(tmp.path + "/a.tar.gz", spec(.npy, id: nil)).records.count == 6)
        // A missing pair is a clear error.
        try run(["tar", "-czf", tmp.path + "/b.tar.gz", "-C", tmp.path + "/d", "x_train.npy"])
        let missing = drain(tmp.path + "/b.tar.gz", s)
        #expect(missing.quernError?.code == .missingValue)
    }

    @Test("rows without values are refused from the header: (10^18, 0) would stream forever")
    func emptyRowsAreRefused() throws {
        var s = RecordSpec(format: .npy)
        s.wantsFeatures = true
        let bytes = npy(descr: "<f4", shape: "(1000000000000000000, 0)", data: [])
        let e = quernError { _ = try RecordStream.decode(member: "x.npy", bytes: bytes, spec: s) }
        #expect(e?.code == .invalidRecord)
        #expect(e?.message.contains("no values") == true)
        // No rows of nothing is simply no records.
        #expect(
            try RecordStream.decode(member: "x.npy", bytes: npy(descr: "<f4", shape: "(0, 0)", data: []), spec: s)
                .isEmpty)
    }

    @Test("a member decodes the same whatever the size of the archive's blocks")
    func blockBoundaries() throws {
        var s = RecordSpec(format: .npy)
        s.wantsFeatures = true
        let bytes = npy(descr: "<f4", shape: "(3, 2)", data: f32([1, 2, 3.5, -4, 0, 1e-3]))
        let whole = try RecordStream.decode(member: "m.npy", bytes: bytes, spec: s).compactMap(\.record)
        for chunk in [1, 3, 7, 64] {
            let pieces = try RecordStream.decode(member: "m.npy", bytes: bytes, spec: s, chunkSize: chunk)
            #expect(pieces.compactMap(\.record).map(\.features) == whole.map(\.features))
        }
        #expect(whole.map(\.features) == [[1, 2], [3.5, -4], [0, 1e-3]])
    }
}
