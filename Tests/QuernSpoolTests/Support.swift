import Foundation
import Testing
import QuernCore
import QuernSpool

/// A fresh directory under the system temp dir for one test. Tests write
/// `let tmp = try TempDir(); defer { tmp.remove() }` (no closure: Swift 6.3 can mix up
/// closures written inside `#expect` within another closure).
final class TempDir {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/quern-spool-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw QuernError(.io, "mkdtemp failed: errno \(errno)") }
        // Resolved, so paths compare equal to what PathPolicy and Spool report.
        path = try Sys.realpath(String(cString: p))
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let p = path + "/" + name
        try Sys.mkdirs(Path.dirname(p))
        try Sys.writeFile(p, Array(text.utf8))
        return p
    }
}

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

func text(_ path: String) throws -> String { String(decoding: try Sys.readFile(path), as: UTF8.self) }
