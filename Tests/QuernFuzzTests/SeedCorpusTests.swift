import QuernCore
import QuernFuzz
import Testing

/// The seed corpus and past findings of every harness, replayed in the normal test run:
/// a finding fixed once stays fixed, and a harness without seeds is a gap.
@Suite struct SeedCorpusTests {
    static let root = "Tests/Fuzz"

    @Test(arguments: FuzzTargets.all.map(\.name))
    func seedsAreHandled(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let dir = Path.join(Self.root, name)
        let files = try Sys.listDirectory(dir).sorted()
        #expect(files.count >= 3, "\(dir) needs seeds")
        for file in files { target.run(try Sys.readFile(Path.join(dir, file), limit: 1 << 24)) }
    }

    @Test func everySeedDirectoryHasAHarness() throws {
        let dirs = try Sys.listDirectory(Self.root).filter { Sys.isDirectory(Path.join(Self.root, $0)) }
        for dir in dirs { #expect(FuzzTargets.named(dir) != nil, "Tests/Fuzz/\(dir) has no harness") }
    }
}
