import QuernCore
import QuernData

/// The record decoders, one harness per format, each fed one archive member. Every
/// input is decoded twice, as if the archive's blocks were the whole member and then a
/// few bytes long: the records and errors must be the same, since block boundaries are
/// where streaming decoders go wrong.
enum RecordFuzz {
    static let targets = [
        FuzzTarget(name: "csv", input: "a CSV member with a header row", run: csv),
        FuzzTarget(name: "jsonl", input: "a JSON Lines member", run: jsonl),
        FuzzTarget(name: "txt", input: "a text member, one record per line", run: txt),
        FuzzTarget(name: "npy", input: "a NumPy .npy member", run: npy),
        FuzzTarget(name: "idx", input: "an IDX (MNIST) member", run: idx),
        FuzzTarget(name: "png", input: "a PNG member", run: png),
        FuzzTarget(name: "archive", input: "a tar, zip or compressed archive of JSON Lines", run: archive)
    ]

    /// Small enough that a header claiming a huge record is refused quickly, large
    /// enough for every seed.
    static var limits: StreamLimits {
        var l = StreamLimits()
        l.maxLineBytes = 1 << 20
        l.maxInputBytes = 64 << 20
        return l
    }

    static func csv(_ bytes: [UInt8]) {
        var features = RecordSpec(format: .csv, idField: "id", labelField: "label")
        features.wantsFeatures = true
        features.wantsLabel = true
        var texts = RecordSpec(format: .csv, idField: "id", textField: "text")
        texts.pairField = "pair"
        texts.wantsText = true
        texts.carryFields = ["url", "text"]
        for spec in [features, texts] { decode(bytes, member: "data.csv", spec: spec) }
    }

    static func jsonl(_ bytes: [UInt8]) {
        var texts = RecordSpec(format: .jsonl, idField: "id", textField: "text", labelField: "label")
        texts.pairField = "pair"
        texts.wantsText = true
        texts.carryFields = ["title", "text", "meta"]
        texts.wantsLabel = true
        var vectors = RecordSpec(format: .jsonl, labelField: "label", featuresField: "features")
        vectors.wantsFeatures = true
        vectors.wantsLabel = true
        var columns = RecordSpec(format: .jsonl, featureColumns: ["a", "b"])
        columns.wantsFeatures = true
        for spec in [texts, vectors, columns] { decode(bytes, member: "data.jsonl", spec: spec) }
    }

    static func txt(_ bytes: [UInt8]) {
        var spec = RecordSpec(format: .txt)
        spec.wantsText = true
        decode(bytes, member: "data.txt", spec: spec)
    }

    static func npy(_ bytes: [UInt8]) {
        var spec = RecordSpec(format: .npy)
        spec.wantsFeatures = true
        spec.featureScale = 1 / 255
        decode(bytes, member: "x_train.npy", spec: spec)
        // As a labels member: the first pass reads it through the archive reader.
        spec.wantsLabel = true
        stream(file: "y_train.npy", bytes, spec: spec)
    }

    static func idx(_ bytes: [UInt8]) {
        var spec = RecordSpec(format: .idx)
        spec.wantsFeatures = true
        decode(bytes, member: "train-images-idx3-ubyte", spec: spec)
        spec.wantsLabel = true
        stream(file: "train-labels-idx1-ubyte", bytes, spec: spec)
    }

    static func png(_ bytes: [UInt8]) {
        var spec = RecordSpec(format: .png)
        spec.wantsFeatures = true
        spec.wantsLabel = true
        decode(bytes, member: "train/7/img.png", spec: spec)
        // Chunk CRCs stop almost every mutation at the door; with them made right, the
        // mutations reach the header checks, inflate and the scanline filters.
        let repaired = withValidCRCs(bytes)
        if repaired != bytes { decode(repaired, member: "train/7/img.png", spec: spec) }
    }

    /// `png` with each complete chunk's CRC recomputed.
    static func withValidCRCs(_ png: [UInt8]) -> [UInt8] {
        var out = png
        var at = 8
        while at + 12 <= out.count {
            let length = out[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) }
            guard length <= out.count - at - 12 else { break }
            let crc = out[(at + 4)..<(at + 8 + length)].withUnsafeBytes { Zlib.crc32(0, $0) }
            for k in 0..<4 { out[at + 8 + length + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
            at += 12 + length
        }
        return out
    }

    static func archive(_ bytes: [UInt8]) {
        var spec = RecordSpec(format: .jsonl, textField: "text")
        spec.wantsText = true
        stream(file: "input.tar", bytes, spec: spec)
    }

    /// Decodes one member at two block sizes and compares.
    static func decode(_ bytes: [UInt8], member: String, spec: RecordSpec) {
        let whole = items(bytes, member: member, spec: spec, chunk: max(1, bytes.count))
        let small = items(bytes, member: member, spec: spec, chunk: 1 + bytes.count % 7)
        FuzzCheck.require(
            whole == small,
            "\(member) decodes differently in blocks of \(1 + bytes.count % 7) bytes:\n\(whole.prefix(3))\n\(small.prefix(3))"
        )
    }

    /// The member's items (or the job-level error) as comparable text.
    static func items(_ bytes: [UInt8], member: String, spec: RecordSpec, chunk: Int) -> [String] {
        do {
            let items = try RecordStream.decode(
                member: member, bytes: bytes, spec: spec, limits: limits, chunkSize: chunk, maxItems: 100_000)
            return items.map(describe)
        } catch let e as QuernError {
            FuzzCheck.require(e.code != .internalError, "\(member): internal_error: \(e.message)")
            return ["error \(e.code.rawValue): \(e.message)"]
        } catch {
            FuzzCheck.fail("\(member): \(type(of: error)) instead of a QuernError: \(error)")
        }
    }

    /// A whole input file through the archive reader and the record stream.
    static func stream(file: String, _ bytes: [UInt8], spec: RecordSpec) {
        let path = FuzzScratch.shared.file(file, bytes)
        _ = FuzzCheck.handled("RecordStream(\(file))") {
            let stream = try RecordStream(path: path, spec: spec, limits: limits)
            var n = 0
            while n < 100_000, let item = try stream.next() {
                if case .failure(let f) = item {
                    FuzzCheck.require(f.error.code != .internalError, "\(file): internal_error: \(f.error.message)")
                }
                n += 1
            }
        }
    }

    static func describe(_ item: StreamItem) -> String {
        switch item {
        case .record(let r):
            FuzzCheck.require(!r.id.isEmpty, "a record without an id")
            let features = r.features.map { String($0.bitPattern, radix: 16) }.joined(separator: ",")
            return
                "record \(r.index) \(r.id) \(r.member):\(r.line) text=\(r.text ?? "-") pair=\(r.pair ?? "-") label=\(r.label ?? "-") [\(features)] carried=\(r.carried.map { String(decoding: JSONWriter.compact($0), as: UTF8.self) })"
        case .failure(let f):
            FuzzCheck.require(f.error.code != .internalError, "\(f.member): internal_error: \(f.error.message)")
            return
                "failure \(f.index) \(f.id ?? "-") \(f.member):\(f.line ?? -1) \(f.error.code.rawValue): \(f.error.message)"
        }
    }
}
