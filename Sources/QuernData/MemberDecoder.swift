import QuernCore

/// Decodes the records of one archive member. One subclass per record format.
class MemberDecoder {
    let spec: RecordSpec
    let member: String

    init(spec: RecordSpec, member: String) {
        self.spec = spec
        self.member = member
    }

    static func make(spec: RecordSpec, limits: StreamLimits, member: String, source: BlockSource) throws
        -> MemberDecoder
    {
        switch spec.format {
        case .jsonl, .openaiBatch:
            return JSONLDecoder(
                spec: spec, member: member,
                lines: LineSplitter(source: source, maxBytes: limits.maxLineBytes, quoteAware: false))
        case .txt:
            return TextDecoder(
                spec: spec, member: member,
                lines: LineSplitter(source: source, maxBytes: limits.maxLineBytes, quoteAware: false))
        case .csv:
            return CSVDecoder(
                spec: spec, member: member,
                lines: LineSplitter(source: source, maxBytes: limits.maxLineBytes, quoteAware: true))
        case .npy: return NPYDecoder(spec: spec, member: member, source: source, maxRowBytes: limits.maxLineBytes)
        case .idx: return IDXDecoder(spec: spec, member: member, source: source, maxRowBytes: limits.maxLineBytes)
        case .png: return PNGDecoder(spec: spec, member: member, source: source, maxBytes: limits.maxLineBytes)
        }
    }

    /// The next item, or nil when the member is exhausted.
    func next(index: Int) throws -> StreamItem? { nil }

    func failure(_ index: Int, _ line: Int?, _ code: QuernError.Code, _ message: String, id: String? = nil)
        -> StreamItem
    {
        .failure(
            RecordFailure(
                index: index, id: id, member: member, line: line,
                error: QuernError(code, message, line: line, member: member)))
    }

    func fallbackID(_ line: Int) -> String { "\(member):\(line)" }

    static func isBlank(_ b: UnsafeRawBufferPointer) -> Bool {
        b.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}

/// A format whose records are lines (or, for CSV, quote-aware lines). Subclasses
/// decode one line; blank lines and over-long lines are handled here.
class LineDecoder: MemberDecoder {
    var lines: LineSplitter

    init(spec: RecordSpec, member: String, lines: LineSplitter) {
        self.lines = lines
        super.init(spec: spec, member: member)
    }

    /// Decodes one non-blank line; nil means "not a record" (a CSV header).
    func decode(line bytes: UnsafeRawBufferPointer, number: Int, index: Int) throws -> StreamItem? { nil }

    override func next(index: Int) throws -> StreamItem? {
        while true {
            let item: StreamItem?? = try lines.next { item -> StreamItem? in
                switch item {
                case .tooLong(let n):
                    return failure(index, n, .lineTooLong, "line is longer than limits.max_line_bytes; it is skipped")
                case .line(let bytes, let n):
                    if MemberDecoder.isBlank(bytes) { return nil }
                    return try decode(line: bytes, number: n, index: index)
                }
            }
            guard let item else { return nil }  // end of member
            if let item { return item }  // blank line or header: keep going
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs: CSV cells and NumPy header values may
    /// be padded with them.
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
