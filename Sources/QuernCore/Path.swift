/// Path helpers on plain strings; paths here are POSIX byte strings.
public enum Path {
    public static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    public static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    public static func join(_ base: String, _ rest: String) -> String {
        if rest.hasPrefix("/") { return rest }
        if base.hasSuffix("/") { return base + rest }
        return base + "/" + rest
    }

    /// The file name without its last extension: `jobs/a.json` → `a`.
    public static func stem(_ path: String) -> String {
        let base = basename(path)
        guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return base }
        return String(base[..<dot])
    }

    public static func absolute(_ path: String, relativeTo base: String) -> String {
        normalize(join(base, path))
    }

    /// Removes `.` components and duplicate slashes (not `..`: callers refuse those).
    public static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }

    /// An absolute path with `.` and `..` resolved by name (`/a/b/../c` → `/a/c`), as a
    /// shell user means them; the result is still checked where it leads.
    public static func collapse(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// `path` equals `root` or lies below it.
    public static func isInside(_ path: String, _ root: String) -> Bool {
        if root == "/" { return true }
        return path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }
}
