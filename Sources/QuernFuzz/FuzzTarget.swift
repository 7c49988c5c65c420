import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// One parser of untrusted bytes, wrapped for fuzzing: it must return for every input,
/// turning bad bytes into a `QuernError` a person can act on. A trap, a sanitizer report,
/// an `internal_error`, a broken invariant (`FuzzCheck`) or a hang is a finding.
public struct FuzzTarget: Sendable {
    public let name: String
    /// What the input bytes are.
    public let input: String
    public let run: @Sendable ([UInt8]) -> Void
}

/// Every harness, by name: `quern-fuzz NAME` runs one, `Tests/Fuzz/NAME/` holds its seeds.
public enum FuzzTargets {
    public static let all: [FuzzTarget] = ManifestFuzz.targets + RecordFuzz.targets + ModelFuzz.targets

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// The checks a harness makes on what a parser returned.
enum FuzzCheck {
    /// Runs a parse: success or a specific, actionable `QuernError` are both fine.
    static func handled<T>(_ what: String, _ body: () throws -> T) -> T? {
        do {
            return try body()
        } catch let e as QuernError {
            require(e.code != .internalError, "\(what) gave internal_error for hostile input: \(e.message)")
            require(!e.message.isEmpty, "\(what) gave an error without a message")
            return nil
        } catch {
            fail("\(what) threw \(type(of: error)) instead of a QuernError: \(error)")
        }
    }

    static func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
        if !condition() { fail(message()) }
    }

    static func fail(_ message: String) -> Never {
        // stderr, so the fuzzer's log keeps the reason next to the crashing input.
        try? Sys.writeAll(2, Array("quern-fuzz: \(message)\n".utf8))
        fatalError(message)
    }
}

/// A scratch directory for harnesses whose parser reads a path (mmap, model
/// directories): in /dev/shm when there is one, removed at exit.
final class FuzzScratch: @unchecked Sendable {
    static let shared = FuzzScratch()
    let path: String

    private init() {
        let base = Sys.isDirectory("/dev/shm") ? "/dev/shm" : (Sys.environment("TMPDIR") ?? "/tmp")
        path = Path.join(base, "quern-fuzz-\(getpid())")
        try? Sys.mkdirs(path)
        atexit { try? Sys.removeTree(FuzzScratch.shared.path) }
    }

    /// Writes `bytes` to `name` inside the scratch directory and returns its path.
    func file(_ name: String, _ bytes: [UInt8]) -> String {
        let p = Path.join(path, name)
        let parent = Path.dirname(p)
        if !Sys.isDirectory(parent) { try? Sys.mkdirs(parent) }
        do {
            try Sys.writeFile(p, bytes)
        } catch {
            FuzzCheck.fail("cannot write the scratch file \(p): \(error)")
        }
        return p
    }
}

/// Where the harnesses find the project's fixtures (a model to pair a fuzzed config
/// with): `QUERN_FIXTURES`, else `fixtures` under the working directory.
enum FuzzFixtures {
    static var root: String { Sys.environment("QUERN_FIXTURES") ?? "fixtures" }

    static func read(_ relative: String) -> [UInt8] {
        let p = Path.join(root, relative)
        do {
            return try Sys.readFile(p)
        } catch {
            FuzzCheck.fail("fixture \(p) is missing (run from the repository root or set QUERN_FIXTURES): \(error)")
        }
    }
}
