import QuernCore

/// JSON Lines: one object per line; blank lines are skipped.
final class JSONLDecoder: LineDecoder {
    let wanted: [[UInt8]]
    let idSlot: Int?, textSlot: Int?, pairSlot: Int?, labelSlot: Int?, featuresSlot: Int?
    let columnSlots: Range<Int>
    /// The slot of each carried field: its own, or the one a field of the same name
    /// already has (the text field may be carried too).
    let carrySlots: [Int]

    override init(spec: RecordSpec, member: String, lines: LineSplitter) {
        var keys: [String] = []
        func slot(_ name: String?, _ wanted: Bool) -> Int? {
            guard wanted, let name else { return nil }
            keys.append(name)
            return keys.count - 1
        }
        idSlot = slot(spec.idField, true)
        textSlot = slot(spec.textField, spec.wantsText)
        pairSlot = slot(spec.pairField, spec.wantsText)
        labelSlot = slot(spec.labelField, spec.wantsLabel)
        let columns = spec.wantsFeatures ? (spec.featureColumns ?? []) : []
        featuresSlot = slot(columns.isEmpty ? (spec.featuresField ?? "features") : nil, spec.wantsFeatures)
        let first = keys.count
        keys += columns
        columnSlots = first..<keys.count
        carrySlots = spec.carryFields.map { name in
            if let i = keys.firstIndex(of: name) { return i }
            keys.append(name)
            return keys.count - 1
        }
        wanted = keys.map { Array($0.utf8) }
        super.init(spec: spec, member: member, lines: lines)
    }

    override func decode(line bytes: UnsafeRawBufferPointer, number line: Int, index: Int) -> StreamItem? {
        let values: [JSONValue?]
        do {
            values = try JSONParser.fields(of: bytes, wanted: wanted)
        } catch let e as JSONSyntaxError {
            let code: QuernError.Code = e.message.contains("UTF-8") ? .invalidUTF8 : .invalidRecord
            return failure(index, line, code, "not valid JSON: \(e.message) at byte \(e.offset + 1)")
        } catch {
            return failure(index, line, .invalidRecord, "\(error)")
        }
        var id = fallbackID(line)
        if let s = idSlot {
            guard let v = values[s] else {
                return failure(index, line, .missingValue, "record has no \"\(spec.idField!)\" field (input.id_field)")
            }
            guard let str = idString(v) else {
                return failure(
                    index, line, .invalidRecord,
                    "\"\(spec.idField!)\" must be a string or an integer, not \(v.typeName)")
            }
            id = str
        }
        var record = Record(index: index, id: id, member: member, line: line)
        record.carried = carrySlots.map { values[$0] ?? .null }
        if spec.wantsObject {
            // The line parsed as a whole too: it was just scanned, so it is valid JSON.
            guard let object = (try? JSONParser.parse(Array(bytes)))?.objectValue else {
                return failure(index, line, .invalidRecord, "a record must be a JSON object", id: id)
            }
            record.object = object
        }
        if let s = textSlot {
            guard let v = values[s]?.stringValue else {
                let what = values[s].map { "is \($0.typeName), not a string" } ?? "is missing"
                return failure(index, line, .missingValue, "text field \"\(spec.textField!)\" \(what)", id: id)
            }
            record.text = v
        }
        if let s = pairSlot {
            guard let v = values[s]?.stringValue else {
                let what = values[s].map { "is \($0.typeName), not a string" } ?? "is missing"
                return failure(index, line, .missingValue, "pair text field \"\(spec.pairField!)\" \(what)", id: id)
            }
            record.pair = v
        }
        if let s = labelSlot {
            guard let v = values[s], let label = idString(v) else {
                return failure(
                    index, line, .missingValue,
                    "label field \"\(spec.labelField!)\" is missing or not a string/integer", id: id)
            }
            record.label = label
        }
        if let s = featuresSlot {
            guard let arr = values[s]?.arrayValue else {
                return failure(
                    index, line, .missingValue,
                    "features field \"\(wantedName(s))\" is missing or not an array of numbers", id: id)
            }
            record.features.reserveCapacity(arr.count)
            for (i, v) in arr.enumerated() {
                guard let d = v.doubleValue else {
                    return failure(
                        index, line, .invalidRecord,
                        "feature \(i) of \"\(wantedName(s))\" is \(v.typeName), not a number", id: id)
                }
                let f = Float(d)
                if !f.isFinite {
                    return failure(index, line, .nonFinite, "feature \(i) (\(d)) does not fit in a float32", id: id)
                }
                record.features.append(f)
            }
        }
        for s in columnSlots {
            guard let d = values[s]?.doubleValue else {
                return failure(
                    index, line, .missingValue, "feature field \"\(wantedName(s))\" is missing or not a number", id: id)
            }
            let f = Float(d)
            if !f.isFinite {
                return failure(
                    index, line, .nonFinite, "feature \"\(wantedName(s))\" (\(d)) does not fit in a float32", id: id)
            }
            record.features.append(f)
        }
        return .record(record)
    }

    func wantedName(_ slot: Int) -> String { String(decoding: wanted[slot], as: UTF8.self) }
}

/// Converts a JSON value to a record id: strings as they are, integers in decimal.
func idString(_ v: JSONValue) -> String? {
    switch v {
    case .string(let s): return s
    case .int(let i): return String(i)
    default: return nil
    }
}
