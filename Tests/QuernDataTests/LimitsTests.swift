import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

/// A JSONL line of exactly `length` bytes (without the newline).
func paddedLine(id: String, length: Int) -> String {
    let head = "{\"id\":\"\(id)\",\"features\":[1],\"pad\":\""
    let tail = "\"}"
    return head + String(repeating: "x", count: length - head.utf8.count - tail.utf8.count) + tail
}

@Suite("RecordStream: limits")
struct LimitsTests {
    @Test func aLineOverTheLimitIsAFailureAndTheNextLineStillDecodes() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let big = paddedLine(id: "big", length: 1 << 20)
        let text = "{\"id\":\"a\",\"features\":[1]}\n" + big + "\n{\"id\":\"c\",\"features\":[3]}\n" + big
        let path = try tmp.write("d.jsonl", text)
        try shell("gzip -k d.jsonl && tar -czf d.tar.gz d.jsonl", cwd: tmp.path)
        for p in [path, path + ".gz", tmp.path + "/d.tar.gz"] {
            let d = records(p, spec(.jsonl), limits: limits(maxLineBytes: 1024))
            #expect(d.ids == ["a", nil, "c", nil], "\(p)")
            #expect(d.codes == [nil, .lineTooLong, nil, .lineTooLong], "\(p)")
            #expect(d.failures.map(\.line) == [2, 4], "\(p)")
            // With the default limit the same lines are records.
            #expect(records(p, spec(.jsonl)).ids == ["a", "big", "c", "big"])
        }
    }

    @Test(arguments: [false, true])
    func linesOfExactlyTheLimitPassAcrossBlockBoundaries(_ compressed: Bool) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        // 1200 lines of 1024 bytes: 1.2 MB, so some lines straddle libarchive's blocks.
        let fits = (0..<1200).map { paddedLine(id: "f\($0)", length: 1024) }.joined(separator: "\n") + "\n"
        let over = (0..<1200).map { paddedLine(id: "o\($0)", length: 1025) }.joined(separator: "\n") + "\n"
        try tmp.write("fits.jsonl", fits)
        try tmp.write("over.jsonl", over)
        if compressed { try shell("gzip fits.jsonl over.jsonl", cwd: tmp.path) }
        let suffix = compressed ? ".gz" : ""
        let l = limits(maxLineBytes: 1024)
        let ok = records(tmp.path + "/fits.jsonl" + suffix, spec(.jsonl), limits: l)
        #expect(ok.records.count == 1200)
        #expect(ok.failures.isEmpty)
        #expect(ok.records.last?.id == "f1199")
        #expect(ok.records.map(\.line) == Array(1...1200))
        let bad = records(tmp.path + "/over.jsonl" + suffix, spec(.jsonl), limits: l)
        #expect(bad.records.isEmpty)
        #expect(bad.failures.count == 1200)
        #expect(bad.failures.map(\.line) == Array(1...1200))
    }

    @Test func aLongCSVRecordKeepsLaterLineNumbersRight() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let quoted = String(repeating: String(repeating: "y", count: 1000) + "\n", count: 1000)  // 1000 newlines
        let text = "id,text,a\nr1,x,1\nr2,\"" + quoted + "\",2\nr3,z,3\n"
        let path = try tmp.write("t.csv", text)
        let d = records(path, spec(.csv, text: "text"), limits: limits(maxLineBytes: 1024))
        #expect(d.ids == ["r1", nil, "r3"])
        #expect(d.codes == [nil, .lineTooLong, nil])
        let lines = d.items.map { $0.record?.line ?? $0.failure?.line }
        #expect(lines == [2, 3, 1004])
    }

    /// `count` × 8 MiB of zeros as concatenated gzip members (each about 1:1030).
    func zeroBomb(_ tmp: TempDir, count: Int) throws -> String {
        try shell(
            "head -c 8388608 /dev/zero | gzip -9 > one.gz && for i in $(seq \(count)); do cat one.gz; done > zeros.jsonl.gz && rm one.gz",
            cwd: tmp.path)
        return tmp.path + "/zeros.jsonl.gz"
    }

    @Test func aDecompressionBombIsThrown() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let bomb = try zeroBomb(tmp, count: 10)
        #expect(Sys.fileSize(path: bomb) < 100_000)
        let d = drain(bomb, spec(.jsonl))
        let e = try #require(d.quernError)
        #expect(e.code == .decompressionLimit)
        #expect(e.field == "limits.max_expansion_ratio")
        #expect(d.items.isEmpty)
    }

    @Test func maxInputBytesIsEnforced() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let bomb = try zeroBomb(tmp, count: 1)
        let d = drain(bomb, spec(.jsonl), limits: limits(maxInputBytes: 1 << 20))
        #expect(d.quernError?.code == .decompressionLimit)
        #expect(d.quernError?.field == "limits.max_input_bytes")

        // A plain file is limited too, and a file under the limit is fine.
        let text = String(repeating: "{\"id\":1,\"features\":[1]}\n", count: 100)
        let plain = try tmp.write("p.jsonl", text)
        #expect(drain(plain, spec(.jsonl), limits: limits(maxInputBytes: 1000)).quernError?.code == .decompressionLimit)
        #expect(records(plain, spec(.jsonl), limits: limits(maxInputBytes: text.utf8.count)).records.count == 100)
    }

    @Test func aRaisedRatioLetsTheSameInputThrough() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let bomb = try zeroBomb(tmp, count: 10)
        let d = records(bomb, spec(.jsonl), limits: limits(maxExpansionRatio: 1e6))
        // 80 MiB without a newline: one over-long line, never buffered whole.
        #expect(d.codes == [.lineTooLong])
    }

    /// 20000 JSONL records and their gzip (`gzip -n`: a plain 10-byte header).
    func gzipped(_ tmp: TempDir) throws -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        var text = ""
        for i in 0..<20000 {
            text += "{\"id\":\"r\(i)\",\"features\":[\(UInt32.random(in: 0...UInt32.max, using: &rng))]}\n"
        }
        try tmp.write("d.jsonl", text)
        try shell("gzip -n -k d.jsonl", cwd: tmp.path)
        return try Sys.readFile(tmp.path + "/d.jsonl.gz")
    }

    @Test func corruptAndTruncatedGzipAreThrown() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let gz = try gzipped(tmp)
        #expect(records(tmp.path + "/d.jsonl.gz", spec(.jsonl)).records.count == 20000)

        try tmp.write("cut.jsonl.gz", Array(gz[0..<(gz.count * 2 / 3)]))
        let cut = drain(tmp.path + "/cut.jsonl.gz", spec(.jsonl))
        #expect(cut.quernError?.code == .archiveCorrupt)
        #expect(cut.items.count < 20000)
        #expect(cut.failures.isEmpty)

        // The first deflate block header set to the reserved block type 3.
        var corrupt = gz
        corrupt[10] = 0xFF
        try tmp.write("bad.jsonl.gz", corrupt)
        let bad = drain(tmp.path + "/bad.jsonl.gz", spec(.jsonl))
        #expect(bad.quernError?.code == .archiveCorrupt)
        #expect(bad.items.isEmpty)

        // Only the trailer left: header and nothing else.
        try tmp.write("header.jsonl.gz", Array(gz.prefix(10)))
        #expect(drain(tmp.path + "/header.jsonl.gz", spec(.jsonl)).quernError?.code == .archiveCorrupt)
    }

    @Test
    func gzipWhoseChecksumDoesNotMatchIsThrown() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let gz = try gzipped(tmp)
        var badCRC = gz
        badCRC[gz.count - 8] ^= 0x01
        try tmp.write("crc.jsonl.gz", badCRC)
        let badCRCStream = drain(tmp.path + "/crc.jsonl.gz", spec(.jsonl))
        #expect(badCRCStream.quernError?.code == .archiveCorrupt)

        // Data bytes overwritten in the middle: `gzip -t` reports a CRC error; the stream
        // must fail too rather than yield records built from damaged bytes.
        var damaged = gz
        for i in (gz.count / 3)..<(gz.count / 3 + 64) { damaged[i] = 0xFF }
        try tmp.write("damaged.jsonl.gz", damaged)
        #expect(drain(tmp.path + "/damaged.jsonl.gz", spec(.jsonl)).quernError?.code == .archiveCorrupt)
    }
}

@Suite("label pre-passes: limits")
struct LabelPassLimitsTests {
    @Test("the IDX labels pass is held to the expansion limit: a bomb fails at once, not after reading it all")
    func idxLabelsBomb() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        // 64 MiB of zeros behind an IDX header for 3-D images (and a small labels member):
        // compresses about 1000x.
        try shell(
            "mkdir d && printf '\\000\\000\\010\\003\\000\\001\\000\\000\\000\\000\\100\\000\\000\\000\\100\\000' > d/train-images-idx3-ubyte"
                + " && head -c 67108864 /dev/zero >> d/train-images-idx3-ubyte"
                + " && printf '\\000\\000\\010\\001\\000\\000\\000\\001\\007' > d/train-labels-idx1-ubyte"
                + " && tar -czf bomb.tar.gz d", cwd: tmp.path)
        var s = spec(.idx, id: nil)
        s.wantsLabel = true
        var l = StreamLimits()
        l.ratioFloorBytes = 4 << 20
        let clock = SystemTime(), start = clock.monotonic()
        let e = quernError { _ = try RecordStream(path: tmp.path + "/bomb.tar.gz", spec: s, limits: l) }
        #expect(e?.code == .decompressionLimit, "\(String(describing: e))")
        #expect(clock.monotonic() - start < 2, "stopped within a few MB, not after 64 MiB")
    }
}
