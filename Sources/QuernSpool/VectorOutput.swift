import QuernCore
import QuernData
import QuernTasks

#if canImport(Glibc)
    import Glibc
#endif

/// `output.format: npy` (tasks whose rows are vectors): the vectors go to `results.npy.gz` and each result
/// line keeps the record's id, its `row` in that array and, for int8, its `scale`
/// (vector ≈ int8 row × scale). While the job runs the vectors are a gzip of raw rows
/// (resumable like the other outputs); at the end one gzip member holding the NPY
/// header, which needs the row count, goes in front of it: a multi-member gzip, which
/// gzip, zlib and Python's gzip module read as one stream.
final class VectorOutput {
    static let name = "results.npy.gz"
    let dtype: Manifest.VectorType
    let data: ChunkedGzipWriter
    private(set) var dimension: Int?
    /// `output.ranges`: each dimension's minimum and maximum (calibrated int8 / uint8).
    let ranges: (min: [Float], max: [Float])?

    init(
        path: String, level: Int, dtype: Manifest.VectorType, resume: (GzipPosition, [UInt8])?, dimension: Int?,
        ranges: (min: [Float], max: [Float])? = nil
    ) throws {
        self.dtype = dtype
        self.dimension = dimension
        self.ranges = ranges
        data = try ChunkedGzipWriter(path: path, level: level, resume: resume)
    }

    /// sentence-transformers' scalar quantization of `v` (`quantize_embeddings` with
    /// `ranges`), in float32 as it computes: q = clip(floor((x − min) / step), 0, 255),
    /// step = (max − min) / 255 (1 where that is 0); `offset` stores q − 128 as int8 bits.
    static func calibrated(_ v: [Float], min: [Float], max: [Float], offset: Bool) -> [UInt8] {
        v.indices.map { d in
            var step = (max[d] - min[d]) / 255
            if step == 0 { step = 1 }
            let q = Swift.min(Swift.max(((v[d] - min[d]) / step).rounded(.down), 0), 255)
            return offset ? UInt8(q) &- 128 : UInt8(q)
        }
    }

    /// Reads `output.ranges`: an NPY float32 array of shape (2, dimension).
    static func loadRanges(_ path: String) throws -> (min: [Float], max: [Float]) {
        var spec = RecordSpec(format: .npy)
        spec.wantsFeatures = true
        let stream = try RecordStream(path: path, spec: spec)
        var rows: [[Float]] = []
        while let item = try stream.next(), rows.count <= 2 {
            switch item {
            case .record(let r): rows.append(r.features)
            case .failure(let f):
                throw QuernError(.invalidValue, "output.ranges \(path): \(f.error.message)", field: "output.ranges")
            }
        }
        guard rows.count == 2, rows[0].count == rows[1].count, zip(rows[0], rows[1]).allSatisfy({ $0 <= $1 }) else {
            throw QuernError(
                .invalidValue,
                "output.ranges \(path) must hold 2 rows of one length, each dimension's minimum then maximum (as numpy.vstack((emb.min(0), emb.max(0))))",
                field: "output.ranges")
        }
        return (rows[0], rows[1])
    }

    /// Appends one vector; the result line's fields that locate it.
    func append(_ v: [Float], row: Int) throws -> [(String, ResultRow.Value)] {
        if dimension == nil { dimension = v.count }
        guard v.count == dimension else {
            throw QuernError(.internalError, "vector of \(v.count) values in an array of \(dimension!)")
        }
        if let ranges, dtype == .int8 || dtype == .uint8 {
            guard v.count == ranges.min.count else {
                throw QuernError(
                    .invalidValue, "output.ranges has \(ranges.min.count) dimensions, the vectors \(v.count)",
                    field: "output.ranges")
            }
            try data.append(Self.calibrated(v, min: ranges.min, max: ranges.max, offset: dtype == .int8))
            return [("row", .int(row))]
        }
        switch dtype {
        case .float32:
            _ = try v.withUnsafeBytes { try data.append(Array($0)) }
            return [("row", .int(row))]
        case .int8:
            // Symmetric, one scale per row: the largest magnitude maps to ±127.
            let peak = v.reduce(0) { max($0, abs($1)) }
            let scale = peak > 0 ? peak / 127 : 1
            try data.append(v.map { UInt8(bitPattern: Int8(max(-127, min(127, ($0 / scale).rounded())))) })
            return [("row", .int(row)), ("scale", .float(scale))]
        case .uint8:
            throw QuernError(.internalError, "uint8 vectors without output.ranges")
        case .binary, .ubinary:
            try data.append(Self.packBits(v, offset: dtype == .binary))
            return [("row", .int(row))]
        }
    }

    /// sentence-transformers' `binary` / `ubinary`: bit 7 − (i mod 8) of byte i / 8 is set
    /// when `v[i] > 0` (the last byte zero-padded); `offset` stores each byte minus 128
    /// as an int8's bits.
    static func packBits(_ v: [Float], offset: Bool) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (v.count + 7) / 8)
        for (i, x) in v.enumerated() where x > 0 { out[i / 8] |= 0x80 >> UInt8(i % 8) }
        return offset ? out.map { $0 &- 128 } : out
    }

    /// Finishes the data and writes `final`: header member, then the data member.
    func publish(rows: Int, to final: String, level: Int) throws {
        try data.finish()
        try Self.assemble(
            final + ".partial", descr: dtype.descr, shape: [rows, dtype.columns(dimension ?? 0)],
            level: level, parts: [(data.path, 0)])
        try Sys.unlink(data.path)
        try Sys.rename(final + ".partial", final)
    }

    /// Writes `path`: one gzip member holding the NPY header for `shape`, then the gzip
    /// data of each part (a file, and the offset its data starts at) as it is. A job's
    /// vectors have one part; a merged cluster job's, one per shard.
    static func assemble(_ path: String, descr: String, shape: [Int], level: Int, parts: [(String, Int)]) throws {
        let headerPath = path + ".header"
        let h = try ChunkedGzipWriter(path: headerPath, level: level)
        try h.append(NPYHeader.encode(descr: descr, shape: shape))
        try h.finish()
        let out = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        defer { Sys.close(out) }
        try Sys.appendFile(headerPath, to: out, path: path)
        try Sys.unlink(headerPath)
        for (file, offset) in parts { try Sys.appendFile(file, from: offset, to: out, path: path) }
    }
}
