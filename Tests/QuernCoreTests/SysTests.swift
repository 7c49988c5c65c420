import Foundation
import Testing
import QuernTestSupport
import QuernCore

@Suite("Path")
struct PathTests {
    @Test func dirnameAndBasename() {
        #expect(Path.dirname("a/b/c.json") == "a/b")
        #expect(Path.dirname("c.json") == ".")
        #expect(Path.dirname("/c.json") == "/")
        #expect(Path.dirname("/srv/spool") == "/srv")
        #expect(Path.basename("a/b/c.json") == "c.json")
        #expect(Path.basename("c.json") == "c.json")
        #expect(Path.basename("/") == "")
    }

    @Test func join() {
        #expect(Path.join("a", "b") == "a/b")
        #expect(Path.join("a/", "b") == "a/b")
        #expect(Path.join("/srv/spool", "incoming/x.json") == "/srv/spool/incoming/x.json")
        #expect(Path.join("a", "/abs") == "/abs")
    }

    @Test func stem() {
        #expect(Path.stem("jobs/a.json") == "a")
        #expect(Path.stem("data.tar.gz") == "data.tar")
        #expect(Path.stem("noext") == "noext")
        #expect(Path.stem(".hidden") == ".hidden")
        #expect(Path.stem("dir.d/file") == "file")
    }

    @Test func normalizeAndAbsolute() {
        #expect(Path.normalize("/a//./b/") == "/a/b")
        #expect(Path.normalize("./a/./b") == "a/b")
        #expect(Path.normalize("//") == "/")
        #expect(Path.absolute("x/./y", relativeTo: "/base/") == "/base/x/y")
        #expect(Path.absolute("/abs/./p", relativeTo: "/base") == "/abs/p")
    }

    @Test func isInside() {
        #expect(Path.isInside("/a/b", "/a"))
        #expect(Path.isInside("/a", "/a"))
        #expect(Path.isInside("/a/b", "/a/"))
        #expect(!Path.isInside("/ab", "/a"))
        #expect(!Path.isInside("/a", "/a/b"))
        #expect(Path.isInside("/anything", "/"))
    }

    @Test func globCrossesSlashes() {
        #expect(Sys.globMatch("*.jsonl", "a.jsonl"))
        #expect(Sys.globMatch("*.jsonl", "dir/sub/a.jsonl"))
        #expect(!Sys.globMatch("*.jsonl", "a.jsonl.gz"))
        #expect(Sys.globMatch("part-??.csv", "part-01.csv"))
    }
}

@Suite("Sys files")
struct SysFileTests {
    @Test func writeFileAtomicallyThenReadFile() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let path = dir + "/state.json"
        try Sys.writeFileAtomically(path, bytes("first version, longer"))
        #expect(try Sys.readFile(path) == bytes("first version, longer"))
        try Sys.writeFileAtomically(path, bytes("v2"))
        #expect(try Sys.readFile(path) == bytes("v2"))
        // No temporary file is left next to it.
        #expect(try Sys.listDirectory(dir) == ["state.json"])
        // Permissions are the usual 0644 (minus umask), not a temp file's 0600.
        let st = try #require(Sys.fileStatus(path))
        #expect(st.st_mode & 0o600 == 0o600)
    }

    @Test func emptyAndLargeFiles() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        try Sys.writeFileAtomically(dir + "/empty", [])
        #expect(try Sys.readFile(dir + "/empty") == [])
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Sys.writeFileAtomically(dir + "/big", big)
        #expect(try Sys.readFile(dir + "/big") == big)
        let size = try #require(Sys.fileStatus(dir + "/big")).st_size
        #expect(Int(size) == big.count)
    }

    @Test func readFileRefusesFilesOverTheLimit() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        try Sys.writeFileAtomically(dir + "/f", [UInt8](repeating: 1, count: 100_000))
        #expect(try Sys.readFile(dir + "/f", limit: 100_000).count == 100_000)
        let e = #expect(throws: QuernError.self) { try Sys.readFile(dir + "/f", limit: 1000) }
        #expect(e?.code == .invalidValue)
    }

    @Test func missingFilesAndDirectoriesThrowWithErrno() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let e = #expect(throws: SystemError.self) { try Sys.readFile(dir + "/nope") }
        #expect(e?.errno == ENOENT)
        #expect(e?.asQuernError.code == .fileNotFound)
        #expect(throws: SystemError.self) { try Sys.writeFileAtomically(dir + "/no/such/dir/f", [1]) }
    }

    @Test func mkdirsListAndRemoveTree() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        try Sys.mkdirs(dir + "/a/b/c")
        try Sys.mkdirs(dir + "/a/b/c")
        #expect(Sys.isDirectory(dir + "/a/b/c"))
        try Sys.writeFileAtomically(dir + "/a/b/z", [1])
        try Sys.writeFileAtomically(dir + "/a/b/m", [1])
        #expect(try Sys.listDirectory(dir + "/a/b") == ["c", "m", "z"])
        #expect(Sys.isRegularFile(dir + "/a/b/z"))
        try Sys.removeTree(dir + "/a")
        #expect(!Sys.exists(dir + "/a"))
    }

    @Test func linkNoReplaceNeverReplaces() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        try Sys.writeFileAtomically(dir + "/old", bytes("old"))
        try Sys.writeFileAtomically(dir + "/new", bytes("new"))
        let e = #expect(throws: SystemError.self) { try Sys.linkNoReplace(dir + "/new", dir + "/old") }
        #expect(e?.errno == EEXIST)
        #expect(try Sys.readFile(dir + "/old") == bytes("old"))
        try Sys.linkNoReplace(dir + "/new", dir + "/fresh")
        #expect(try Sys.readFile(dir + "/fresh") == bytes("new"))
        #expect(!Sys.exists(dir + "/new"))
    }
}

@Suite("SHA256Stream")
struct SHA256Tests {
    @Test func knownDigests() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        // Verified with `printf 'abc' | sha256sum` (FIPS 180-2 test vector).
        try Sys.writeFileAtomically(dir + "/abc", bytes("abc"))
        let abc = try SHA256Stream.file(dir + "/abc")
        #expect(abc.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(abc.bytes == 3)
        try Sys.writeFileAtomically(dir + "/empty", [])
        let empty = try SHA256Stream.file(dir + "/empty")
        #expect(empty.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(empty.bytes == 0)
    }

    @Test func matchesSha256sumOnAFileLargerThanTheReadBuffer() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(3 << 20) + 12345).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let path = dir + "/random.bin"
        try Sys.writeFileAtomically(path, data)
        let output = String(decoding: try run(["sha256sum", path]), as: UTF8.self)
        let expected = String(output.prefix(64))
        let got = try SHA256Stream.file(path)
        #expect(got.sha256 == expected)
        #expect(got.bytes == data.count)
        // Incremental hashing in uneven pieces gives the same digest.
        var h = SHA256Stream()
        var i = 0
        for step in [1, 7, 4096, 1 << 20, 3] where i < data.count {
            let j = min(data.count, i + step)
            h.update(Array(data[i..<j]))
            i = j
        }
        h.update(Array(data[i...]))
        #expect(h.hex() == expected)
    }

    @Test func missingFileThrows() {
        #expect(throws: SystemError.self) { try SHA256Stream.file("/nonexistent/quern/file") }
    }
}
