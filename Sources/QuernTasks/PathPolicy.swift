import QuernCore

/// Where a manifest's paths may point: the spool and the configured roots. Paths are
/// resolved (symlinks included) before the check, so a link cannot smuggle a path out.
public struct PathPolicy: Sendable {
    public let base: String
    public let roots: [String]

    /// `base` resolves relative paths; `roots` (plus `base`) bound where they may lead.
    public init(base: String, roots: [String]) {
        self.base = (try? Sys.realpath(base)) ?? base
        self.roots = ([base] + roots).map { (try? Sys.realpath($0)) ?? Path.normalize($0) }
    }

    /// Roots from `--root` flags and `QUERN_ROOTS` (colon-separated).
    public static func configuredRoots(_ flags: [String]) -> [String] {
        let env = Sys.environment("QUERN_ROOTS")?.split(separator: ":").map(String.init) ?? []
        return (flags + env).map { Path.absolute($0, relativeTo: Sys.getcwd()) }
    }

    public func resolve(_ path: String, field: String) throws -> String {
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
