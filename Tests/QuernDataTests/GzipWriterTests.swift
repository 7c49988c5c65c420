import Foundation
import QuernCore
import QuernTestSupport
import Testing

@testable import QuernData

/// Records of varied length and content, like result lines.
func sampleRecords(_ n: Int, seed: UInt64 = 42) -> [[UInt8]] {
    var state = seed
    func next() -> UInt64 {  // splitmix64: the same records on every run
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    return (0..<n).map { i in
        let width = Int(next() % 200)
        let noise = (0..<width).map { _ in "abcdefghij 'é😀-_"[Int(next() % 16)] }
        return Array(
            "{\"id\":\"r\(i)\",\"score\":\(Double(next() % 1000) / 1000),\"text\":\"\(String(noise))\"}\n".utf8)
    }
}

extension String {
    subscript(i: Int) -> Character { self[index(startIndex, offsetBy: i)] }
}

/// Writes `records` in one uninterrupted run and returns the file's bytes.
func uninterrupted(_ path: String, _ records: [[UInt8]], segmentBytes: Int, level: Int = 6) throws -> [UInt8] {
    let w = try ChunkedGzipWriter(path: path, level: level, segmentBytes: segmentBytes)
    for r in records { try w.append(r) }
    try w.finish()
    return try Sys.readFile(path)
}

@Suite("ChunkedGzipWriter")
struct GzipWriterTests {
    @Test(arguments: [16, 1000, 1 << 20])
    func outputDecompressesToTheInput(_ segmentBytes: Int) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let recs = sampleRecords(3000)
        let input = recs.flatMap { $0 }
        let path = tmp.path + "/out.jsonl.gz"
        let file = try uninterrupted(path, recs, segmentBytes: segmentBytes)
        #expect(Array(file.prefix(3)) == [0x1F, 0x8B, 8])
        #expect(try Zlib.gunzip(file) == input)
        #expect(try run(["gzip", "-dc", path]) == input)
        try run(["gzip", "-t", path])
        // Quern's own reader sees the same records.
        let d = records(path, RecordSpec(format: .jsonl, idField: "id"))
        #expect(d.records.count == 3000)
        #expect(d.records.last?.id == "r2999")
    }

    @Test func emptyOutputIsAValidGzipFile() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let path = tmp.path + "/empty.gz"
        let file = try uninterrupted(path, [], segmentBytes: 16)
        #expect(try Zlib.gunzip(file) == [])
        #expect(try run(["gzip", "-dc", path]) == [])
    }

    @Test func outputIsReproducible() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let recs = sampleRecords(500)
        let a = try uninterrupted(tmp.path + "/a.gz", recs, segmentBytes: 100)
        let b = try uninterrupted(tmp.path + "/b.gz", recs, segmentBytes: 100)
        #expect(a == b)
        #expect(a != (try uninterrupted(tmp.path + "/c.gz", recs, segmentBytes: 4096)))
    }

    @Test(arguments: [16, 100, 4096, 1 << 20], [0, 1, 37, 250, 499, 500])
    func resumingAtACheckpointGivesTheSameBytes(_ segmentBytes: Int, _ checkpointAt: Int) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let recs = sampleRecords(500)
        let expected = try uninterrupted(tmp.path + "/expected.gz", recs, segmentBytes: segmentBytes)
        let path = tmp.path + "/resumed.gz"

        // First run: write up to the checkpoint, note where the file stands, then keep
        // going for a while (work the crash loses) and die without finishing.
        var checkpoint: (GzipPosition, [UInt8])?
        do {
            let w = try ChunkedGzipWriter(path: path, segmentBytes: segmentBytes)
            for r in recs[0..<checkpointAt] { try w.append(r) }
            try w.sync()
            checkpoint = (w.position, w.pending)
            for r in recs[checkpointAt..<min(recs.count, checkpointAt + 120)] { try w.append(r) }
        }
        let (position, pending) = try #require(checkpoint)
        #expect(position.offset <= Sys.fileSize(path: path))
        // The checkpoint survives its JSON form.
        let restored = try GzipPosition(json: JSONParser.parse(JSONWriter.compact(position.json)))
        #expect(restored == position)

        // Second run: resume and write the rest.
        let w = try ChunkedGzipWriter(path: path, segmentBytes: segmentBytes, resume: (restored, pending))
        for r in recs[checkpointAt...] { try w.append(r) }
        try w.finish()
        let resumed = try Sys.readFile(path)
        #expect(resumed == expected)
        let all = recs.flatMap { $0 }
        #expect(try Zlib.gunzip(resumed) == all)
    }

    @Test func resumingTwiceAndFromAFileThatGrewPastTheCheckpoint() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let recs = sampleRecords(800)
        let expected = try uninterrupted(tmp.path + "/expected.gz", recs, segmentBytes: 64)
        let path = tmp.path + "/out.gz"
        var state: (GzipPosition, [UInt8])? = nil
        var done = 0
        for stop in [100, 333, 800] {
            let w = try ChunkedGzipWriter(path: path, segmentBytes: 64, resume: state)
            for r in recs[done..<stop] { try w.append(r) }
            if stop == recs.count {
                try w.finish()
            } else {
                state = (w.position, w.pending)
                // Segments written after the checkpoint are cut off by the next resume.
                for r in recs[stop..<min(recs.count, stop + 50)] { try w.append(r) }
                #expect(Sys.fileSize(path: path) > w.position.offset - 1)
            }
            done = stop
        }
        #expect(try Sys.readFile(path) == expected)
    }

    @Test func appendReportsWhenASegmentWasWritten() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let w = try ChunkedGzipWriter(path: tmp.path + "/x.gz", segmentBytes: 10)
        #expect(try w.append(Array("12345".utf8)) == false)
        #expect(w.pending.count == 5)
        #expect(w.position.offset == 10, "only the gzip header so far")
        #expect(try w.append(Array("67890".utf8)) == true)
        #expect(w.pending.isEmpty)
        #expect(w.position.length == 10)
        #expect(w.position.offset > 10)
        try w.finish()
        #expect(try Zlib.gunzip(Sys.readFile(tmp.path + "/x.gz")) == Array("1234567890".utf8))
    }

    @Test(arguments: [1, 6, 9])
    func compressionLevels(_ level: Int) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let recs = sampleRecords(300)
        let file = try uninterrupted(tmp.path + "/l.gz", recs, segmentBytes: 1000, level: level)
        let all = recs.flatMap { $0 }
        #expect(try Zlib.gunzip(file) == all)
    }
}

@Suite("Zlib")
struct ZlibTests {
    @Test func crc32KnownValue() {
        // CRC-32 of "123456789" is 0xCBF43926 (the standard check value).
        let crc = Array("123456789".utf8).withUnsafeBytes { Zlib.crc32(0, $0) }
        #expect(crc == 0xCBF4_3926)
    }

    @Test func gunzipReadsGzipMadeByTheGzipTool() throws {
        let text = String(repeating: "hello quern\n", count: 1000)
        let gz = try run(["gzip", "-c"], stdin: text)
        #expect(try Zlib.gunzip(gz) == Array(text.utf8))
        // Two members back to back are one stream.
        #expect(try Zlib.gunzip(gz + gz) == Array((text + text).utf8))
    }

    @Test func gunzipRefusesTruncatedData() throws {
        let gz = try run(["gzip", "-c"], stdin: String(repeating: "some text ", count: 5000))
        #expect(throws: QuernError.self) { try Zlib.gunzip(Array(gz.prefix(gz.count / 2))) }
    }
}

@Suite("ArchiveReader.layout")
struct LayoutTests {
    @Test(arguments: ["x.tar", "x.tar.gz", "x.TGZ", "x.tar.zst", "x.tzst", "x.tar.xz", "x.tar.bz2", "dir/x.zip"])
    func archives(_ name: String) {
        if case .archive = ArchiveReader.layout(for: name) {} else { Issue.record("\(name) is an archive") }
    }

    @Test(arguments: [
        ("a.jsonl", "a.jsonl"), ("dir/a.csv.gz", "a.csv"), ("a.jsonl.zst", "a.jsonl"), ("a.npy.xz", "a.npy"),
        ("a.txt.bz2", "a.txt"), ("data.gz", "data")
    ])
    func singleFiles(_ name: String, _ member: String) {
        guard case .single(let m) = ArchiveReader.layout(for: name) else {
            Issue.record("\(name) is a single file")
            return
        }
        #expect(m == member)
    }
}
