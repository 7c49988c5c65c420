import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("RecordStream: IDX")
struct IDXTests {
    @Test("images paired with their labels member whatever the member order, pixels as stored")
    func idx() throws {
        var s = spec(.idx, id: nil, members: "test-*")
        s.wantsLabel = true
        let d = records(repoRoot + "/fixtures/data/digits-idx.tar.gz", s)
        #expect(d.records.count == 450)
        #expect(d.failures.isEmpty)
        let rows = try digitsRows()
        for (i, r) in d.records.enumerated() {
            let expected = try #require(rows[String(format: "digit-%04d", i)])
            #expect(r.features == expected.0 && r.label == expected.1, "record \(i)")
        }
        #expect(d.records.first?.id == "test-images-idx3-ubyte:0")
    }

    @Test("scale applies; a missing labels member is a clear error; a bad magic too")
    func idxErrors() throws {
        var scaled = spec(.idx, id: nil, members: "train-images*")
        scaled.featureScale = 0.5
        let d = records(repoRoot + "/fixtures/data/digits-idx.tar.gz", scaled)
        #expect(d.records.count == 1347 && d.records.allSatisfy { $0.features.allSatisfy { $0 <= 8 } })
        var labelled = scaled
        labelled.wantsLabel = true
        let missing = drain(repoRoot + "/fixtures/data/digits-idx.tar.gz", labelled)
        #expect(missing.quernError?.code == .missingValue)
        #expect(missing.quernError?.message.contains("labels") == true)
        let tmp = try TempDir()
        defer { tmp.remove() }
        let bad = try tmp.write("x.idx", [0x01, 0x02, 0x08, 0x02, 0, 0, 0, 1])
        #expect(drain(bad, spec(.idx, id: nil)).quernError?.message.contains("magic") == true)
    }

    static func idx(_ type: UInt8, _ dims: [UInt32], _ payload: [UInt8]) -> [UInt8] {
        [0, 0, type, UInt8(dims.count)] + dims.flatMap { withUnsafeBytes(of: $0.bigEndian) { Array($0) } } + payload
    }

    @Test("labels of every IDX type read as numbers: signed 16-bit, and floats without a fraction as integers")
    func labelTypes() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let images = Self.idx(0x08, [3, 1, 1], [10, 20, 30])
        let int16 = Self.idx(0x0B, [3], [0xFF, 0xFF, 0x01, 0x2C, 0, 7])
        let float32 = Self.idx(
            0x0D, [3], [Float(2), 0.5, -1].flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian) { Array($0) } })
        for (labels, expected) in [(int16, ["-1", "300", "7"]), (float32, ["2", "0.5", "-1"])] {
            try Sys.mkdirs(tmp.path + "/in")
            _ = try tmp.write("in/train-images-idx3-ubyte", images)
            _ = try tmp.write("in/train-labels-idx1-ubyte", labels)
            _ = try shell("tar cf ../set.tar train-images-idx3-ubyte train-labels-idx1-ubyte", cwd: tmp.path + "/in")
            var s = spec(.idx, id: nil)
            s.wantsLabel = true
            #expect(records(tmp.path + "/set.tar", s).records.map(\.label) == expected)
        }
    }

    @Test("records without values are refused from the header: 2^32 - 1 images of 0x0 would stream forever")
    func emptyRecordsAreRefused() throws {
        let bytes = Self.idx(0x08, [0xFFFF_FFFF, 0, 5], [])
        let e = quernError {
            _ = try RecordStream.decode(member: "x-idx3-ubyte", bytes: bytes, spec: spec(.idx, id: nil))
        }
        #expect(e?.code == .invalidRecord)
        #expect(e?.message.contains("no values") == true)
    }
}
