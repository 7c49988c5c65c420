import Foundation
import QuernCore
import Testing

/// Helpers every unit-test target shares: temporary directories, running tools, byte
/// builders. (The end-to-end tests have their own, built around the quern binary.)

/// The repository root, found from this file's path (Tests/QuernTestSupport/TestSupport.swift).
public let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A fresh directory under the system temp dir for one test. Tests write
/// `let tmp = try TempDir(); defer { tmp.remove() }` (no closure: Swift 6.3 can mix up
/// closures written inside `#expect` within another closure).
public final class TempDir {
    /// Resolved (no symlinks), so paths compare equal to what PathPolicy and Spool report.
    public let path: String

    public init() throws {
        var template = Array((NSTemporaryDirectory() + "/quern-test-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw QuernError(.io, "mkdtemp failed: errno \(errno)") }
        path = try Sys.realpath(String(cString: p))
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes a file (creating parent directories) and returns its path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = path + "/" + name
        try Sys.mkdirs(Path.dirname(p))
        try Sys.writeFile(p, bytes)
        return p
    }

    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String { try write(name, Array(text.utf8)) }
}

/// Runs a tool (through /usr/bin/env) and returns its standard output; throws on a non-zero exit.
@discardableResult
public func run(_ arguments: [String], cwd: String? = nil, stdin: String? = nil) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe()
    process.standardOutput = out
    if let stdin {
        let input = Pipe()
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    } else {
        try process.run()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw QuernError(.internalError, "\(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return Array(data)
}

/// Runs a shell command line in `cwd`.
@discardableResult
public func shell(_ command: String, cwd: String) throws -> [UInt8] { try run(["sh", "-c", command], cwd: cwd) }

/// The QuernError a throwing call produces (nil, recorded as an issue, if it throws something else).
public func quernError(_ body: () throws -> Void) -> QuernError? {
    do {
        try body()
        return nil
    } catch let e as QuernError {
        return e
    } catch {
        Issue.record("expected a QuernError, got \(error)")
        return nil
    }
}

public func text(_ path: String) throws -> String { String(decoding: try Sys.readFile(path), as: UTF8.self) }
public func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

public func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
public func f32(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }
public func f64(_ values: [Double]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }

/// A clock tests move by hand: `now` and `monotonic` advance only through `advance`, so
/// leases, heartbeats and report timings are exact.
public final class ManualTime: TimeSource, @unchecked Sendable {
    private let lock = NSLock()
    private var seconds: Double

    public init(start: Double = 1_800_000_000) { seconds = start }

    public func now() -> Double { lock.withLock { seconds } }
    public func monotonic() -> Double { lock.withLock { seconds } }
    public func advance(_ by: Double) { lock.withLock { seconds += by } }
}
