import Foundation
import Testing
import QuernCore
import QuernModels

/// The repository root, found from this file's path (Tests/QuernModelsTests/Support.swift).
let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A fresh directory under the system temp dir for one test. Tests write
/// `let tmp = try TempDir(); defer { tmp.remove() }` (no closure: Swift 6.3 can mix up
/// closures written inside `#expect` within another closure).
final class TempDir {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/quern-models-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw QuernError(.io, "mkdtemp failed: errno \(errno)") }
        path = String(cString: p)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

@discardableResult
func run(_ arguments: [String]) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
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

/// A safetensors file made by hand: 8-byte little-endian header length, header, data.
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    return out + h + data
}

func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func f32(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }

/// The QuernError a throwing call produces (nil, recorded as an issue, if it throws something else).
func quernError(_ body: () throws -> Void) -> QuernError? {
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
