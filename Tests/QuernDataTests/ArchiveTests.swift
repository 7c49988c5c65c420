import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

/// Three members: two JSONL files (one in a subdirectory) and a text file.
func makeTree(_ tmp: TempDir) throws {
    try tmp.write("src/a.jsonl", "{\"id\":\"a1\",\"features\":[1]}\n{\"id\":\"a2\",\"features\":[2]}\n")
    try tmp.write("src/sub/b.jsonl", "{\"id\":\"b1\",\"features\":[3]}")
    try tmp.write("src/notes.txt", "not a record\n")
}

@Suite("RecordStream: archives")
struct ArchiveTests {
    static let builds: [(String, String)] = [
        ("x.tar", "tar -cf ../x.tar a.jsonl sub/b.jsonl notes.txt"),
        ("x.tar.gz", "tar -czf ../x.tar.gz a.jsonl sub/b.jsonl notes.txt"),
        ("x.tgz", "tar -czf ../x.tgz a.jsonl sub/b.jsonl notes.txt"),
        ("x.tar.zst", "tar -cf - a.jsonl sub/b.jsonl notes.txt | zstd -q -o ../x.tar.zst"),
        ("x.tar.xz", "tar -cJf ../x.tar.xz a.jsonl sub/b.jsonl notes.txt"),
        ("x.tar.bz2", "tar -cjf ../x.tar.bz2 a.jsonl sub/b.jsonl notes.txt"),
        ("x.zip", "zip -q -r ../x.zip a.jsonl sub notes.txt")
    ]

    @Test(arguments: builds)
    func membersMatchingTheGlobAreStreamedInOrder(_ name: String, _ command: String) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try makeTree(tmp)
        try shell(command, cwd: tmp.path + "/src")
        let path = tmp.path + "/" + name

        let d = records(path, spec(.jsonl, members: "*.jsonl"))
        #expect(d.ids == ["a1", "a2", "b1"], "\(name)")
        #expect(d.records.map(\.member) == ["a.jsonl", "a.jsonl", "sub/b.jsonl"], "\(name)")
        #expect(d.records.map(\.line) == [1, 2, 1])
        #expect(d.records.map(\.features) == [[1], [2], [3]])

        let sub = records(path, spec(.jsonl, members: "sub/*"))
        #expect(sub.ids == ["b1"], "\(name)")

        // Without a glob every regular member is read; the text file is not JSON.
        let all = records(path, spec(.jsonl))
        #expect(all.ids == ["a1", "a2", "b1", nil], "\(name)")
        #expect(all.failures.first?.member == "notes.txt")
        #expect(all.failures.first?.error.code == .invalidRecord)
    }

    @Test func linksAreSkippedWithAFailureAndTheStreamGoesOn() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("src/a.jsonl", "{\"id\":\"a1\",\"features\":[1]}\n{\"id\":\"a2\",\"features\":[2]}\n")
        try tmp.write("src/z.jsonl", "{\"id\":\"z1\",\"features\":[9]}\n")
        try shell(
            "ln -s a.jsonl link.jsonl && ln a.jsonl hard.jsonl && ln -s /etc/passwd abs.jsonl", cwd: tmp.path + "/src")
        try shell("tar -cf ../links.tar a.jsonl link.jsonl hard.jsonl abs.jsonl z.jsonl", cwd: tmp.path + "/src")
        let d = records(tmp.path + "/links.tar", spec(.jsonl))
        #expect(d.ids == ["a1", "a2", nil, nil, nil, "z1"])
        #expect(d.codes == [nil, nil, .unsafeMember, .unsafeMember, .unsafeMember, nil])
        #expect(d.failures.map(\.member) == ["link.jsonl", "hard.jsonl", "abs.jsonl"])
        let located = d.failures.allSatisfy { $0.line == nil && $0.error.member == $0.member }
        #expect(located)

        try shell("zip -q --symlinks ../links.zip a.jsonl link.jsonl z.jsonl", cwd: tmp.path + "/src")
        let z = records(tmp.path + "/links.zip", spec(.jsonl))
        #expect(z.ids == ["a1", "a2", nil, "z1"])
        #expect(z.codes == [nil, nil, .unsafeMember, nil])
    }

    @Test func unsafeNamesAndSpecialFilesAreSkipped() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let script = """
            import io, sys, tarfile
            def add(t, name, data=b"", kind=tarfile.REGTYPE):
                info = tarfile.TarInfo(name)
                info.type = kind
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            rec = lambda i: ('{"id":"%s","features":[1]}\\n' % i).encode()
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
                add(t, "ok.jsonl", rec("ok"))
                add(t, "../evil.jsonl", rec("evil"))
                add(t, "/abs.jsonl", rec("abs"))
                add(t, "a/../../up.jsonl", rec("up"))
                add(t, "dir", kind=tarfile.DIRTYPE)
                add(t, "fifo.jsonl", kind=tarfile.FIFOTYPE)
                add(t, "dev.jsonl", kind=tarfile.CHRTYPE)
                add(t, "a..b.jsonl", rec("dots-in-name"))
                add(t, "last.jsonl", rec("last"))
            """
        try tmp.write("make.py", script)
        try run(["python3", tmp.path + "/make.py", tmp.path + "/unsafe.tar"])
        let d = records(tmp.path + "/unsafe.tar", spec(.jsonl))
        #expect(d.ids == ["ok", nil, nil, nil, nil, nil, "dots-in-name", "last"])
        #expect(d.codes == [nil, .unsafeMember, .unsafeMember, .unsafeMember, .unsafeMember, .unsafeMember, nil, nil])
        #expect(
            d.failures.map(\.member) == ["../evil.jsonl", "/abs.jsonl", "a/../../up.jsonl", "fifo.jsonl", "dev.jsonl"])
        let message = d.failures.first?.error.message ?? ""
        #expect(message.contains("'..'"))
    }

    @Test func transformedTarNamesWithDotDot() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("src/x.jsonl", "{\"id\":\"x\",\"features\":[1]}\n")
        try tmp.write("src/y.jsonl", "{\"id\":\"y\",\"features\":[1]}\n")
        try shell("tar -cf ../t.tar --transform 's,^x,../x,' x.jsonl y.jsonl", cwd: tmp.path + "/src")
        let d = records(tmp.path + "/t.tar", spec(.jsonl, members: "*.jsonl"))
        #expect(d.codes == [.unsafeMember, nil])
        #expect(d.failures.first?.member == "../x.jsonl")
        #expect(d.ids == [nil, "y"])
    }

    @Test func corruptArchivesAreThrown() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        var rng = SystemRandomNumberGenerator()
        try tmp.write("garbage.tar", (0..<20000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        #expect(drain(tmp.path + "/garbage.tar", spec(.jsonl)).quernError?.code == .archiveCorrupt)
        try tmp.write("garbage.zip", (0..<20000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        #expect(drain(tmp.path + "/garbage.zip", spec(.jsonl)).quernError?.code == .archiveCorrupt)

        // A zip whose central directory is damaged: libarchive lists no members.
        try tmp.write("src/a.jsonl", "{\"id\":\"a\"}\n")
        try shell("zip -q ../cd.zip a.jsonl", cwd: tmp.path + "/src")
        var zip = try Sys.readFile(tmp.path + "/cd.zip")
        let cd = try #require(
            (0..<(zip.count - 4)).last { zip[$0..<($0 + 4)].elementsEqual([0x50, 0x4B, 0x01, 0x02]) })
        for i in cd..<(cd + 20) { zip[i] = 0xAA }
        try tmp.write("cd.zip", zip)
        let damaged = drain(tmp.path + "/cd.zip", spec(.jsonl)).quernError
        #expect(damaged?.code == .archiveCorrupt)
        #expect(damaged?.message.contains("central directory") == true)

        // A tar.gz cut in half.
        var lines = ""
        for i in 0..<20000 {
            lines += "{\"id\":\"r\(i)\",\"features\":[\(UInt32.random(in: 0...UInt32.max, using: &rng))]}\n"
        }
        try tmp.write("src/big.jsonl", lines)
        try shell("tar -czf ../big.tar.gz big.jsonl", cwd: tmp.path + "/src")
        let whole = try Sys.readFile(tmp.path + "/big.tar.gz")
        try tmp.write("cut.tar.gz", Array(whole[0..<(whole.count / 2)]))
        let cut = drain(tmp.path + "/cut.tar.gz", spec(.jsonl))
        #expect(cut.quernError?.code == .archiveCorrupt)
        #expect(cut.items.count < 20000)
        #expect(cut.failures.isEmpty)
    }
}

/// Threads of this process right now (Linux: /proc/self/task).
func threadCount() -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).count
}

@Suite("RecordStream: read-ahead")
struct ReadAheadTests {
    @Test func manySmallMembersKeepTheirOrder() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        var names: [String] = []
        for i in 0..<300 {
            let name = String(format: "part-%03d.%@", i, i % 3 == 0 ? "txt" : "jsonl")
            try tmp.write(
                "src/" + name,
                i % 7 == 0 ? "" : "{\"id\":\"m\(i)\",\"features\":[\(i)]}\n{\"id\":\"n\(i)\",\"features\":[\(i)]}")
            names.append(name)
        }
        try tmp.write("src/list", names.joined(separator: "\n") + "\n")
        try shell("tar -czf ../many.tar.gz -T list", cwd: tmp.path + "/src")
        let d = records(tmp.path + "/many.tar.gz", spec(.jsonl, members: "*.jsonl"))
        var expected: [String?] = []
        for i in 0..<300 where i % 3 != 0 && i % 7 != 0 { expected += ["m\(i)", "n\(i)"] }
        #expect(d.ids == expected)
        #expect(d.failures.isEmpty)
    }

    @Test func aDecoderThatStopsEarlyDoesNotDerailTheNextMember() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        // a.npy has 2 MB of trailing bytes after its rows; b.npy follows it.
        try tmp.write(
            "src/a.npy", npy(descr: "<f4", shape: "(2, 1)", data: f32([1, 2]) + [UInt8](repeating: 7, count: 2 << 20)))
        try tmp.write("src/b.npy", npy(descr: "<f4", shape: "(1, 1)", data: f32([3])))
        try shell("tar -cf ../n.tar a.npy b.npy", cwd: tmp.path + "/src")
        let d = records(tmp.path + "/n.tar", spec(.npy, id: nil))
        #expect(d.ids == ["a.npy:0", "a.npy:1", "b.npy:0"])
        #expect(d.records.map(\.features) == [[1], [2], [3]])
    }

    @Test(.timeLimit(.minutes(1)))
    func droppingAStreamEarlyStopsItsReader() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        // 8 MB of records: far more than the read-ahead holds.
        var text = ""
        for i in 0..<200_000 { text += "{\"id\":\"r\(i)\",\"features\":[1]}\n" }
        try tmp.write("src/big.jsonl", text)
        try tmp.write("src/more.jsonl", text)
        try shell("tar -cf ../big.tar big.jsonl more.jsonl", cwd: tmp.path + "/src")
        let before = threadCount()
        for _ in 0..<40 {
            let stream = try RecordStream(path: tmp.path + "/big.tar", spec: spec(.jsonl))
            let first = try stream.next()
            #expect(first?.id == "r0")
        }
        // Each dropped stream joined its reader thread: no 40 threads left behind
        // (the margin is for tests running in parallel).
        let after = threadCount()
        #expect(after - before < 20, "\(before) threads before, \(after) after")
    }

    @Test func aStreamThatThrewCanBeDropped() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("src/t.csv", "x,y\n" + String(repeating: "1,2\n", count: 500_000))
        try shell("tar -cf ../t.tar t.csv", cwd: tmp.path + "/src")
        for _ in 0..<20 {
            // The header has no id column: the decoder throws on the first call.
            #expect(drain(tmp.path + "/t.tar", spec(.csv)).quernError?.code == .missingValue)
        }
    }
}
