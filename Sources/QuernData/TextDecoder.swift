import QuernCore

/// Plain text: one record per non-blank line; the line is the text.
final class TextDecoder: LineDecoder {
    override func decode(line bytes: UnsafeRawBufferPointer, number n: Int, index: Int) -> StreamItem? {
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard UTF8Check.isValid(p, bytes.count) else {
            return failure(index, n, .invalidUTF8, "line is not valid UTF-8")
        }
        var r = Record(index: index, id: fallbackID(n), member: member, line: n)
        r.text = String(decoding: bytes, as: UTF8.self)
        return .record(r)
    }
}
