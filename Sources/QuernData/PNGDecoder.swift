import QuernCore

/// One PNG member is one record: 8-bit grayscale or RGB (an alpha channel is dropped),
/// not interlaced, decoded with zlib and PNG's five scanline filters; chunk CRCs are
/// checked. Features are channel-major (CHW), the layout `cnn` models take. The label is
/// the name of the member's directory.
final class PNGDecoder: MemberDecoder {
    let source: BlockSource
    let maxBytes: Int
    var done = false

    init(spec: RecordSpec, member: String, source: BlockSource, maxBytes: Int) {
        self.source = source
        self.maxBytes = maxBytes
        super.init(spec: spec, member: member)
    }

    override func next(index: Int) throws -> StreamItem? {
        guard !done else { return nil }
        done = true
        var data: [UInt8] = []
        while let b = try source.next() {
            data.append(contentsOf: b)
            if data.count > maxBytes {
                return failure(
                    index, nil, .lineTooLong, "\(member) is larger than limits.max_line_bytes (\(maxBytes) bytes)")
            }
        }
        var record = Record(index: index, id: member, member: member, line: 1)
        do {
            record.features = try Self.decode(data, maxBytes: maxBytes)
        } catch let e as QuernError {
            return failure(index, nil, e.code, "\(member): \(e.message)", id: member)
        }
        if spec.featureScale != 1 || spec.featureOffset != 0 {
            for i in record.features.indices {
                record.features[i] = record.features[i] * spec.featureScale + spec.featureOffset
            }
        }
        if spec.wantsLabel {
            let parts = member.split(separator: "/")
            guard parts.count >= 2 else {
                return failure(
                    index, nil, .missingValue,
                    "\(member) is not in a directory named after its label (e.g. train/7/\(member))", id: member)
            }
            record.label = String(parts[parts.count - 2])
        }
        return .record(record)
    }

    /// Pixels as floats, channel-major. An image whose header claims more pixel bytes than
    /// `maxBytes` (limits.max_line_bytes) is refused from its header, before anything is
    /// inflated or allocated by that size.
    static func decode(_ png: [UInt8], maxBytes: Int = 16 << 20) throws -> [Float] {
        func bad(_ why: String) -> QuernError { QuernError(.invalidRecord, "not a usable PNG: \(why)") }
        guard png.count >= 8, png[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
            throw bad("bad signature")
        }
        func be32(_ at: Int) -> Int { png[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var at = 8
        var width = 0, height = 0, colorType = -1
        var idat: [UInt8] = []
        var sawEnd = false
        while at + 12 <= png.count {
            let length = be32(at)
            guard length <= png.count - at - 12 else { throw bad("chunk runs past the end of the file") }
            let type = String(decoding: png[(at + 4)..<(at + 8)], as: UTF8.self)
            let body = (at + 8)..<(at + 8 + length)
            let crc = png[(at + 4)..<(at + 8 + length)].withUnsafeBytes { Zlib.crc32(0, $0) }
            guard crc == UInt32(be32(at + 8 + length)) else { throw bad("CRC mismatch in chunk \(type)") }
            switch type {
            case "IHDR":
                guard length == 13 else { throw bad("IHDR has \(length) bytes") }
                width = be32(body.lowerBound)
                height = be32(body.lowerBound + 4)
                let depth = png[body.lowerBound + 8]
                colorType = Int(png[body.lowerBound + 9])
                guard depth == 8 else { throw bad("bit depth \(depth); only 8-bit images are read") }
                guard [0, 2, 4, 6].contains(colorType) else {
                    throw bad("color type \(colorType) (palette images are not read; save as grayscale or RGB)")
                }
                guard png[body.lowerBound + 12] == 0 else {
                    throw bad("interlaced (Adam7) images are not read; save without interlacing")
                }
                guard width > 0, height > 0, width <= 1 << 14, height <= 1 << 14 else {
                    throw bad("size \(width)x\(height)")
                }
            case "IDAT": idat.append(contentsOf: png[body])
            case "IEND": sawEnd = true
            default: break
            }
            at = body.upperBound + 4
            if sawEnd { break }
        }
        guard colorType >= 0 else { throw bad("no IHDR chunk") }
        guard sawEnd else { throw bad("truncated (no IEND chunk)") }
        let channels = [0: 1, 2: 3, 4: 2, 6: 4][colorType]!
        guard width * height * channels <= maxBytes else {
            throw QuernError(
                .lineTooLong,
                "a \(width)x\(height) image of \(channels) channels holds \(width * height * channels) bytes, more than limits.max_line_bytes (\(maxBytes))"
            )
        }
        let stride = width * channels
        let raw = try Zlib.inflateZlib(idat, expected: height * (stride + 1))
        // Undo the per-scanline filters (None, Sub, Up, Average, Paeth).
        var pixels = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            let line = y * (stride + 1) + 1
            for x in 0..<stride {
                let a = x >= channels ? Int(pixels[y * stride + x - channels]) : 0
                let b = y > 0 ? Int(pixels[(y - 1) * stride + x]) : 0
                let c = x >= channels && y > 0 ? Int(pixels[(y - 1) * stride + x - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw bad("unknown scanline filter \(filter)")
                }
                pixels[y * stride + x] = UInt8(truncatingIfNeeded: Int(raw[line + x]) + predictor)
            }
        }
        let kept = colorType == 4 ? 1 : (colorType == 6 ? 3 : channels)  // alpha dropped
        var out = [Float](repeating: 0, count: kept * width * height)
        for ch in 0..<kept {
            for i in 0..<(width * height) { out[ch * width * height + i] = Float(pixels[i * channels + ch]) }
        }
        return out
    }
}
