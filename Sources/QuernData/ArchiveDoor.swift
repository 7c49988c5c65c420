import CArchive
import QuernCore

/// The one door to libarchive. Everything Quern reads — tar, tar.gz, tar.zst, zip, or a
/// plain (optionally compressed) file — comes through `ArchiveReader` as a stream of
/// members and zero-copy data blocks. Nothing is ever extracted to disk.
public final class ArchiveReader {
    public enum Layout: Sendable {
        /// tar (any compression) or zip: many members.
        case archive
        /// One file, possibly gzip/zstd/xz/bzip2 compressed: a single member.
        case single(memberName: String)
    }

    public enum EntryKind: Sendable { case regular, directory, symlink, hardlink, other }

    public struct Entry: Sendable {
        public let name: String
        public let kind: EntryKind
        public let size: Int?
    }

    private var handle: OpaquePointer?
    /// Set for gzip files: zlib inflates (checking CRCs) and libarchive reads the result.
    private var inflater: GzipInflater?
    public let path: String
    public let layout: Layout

    /// Picks the layout from the file name: archives by their extension, everything else
    /// is a single member named after the file (without a compression suffix).
    public static func layout(for path: String) -> Layout {
        let lower = path.lowercased()
        let archiveSuffixes = [
            ".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.xz", ".txz",
            ".tar.bz2", ".tbz2", ".zip"
        ]
        if archiveSuffixes.contains(where: { lower.hasSuffix($0) }) { return .archive }
        var name = Path.basename(path)
        for suffix in [".gz", ".zst", ".xz", ".bz2"] where name.lowercased().hasSuffix(suffix) {
            name.removeLast(suffix.count)
            break
        }
        return .single(memberName: name)
    }

    public init(path: String, layout: Layout? = nil, blockSize: Int = 1 << 20) throws {
        self.path = path
        self.layout = layout ?? ArchiveReader.layout(for: path)
        guard let a = archive_read_new() else { throw QuernError(.internalError, "archive_read_new failed") }
        handle = a
        archive_read_support_filter_all(a)
        switch self.layout {
        case .archive:
            archive_read_support_format_tar(a)
            archive_read_support_format_gnutar(a)
            archive_read_support_format_zip(a)
        case .single:
            archive_read_support_format_raw(a)
            // An empty plain file is a valid (empty) input, not an error.
            archive_read_support_format_empty(a)
        }
        let opened: Int32
        if GzipInflater.isGzip(path) {
            let inflater = try GzipInflater(path: path)
            self.inflater = inflater
            opened = archive_read_open(
                a, Unmanaged.passUnretained(inflater).toOpaque(), nil,
                { _, client, buffer in
                    let inflater = Unmanaged<GzipInflater>.fromOpaque(client!).takeUnretainedValue()
                    guard let bytes = try? inflater.read() else { return -1 }  // inflater.error says why
                    buffer?.pointee = bytes.baseAddress
                    return bytes.count
                }, nil)
        } else {
            opened = archive_read_open_filename(a, path, blockSize)
        }
        if opened != ARCHIVE_OK {
            let e = failure("open")
            archive_read_free(a)
            handle = nil
            throw e
        }
    }

    deinit {
        if let handle { archive_read_free(handle) }
    }

    private func failure(_ call: String) -> QuernError {
        if let e = inflater?.error { return e }
        let detail = archive_error_string(handle).map { String(cString: $0) } ?? "unknown error"
        let errnoValue = archive_errno(handle)
        if errnoValue == ENOENT { return QuernError(.fileNotFound, "\(path): \(detail)") }
        // The file could not be read (a disk or network error), as opposed to bad data.
        // libarchive sets EIO for some bad data too ("Premature end-of-file"); its file
        // reader's own failures say "Error reading".
        if SystemError.transientErrnos.contains(errnoValue), detail.hasPrefix("Error reading") {
            let reason = String(cString: strerror(errnoValue))
            var e = QuernError(.io, "cannot read \(Path.basename(path)) (\(call)): \(detail): \(reason)")
            e.transient = true
            return e
        }
        return QuernError(.archiveCorrupt, "cannot read \(Path.basename(path)) (\(call)): \(detail)")
    }

    private var entriesRead = 0

    /// Whether the file begins with a zip local file header ("PK\3\4").
    static func startsWithZipMember(_ path: String) -> Bool {
        Sys.readPrefix(path, count: 4) == [0x50, 0x4B, 0x03, 0x04]
    }

    /// Advances to the next member, or nil at the end of the archive.
    public func next() throws -> Entry? {
        var entry: OpaquePointer?
        let r = archive_read_next_header(handle, &entry)
        if r == ARCHIVE_EOF {
            if entriesRead == 0, case .archive = layout, inflater == nil, Self.startsWithZipMember(path) {
                // libarchive lists a zip from its central directory; a damaged one lists
                // nothing, which is not the same as an empty archive.
                throw QuernError(
                    .archiveCorrupt,
                    "\(Path.basename(path)) holds zip members but its central directory lists none: the zip is damaged or truncated; re-create it (`unzip -t` shows the damage)"
                )
            }
            return nil
        }
        entriesRead += 1
        if r < ARCHIVE_WARN { throw failure("next header") }
        guard let entry else { throw failure("next header") }
        if case .single(let memberName) = layout {
            return Entry(name: memberName, kind: .regular, size: nil)
        }
        let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        let kind: EntryKind
        if archive_entry_hardlink(entry) != nil {
            kind = .hardlink
        } else {
            switch archive_entry_filetype(entry) {
            case S_IFREG: kind = .regular
            case S_IFDIR: kind = .directory
            case S_IFLNK: kind = .symlink
            default: kind = .other
            }
        }
        let size = archive_entry_size_is_set(entry) != 0 ? Int(archive_entry_size(entry)) : nil
        return Entry(name: name, kind: kind, size: size)
    }

    /// The next block of the current member's data (valid until the next call), or nil at
    /// the member's end. Sparse holes are not supported: they are reported as corruption.
    public func readBlock() throws -> UnsafeRawBufferPointer? {
        var buf: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        let r = archive_read_data_block(handle, &buf, &size, &offset)
        if r == ARCHIVE_EOF { return nil }
        if r < ARCHIVE_WARN { throw failure("read data") }
        guard let buf else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: buf, count: size)
    }

    /// Bytes read from the file so far (compressed): the denominator of the bomb check
    /// and the numerator of progress.
    public var compressedBytesRead: Int {
        if let inflater { return inflater.compressedConsumed }
        return Int(archive_filter_bytes(handle, -1))
    }
}

#if canImport(Glibc)
    import Glibc
#endif
