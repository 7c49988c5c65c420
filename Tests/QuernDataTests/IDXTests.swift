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
}
