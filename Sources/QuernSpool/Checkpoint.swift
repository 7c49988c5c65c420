import Foundation
import QuernCore
import QuernData

struct Counts: Equatable {
    var succeeded = 0
    var failed = 0
}

/// The resume point of a job: how many stream items are fully written, where each
/// output file stands, the output bytes not yet compressed, and the task's totals.
struct Checkpoint {
    var consumed: Int
    var resumes: Int
    var counts: Counts
    var results: GzipPosition
    var resultsPending: [UInt8]
    var errors: GzipPosition
    var errorsPending: [UInt8]
    var csvHeader: [String]?
    var taskState: JSONValue
    /// `output.format: npy`: where the vector data stands, and the vectors' length.
    var vectors: (GzipPosition, [UInt8])? = nil
    var vectorDimension: Int? = nil
    /// Result lines written (more than `counts.succeeded` when a record gives several).
    var lines: Int? = nil

    func save(_ path: String) throws {
        var o = JSONObject()
        o["version"] = 1
        o["consumed"] = .int(Int64(consumed))
        o["resumes"] = .int(Int64(resumes))
        o["succeeded"] = .int(Int64(counts.succeeded))
        o["failed"] = .int(Int64(counts.failed))
        o["results"] = results.json
        o["results_pending"] = .string(Data(resultsPending).base64EncodedString())
        o["errors"] = errors.json
        o["errors_pending"] = .string(Data(errorsPending).base64EncodedString())
        if let h = csvHeader { o["csv_header"] = .array(h.map { .string($0) }) }
        o["task"] = taskState
        if let lines { o["lines"] = .int(Int64(lines)) }
        if let (position, pending) = vectors {
            o["vectors"] = position.json
            o["vectors_pending"] = .string(Data(pending).base64EncodedString())
            o["vector_dimension"] = vectorDimension.map { .int(Int64($0)) } ?? .null
        }
        try Sys.writeFileAtomically(path, JSONWriter.compact(.object(o)), durability: .content)
    }

    static func load(_ path: String) throws -> Checkpoint {
        let bad = QuernError(
            .internalError, "checkpoint \(path) is unreadable; delete it to restart the job from the beginning")
        guard let o = try JSONParser.parse(Sys.readFile(path)).objectValue,
            let consumed = o["consumed"]?.intValue, let results = o["results"], let errors = o["errors"],
            let rp = o["results_pending"]?.stringValue.flatMap({ Data(base64Encoded: $0) }),
            let ep = o["errors_pending"]?.stringValue.flatMap({ Data(base64Encoded: $0) })
        else { throw bad }
        return Checkpoint(
            consumed: Int(consumed), resumes: Int(o["resumes"]?.intValue ?? 0),
            counts: Counts(succeeded: Int(o["succeeded"]?.intValue ?? 0), failed: Int(o["failed"]?.intValue ?? 0)),
            results: try GzipPosition(json: results), resultsPending: [UInt8](rp),
            errors: try GzipPosition(json: errors), errorsPending: [UInt8](ep),
            csvHeader: o["csv_header"]?.arrayValue?.compactMap(\.stringValue), taskState: o["task"] ?? .null,
            vectors: try o["vectors"].map {
                (
                    try GzipPosition(json: $0),
                    [UInt8](o["vectors_pending"]?.stringValue.flatMap { Data(base64Encoded: $0) } ?? Data())
                )
            },
            vectorDimension: o["vector_dimension"]?.intValue.map(Int.init),
            lines: o["lines"]?.intValue.map(Int.init))
    }
}
