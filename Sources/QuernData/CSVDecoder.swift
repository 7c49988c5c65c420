import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// CSV with a header row (RFC 4180: quoted fields may hold commas, quotes and newlines).
final class CSVDecoder: LineDecoder {
    var header: [String]?
    var idCol: Int?, textCol: Int?, pairCol: Int?, labelCol: Int?
    var featureCols: [Int] = []
    var carryCols: [Int] = []

    /// Splits one CSV record into fields; nil if its quoting is malformed.
    static func fields(_ b: UnsafeRawBufferPointer) -> [String]? {
        var out: [String] = []
        var i = 0
        let n = b.count
        while true {
            if i < n && b[i] == 0x22 {
                var field: [UInt8] = []
                i += 1
                while true {
                    guard i < n else { return nil }  // unterminated quote
                    if b[i] == 0x22 {
                        if i + 1 < n && b[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                        i += 1
                        break
                    }
                    field.append(b[i])
                    i += 1
                }
                guard i == n || b[i] == 0x2C else { return nil }  // text after closing quote
                out.append(String(decoding: field, as: UTF8.self))
            } else {
                var j = i
                while j < n && b[j] != 0x2C {
                    if b[j] == 0x22 { return nil }  // bare quote inside an unquoted field
                    j += 1
                }
                out.append(String(decoding: UnsafeRawBufferPointer(rebasing: b[i..<j]), as: UTF8.self))
                i = j
            }
            if i >= n { return out }
            i += 1  // the comma
            if i == n { out.append(""); return out }
        }
    }

    func setHeader(_ names: [String]) throws {
        header = names
        func column(_ name: String?, _ field: String) throws -> Int? {
            guard let name else { return nil }
            guard let i = names.firstIndex(of: name) else {
                throw QuernError(
                    .missingValue,
                    "column \"\(name)\" is not in the header of \(member) (columns: \(names.prefix(8).joined(separator: ", "))\(names.count > 8 ? ", ..." : ""))",
                    field: field, member: member)
            }
            return i
        }
        idCol = try column(spec.idField, "input.id_field")
        textCol = spec.wantsText ? try column(spec.textField, "input.text_field") : nil
        pairCol = spec.wantsText ? try column(spec.pairField, "input.pair_field") : nil
        labelCol = spec.wantsLabel ? try column(spec.labelField, "input.label_field") : nil
        carryCols = try spec.carryFields.map { try column($0, "output.include_fields")! }
        if spec.wantsFeatures {
            if let cols = spec.featureColumns {
                featureCols = try cols.map { try column($0, "input.feature_columns")! }
            } else if let cols = spec.modelFeatureNames, Set(cols).isSubset(of: names) {
                featureCols = cols.map { names.firstIndex(of: $0)! }
            } else {
                let skip = Set([spec.idField, spec.labelField, spec.textField, spec.pairField].compactMap { $0 })
                featureCols = names.indices.filter { !skip.contains(names[$0]) }
            }
        }
    }

    override func decode(line bytes: UnsafeRawBufferPointer, number n: Int, index: Int) throws -> StreamItem? {
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard UTF8Check.isValid(p, bytes.count) else {
            if header == nil {
                throw QuernError(.invalidUTF8, "the CSV header of \(member) is not valid UTF-8", member: member)
            }
            return failure(index, n, .invalidUTF8, "CSV record is not valid UTF-8")
        }
        guard let fields = CSVDecoder.fields(bytes) else {
            if header == nil {
                throw QuernError(
                    .invalidRecord, "the CSV header of \(member) has malformed quoting", line: n, member: member)
            }
            return failure(
                index, n, .invalidRecord, "malformed CSV quoting (RFC 4180: a quote inside a field is written \"\")")
        }
        if header == nil {
            try setHeader(fields)
            return nil
        }
        return decode(fields, line: n, index: index)
    }

    func decode(_ fields: [String], line: Int, index: Int) -> StreamItem {
        let header = header!
        var id = fallbackID(line)
        if let c = idCol, c < fields.count, !fields[c].isEmpty { id = fields[c] }
        guard fields.count == header.count else {
            return failure(
                index, line, .invalidRecord, "row has \(fields.count) fields; the header has \(header.count)", id: id)
        }
        if idCol != nil && fields[idCol!].isEmpty {
            return failure(index, line, .missingValue, "the id column \"\(spec.idField!)\" is empty")
        }
        var record = Record(index: index, id: id, member: member, line: line)
        if let c = textCol { record.text = fields[c] }
        if let c = pairCol { record.pair = fields[c] }
        record.carried = carryCols.map { .string(fields[$0]) }
        if let c = labelCol {
            guard !fields[c].isEmpty else {
                return failure(index, line, .missingValue, "the label column \"\(header[c])\" is empty", id: id)
            }
            record.label = fields[c]
        }
        record.features.reserveCapacity(featureCols.count)
        for c in featureCols {
            let text = fields[c]
            guard let v = parseNumber(text) else {
                return failure(
                    index, line, text.isEmpty ? .missingValue : .invalidRecord,
                    text.isEmpty
                        ? "column \"\(header[c])\" is empty"
                        : "column \"\(header[c])\" is not a number: \"\(text.prefix(40))\"", id: id)
            }
            guard v.isFinite else {
                return failure(
                    index, line, .nonFinite, "column \"\(header[c])\" is \(text), not a finite number", id: id)
            }
            record.features.append(v)
        }
        return .record(record)
    }
}

/// Parses a decimal number the way `strtod` does, requiring the whole text (spaces
/// around it allowed) to be the number.
func parseNumber(_ text: String) -> Float? {
    let trimmed = text.trimmingSpaces
    if trimmed.isEmpty { return nil }
    return trimmed.withCString { p -> Float? in
        var end: UnsafeMutablePointer<CChar>?
        let v = strtod(p, &end)
        guard let end, end.pointee == 0, end != UnsafeMutablePointer(mutating: p) else { return nil }
        return Float(v)
    }
}
