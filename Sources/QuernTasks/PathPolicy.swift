import QuernCore

/// Where a manifest's paths may point: the spool and the configured roots. Paths are
/// resolved (symlinks included) before the check, so a link cannot smuggle a path out.
public struct PathPolicy: Sendable {
    public let base: String
    public let roots: [String]
    /// Where `zoo:NAME` models are (nil: a manifest may not name one).
    public let zoo: ModelZoo?

    /// `base` resolves relative paths; `roots` (plus `base`) bound where they may lead.
    public init(base: String, roots: [String], zoo: ModelZoo? = nil) {
        self.base = (try? Sys.realpath(base)) ?? base
        self.roots = ([base] + roots).map { (try? Sys.realpath($0)) ?? Path.normalize($0) }
        self.zoo = zoo
    }

    /// A manifest's `model`: a path (resolved and checked as `resolve` does), or a
    /// `zoo:NAME[@sha256:…]` reference and the zoo entry it names (its pin checked).
    public func model(_ model: String) throws -> (path: String, zoo: ModelZoo.Entry?) {
        guard ModelZoo.Reference.isReference(model) else { return (try resolve(model, field: "model"), nil) }
        guard let zoo else {
            throw QuernError(
                .invalidValue, "\(model) names a zoo model, but no model zoo is configured here", field: "model")
        }
        let entry = try zoo.resolve(ModelZoo.Reference(model))
        return (entry.modelPath, entry)
    }

    /// Roots from `--root` flags and `QUERN_ROOTS` (colon-separated).
    public static func configuredRoots(_ flags: [String]) -> [String] {
        let env = Sys.environment("QUERN_ROOTS")?.split(separator: ":").map(String.init) ?? []
        return (flags + env).map { Path.absolute($0, relativeTo: Sys.getcwd()) }
    }

    /// `path` made absolute, symlinks resolved, and checked to lie inside the roots; a
    /// `zoo:` model reference is checked against the zoo and pinned to the entry's digest
    /// (what `quern submit` and `stage` record, so every shard and resume reads one model).
    public func resolve(_ path: String, field: String) throws -> String {
        if field == "model", ModelZoo.Reference.isReference(path) {
            return try model(path).zoo!.pinned
        }
        if path.split(separator: "/").contains("..") {
            throw QuernError(
                .pathEscape,
                "\"\(path)\" contains '..'; give a path inside the spool or a configured root (--root / QUERN_ROOTS)",
                field: field)
        }
        let absolute = Path.absolute(path, relativeTo: base)
        let real: String
        do {
            real = try Sys.realpath(absolute)
        } catch {
            let hint =
                path.hasPrefix("/")
                ? "" : " (a relative path resolves against \(base); `quern submit` records paths absolute)"
            throw QuernError(.fileNotFound, "\(field) \(absolute) does not exist\(hint)", field: field)
        }
        guard roots.contains(where: { Path.isInside(real, $0) }) else {
            throw QuernError(
                .pathEscape,
                "\(absolute) is outside the spool and the configured roots (\(roots.joined(separator: ", "))); add its directory with --root or QUERN_ROOTS",
                field: field)
        }
        return real
    }
}
