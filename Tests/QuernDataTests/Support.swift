import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

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
func drain(
    _ path: String, _ spec: RecordSpec, limits: StreamLimits = StreamLimits(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> Drained {
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
func records(
    _ path: String, _ spec: RecordSpec, limits: StreamLimits = StreamLimits(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> Drained {
    let d = drain(path, spec, limits: limits, sourceLocation: sourceLocation)
    if let e = d.error { Issue.record("the stream threw \(e)", sourceLocation: sourceLocation) }
    return d
}

/// A spec that wants features (as the tabular tasks do).
func spec(
    _ format: RecordFormat, id: String? = "id", members: String? = nil, text: String? = nil, label: String? = nil,
    featuresField: String? = nil, columns: [String]? = nil
) -> RecordSpec {
    var s = RecordSpec(
        format: format, members: members, idField: id, textField: text, labelField: label,
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

/// The digits test rows from the CSV fixture: id → (pixels 0…16, label).
func digitsRows() throws -> [String: ([Float], String)] {
    let lines = String(decoding: try Sys.readFile(repoRoot + "/fixtures/data/digits-test.csv"), as: UTF8.self)
        .split(separator: "\n").dropFirst()
    var out: [String: ([Float], String)] = [:]
    for line in lines {
        let cells = line.split(separator: ",").map(String.init)
        out[cells[0]] = (cells[1..<65].map { Float($0)! }, cells[65])
    }
    return out
}
