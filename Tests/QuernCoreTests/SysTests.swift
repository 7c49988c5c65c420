import Foundation
import QuernCore
import QuernTestSupport
import Testing

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

    @Test func globCrossesSlashes() {
        #expect(Sys.globMatch("*.jsonl", "a.jsonl"))
        #expect(Sys.globMatch("*.jsonl", "dir/sub/a.jsonl"))
        #expect(!Sys.globMatch("*.jsonl", "a.jsonl.gz"))
        #expect(Sys.globMatch("part-??.csv", "part-01.csv"))
    }
}
