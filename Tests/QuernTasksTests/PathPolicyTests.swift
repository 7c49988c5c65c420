import Foundation
import QuernCore
import QuernTestSupport
import Testing

@testable import QuernTasks

/// spool/ (the base), data/ (a root), outside/ (neither), with links between them.
func makeLayout(_ tmp: TempDir) throws -> PathPolicy {
    try tmp.write("spool/inputs/in-spool.csv", "id\n")
    try tmp.write("data/ok.csv", "id\n")
    try tmp.write("data/sub/deep.csv", "id\n")
    try tmp.write("data2/sibling.csv", "id\n")
    try tmp.write("outside/secret.csv", "id\n")
    let fm = FileManager.default
    try fm.createSymbolicLink(atPath: tmp.path + "/data/link-out.csv", withDestinationPath: "../outside/secret.csv")
    try fm.createSymbolicLink(atPath: tmp.path + "/data/link-in.csv", withDestinationPath: "sub/deep.csv")
    try fm.createSymbolicLink(atPath: tmp.path + "/spool/outdir", withDestinationPath: tmp.path + "/outside")
    try fm.createSymbolicLink(atPath: tmp.path + "/data-alias", withDestinationPath: tmp.path + "/data")
    return PathPolicy(base: tmp.path + "/spool", roots: [tmp.path + "/data"])
}

@Suite("PathPolicy")
struct PathPolicyTests {
    @Test func pathsInsideTheSpoolOrARootResolve() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let policy = try makeLayout(tmp)
        #expect(
            try policy.resolve("inputs/in-spool.csv", field: "input.path") == tmp.path + "/spool/inputs/in-spool.csv")
        #expect(
            try policy.resolve("./inputs//in-spool.csv", field: "input.path") == tmp.path + "/spool/inputs/in-spool.csv"
        )
        #expect(try policy.resolve(tmp.path + "/data/ok.csv", field: "input.path") == tmp.path + "/data/ok.csv")
        #expect(try policy.resolve(tmp.path + "/data/sub", field: "model") == tmp.path + "/data/sub")
        // A link that stays inside resolves to its target.
        #expect(
            try policy.resolve(tmp.path + "/data/link-in.csv", field: "input.path") == tmp.path + "/data/sub/deep.csv")
        // A root reached through a link is the same root.
        #expect(try policy.resolve(tmp.path + "/data-alias/ok.csv", field: "input.path") == tmp.path + "/data/ok.csv")
    }

    @Test(arguments: [
        "../outside/secret.csv", "inputs/../../outside/secret.csv", "..", "data/..", "a/../inputs/in-spool.csv"
    ])
    func dotDotIsAPathEscape(_ path: String) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let policy = try makeLayout(tmp)
        let e = quernError { _ = try policy.resolve(path, field: "input.path") }
        #expect(e?.code == .pathEscape)
        #expect(e?.field == "input.path")
    }

    @Test func absolutePathsOutsideAreAnEscape() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let policy = try makeLayout(tmp)
        let outside = quernError { _ = try policy.resolve(tmp.path + "/outside/secret.csv", field: "model") }
        #expect(outside?.code == .pathEscape)
        #expect(outside?.field == "model")
        let system = quernError { _ = try policy.resolve("/etc/passwd", field: "input.path") }
        #expect(system?.code == .pathEscape)
        // data2 shares a prefix with the root data but is not inside it.
        let sibling = quernError { _ = try policy.resolve(tmp.path + "/data2/sibling.csv", field: "input.path") }
        #expect(sibling?.code == .pathEscape)
    }

    @Test func symlinksPointingOutsideAreAnEscape() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let policy = try makeLayout(tmp)
        let link = quernError { _ = try policy.resolve(tmp.path + "/data/link-out.csv", field: "input.path") }
        #expect(link?.code == .pathEscape)
        let viaDirectory = quernError { _ = try policy.resolve("outdir/secret.csv", field: "input.path") }
        #expect(viaDirectory?.code == .pathEscape)
    }

    @Test func missingFilesAreFileNotFound() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let policy = try makeLayout(tmp)
        let e = quernError { _ = try policy.resolve(tmp.path + "/data/absent.csv", field: "input.path") }
        #expect(e?.code == .fileNotFound)
        #expect(e?.field == "input.path")
        let relative = quernError { _ = try policy.resolve("nope/x.csv", field: "model") }
        #expect(relative?.code == .fileNotFound)
        #expect(relative?.field == "model")
    }
}
