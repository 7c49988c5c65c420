import Foundation
import Testing
import QuernCore
import QuernData

let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A fresh directory under the system temp dir for one test. Tests write
/// `let tmp = try TempDir(); defer { tmp.remove() }` (no closure: Swift 6.3 can mix up
/// closures written inside `#expect` within another closure).
final class TempDir {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/quern-data-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw QuernError(.io, "mkdtemp failed: errno \(errno)") }
        path = String(cString: p)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes a file (creating parent directories) and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = path + "/" + name
        try Sys.mkdirs(Path.dirname(p))
        try Sys.writeFile(p, bytes)
        return p
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String { try write(name, Array(text.utf8)) }
}

/// Runs a tool (through /usr/bin/env) and returns its standard output; throws on a non-zero exit.
@discardableResult
func run(_ arguments: [String], cwd: String? = nil, stdin: String? = nil) throws -> [UInt8] {
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
func shell(_ command: String, cwd: String) throws -> [UInt8] { try run(["sh", "-c", command], cwd: cwd) }

extension StreamItem {
    var record: Record? { if case .record(let r) = self { r } else { nil } }
    var failure: RecordFailure? { if case .failure(let f) = self { f } else { nil } }
    var index: Int {
        switch self {
        case .record(let r): r.index
        case .failure(let f): f.index
        }
    }
    /// The record's id, or the failure's.
    var id: String? {
        switch self {
        case .record(let r): r.id
        case .failure(let f): f.id
        }
    }
    var code: QuernError.Code? { failure?.error.code }
}

/// What a stream produced: its items, and the error that stopped it, if any.
struct Drained {
    var items: [StreamItem] = []
    var error: (any Error)?
    var quernError: QuernError? { error as? QuernError }
    var records: [Record] { items.compactMap(\.record) }
    var failures: [RecordFailure] { items.compactMap(\.failure) }
    var ids: [String?] { items.map(\.id) }
    var codes: [QuernError.Code?] { items.map(\.code) }
}

/// Reads a whole stream, checking that item indices count every item, failures included,
/// from 0 without gaps.
func drain(_ path: String, _ spec: RecordSpec, limits: StreamLimits = StreamLimits(),
           sourceLocation: SourceLocation = #_sourceLocation) -> Drained {
    var d = Drained()
    do {
        let stream = try RecordStream(path: path, spec: spec, limits: limits)
        while let item = try stream.next() { d.items.append(item) }
    } catch {
        d.error = error
    }
    let indices = d.items.map(\.index)
    #expect(indices == Array(0..<d.items.count), "item indices must be consecutive", sourceLocation: sourceLocation)
    return d
}

/// Reads a stream that must end cleanly.
func records(_ path: String, _ spec: RecordSpec, limits: StreamLimits = StreamLimits(),
             sourceLocation: SourceLocation = #_sourceLocation) -> Drained {
    let d = drain(path, spec, limits: limits, sourceLocation: sourceLocation)
    if let e = d.error { Issue.record("the stream threw \(e)", sourceLocation: sourceLocation) }
    return d
}

/// A spec that wants features (as the tabular tasks do).
func spec(_ format: RecordFormat, id: String? = "id", members: String? = nil, text: String? = nil, label: String? = nil,
          featuresField: String? = nil, columns: [String]? = nil) -> RecordSpec {
    var s = RecordSpec(format: format, members: members, idField: id, textField: text, labelField: label,
                       featuresField: featuresField, featureColumns: columns)
    s.wantsFeatures = true
    s.wantsText = text != nil
    s.wantsLabel = label != nil
    return s
}

func limits(maxLineBytes: Int? = nil, maxInputBytes: Int? = nil, maxExpansionRatio: Double? = nil) -> StreamLimits {
    var l = StreamLimits()
    if let maxLineBytes { l.maxLineBytes = maxLineBytes }
    if let maxInputBytes { l.maxInputBytes = maxInputBytes }
    if let maxExpansionRatio { l.maxExpansionRatio = maxExpansionRatio }
    return l
}

/// A little-endian `.npy` file: magic, version, header dict padded to 64 bytes, data.
func npy(descr: String, shape: String, data: [UInt8], major: UInt8 = 1, fortran: Bool = false) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let prefix = major == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
    let n = header.utf8.count
    if major == 1 {
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
    } else {
        out += [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
    }
    return out + Array(header.utf8) + data
}

func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func f32(_ values: [Float]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }
func f64(_ values: [Double]) -> [UInt8] { values.flatMap { le($0.bitPattern) } }
