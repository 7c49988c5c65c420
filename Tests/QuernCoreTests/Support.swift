import Foundation
import QuernCore
import QuernTestSupport
import Testing

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
