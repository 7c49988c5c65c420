import QuernCore
import QuernTasks

/// `SPOOL/quern.json`: what every process working on the spool should do besides running
/// jobs, so that long command lines need not repeat it. Optional; read strictly (an
/// unknown key is an error naming it), when a daemon or `run --once` starts.
///
/// ```json
/// {"hooks": {"on_done": "notify.sh", "on_failed": "page.sh", "timeout_seconds": 30},
///  "allow_manifest_hooks": false,
///  "metrics": "/var/lib/node_exporter/textfile/quern.prom",
///  "retention": {"keep_days": 30, "keep_last": 100, "archive": "/srv/spool-archive"}}
/// ```
public struct SpoolConfig: Sendable {
    public static let name = "quern.json"

    public var hooks = JobHooks()
    /// Whether a manifest's own `hooks` may run (commands from whoever can write to
    /// `incoming/`, run as the daemon's user): off unless the operator says so.
    public var allowManifestHooks = false
    /// Prometheus textfile to keep current (node_exporter's textfile collector).
    public var metrics: String?
    /// Applied by `watch` at start and hourly, and by `run --once` when it ends.
    public var retention: Retention?

    public init() {}

    /// The spool's config, or the defaults when it has none.
    public static func load(_ spool: Spool) throws -> SpoolConfig {
        let path = Path.join(spool.root, name)
        guard Sys.exists(path) else { return SpoolConfig() }
        do {
            let value = try JSONParser.parse(Sys.readFile(path, limit: 1 << 20))
            guard let root = value.objectValue else {
                throw QuernError(.invalidType, "must be a JSON object, not \(value.typeName)")
            }
            var o = StrictObject(root, path: "")
            var c = SpoolConfig()
            if var h = try o.object("hooks") { c.hooks = try JobHooks(from: &h) }
            c.allowManifestHooks = try o.bool("allow_manifest_hooks") ?? false
            c.metrics = try o.string("metrics").map { Path.absolute($0, relativeTo: spool.root) }
            if var r = try o.object("retention") {
                let days = try r.number("keep_days"), last = try r.int("keep_last", range: 0...Int(Int32.max))
                let archive = try r.string("archive").map { Path.absolute($0, relativeTo: spool.root) }
                try r.finish()
                guard days != nil || last != nil else {
                    throw QuernError(
                        .missingField, "retention needs keep_days, keep_last or both", field: "retention.keep_days")
                }
                guard (days ?? 0) >= 0 else {
                    throw QuernError(
                        .invalidValue, "retention.keep_days must not be negative", field: "retention.keep_days")
                }
                c.retention = Retention(keepDays: days, keepLast: last, archive: archive)
            }
            try o.finish()
            return c
        } catch let e as QuernError {
            var e = e
            e.message = "\(path): \(e.message)"
            throw e
        } catch let e as JSONSyntaxError {
            throw QuernError(.invalidJSON, "\(path) is not valid JSON: \(e.message) (line \(e.line))")
        }
    }
}
