import Foundation
import Testing
import QuernCore

/// A fresh directory under the system temp dir for one test, removed afterwards.
/// A fresh directory under the system temp dir for one test. Tests write
/// `let tmp = try TempDir(); defer { tmp.remove() }` (no closure: Swift 6.3 can mix up
/// closures written inside `#expect` within another closure).
final class TempDir {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/quern-core-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw QuernError(.io, "mkdtemp failed: errno \(errno)") }
        path = String(cString: p)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs a command-line tool and returns its standard output; fails on a non-zero exit.
@discardableResult
func run(_ arguments: [String], cwd: String? = nil) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw QuernError(.internalError, "\(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return Array(data)
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The syntax error a document produces, or nil if it parses.
func syntaxError(_ document: [UInt8]) -> JSONSyntaxError? {
    do {
        _ = try JSONParser.parse(document)
        return nil
    } catch let e as JSONSyntaxError {
        return e
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

func syntaxError(_ document: String) -> JSONSyntaxError? { syntaxError(bytes(document)) }

/// `JSONParser.fields(of:wanted:)` on a byte array.
func fields(_ line: [UInt8], _ wanted: [String]) throws -> [JSONValue?] {
    try line.withUnsafeBytes { try JSONParser.fields(of: $0, wanted: wanted.map { Array($0.utf8) }) }
}

func fields(_ line: String, _ wanted: [String]) throws -> [JSONValue?] { try fields(bytes(line), wanted) }
