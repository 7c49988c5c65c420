import Foundation

/// Log lines go to stderr: short human lines on a terminal, one JSON object per line
/// otherwise (so journald, cron mail and log shippers get something parseable).
/// A job additionally copies its lines into its own `job.log` (always JSON lines).
public final class Log: @unchecked Sendable {
    public enum Level: String, Comparable, Sendable {
        case debug, info, warning, error
        var rank: Int { [.debug: 0, .info: 1, .warning: 2, .error: 3][self]! }
        public static func < (a: Level, b: Level) -> Bool { a.rank < b.rank }
    }

    public static let shared = Log()

    public var minimumLevel: Level = .info
    public let human: Bool
    private let lock = NSLock()
    /// True while a progress bar owns the current terminal line.
    private var progressLine = false

    public init(human: Bool = Sys.isTerminal(2)) {
        self.human = human
        if let l = Sys.environment("QUERN_LOG_LEVEL"), let level = Level(rawValue: l) { minimumLevel = level }
    }

    public static func line(_ level: Level, _ message: String, _ fields: [(String, JSONValue)]) -> [UInt8] {
        var obj = JSONObject()
        obj["ts"] = .string(Timestamp.iso8601(Date().timeIntervalSince1970))
        obj["level"] = .string(level.rawValue)
        obj["msg"] = .string(message)
        for (k, v) in fields { obj[k] = v }
        var bytes = JSONWriter.compact(.object(obj))
        bytes.append(0x0A)
        return bytes
    }

    public func log(_ level: Level, _ message: String, _ fields: [(String, JSONValue)] = []) {
        guard level >= minimumLevel else { return }
        let bytes: [UInt8]
        if human {
            var s = progressLine ? "\r\u{1B}[K" : ""
            s += level == .info ? "" : "\(level.rawValue): "
            s += message
            for (k, v) in fields { s += " \(k)=\(String(decoding: JSONWriter.compact(v), as: UTF8.self))" }
            bytes = Array((s + "\n").utf8)
        } else {
            bytes = Log.line(level, message, fields)
        }
        lock.lock()
        defer { lock.unlock() }
        progressLine = false
        try? Sys.writeAll(2, bytes)
    }

    public func info(_ m: String, _ f: [(String, JSONValue)] = []) { log(.info, m, f) }
    public func warning(_ m: String, _ f: [(String, JSONValue)] = []) { log(.warning, m, f) }
    public func error(_ m: String, _ f: [(String, JSONValue)] = []) { log(.error, m, f) }

    /// Redraws the progress bar in place; only on a terminal.
    public func progress(_ text: String) {
        guard human else { return }
        lock.lock()
        defer { lock.unlock() }
        progressLine = true
        try? Sys.writeAll(2, Array("\r\u{1B}[K\(text)".utf8))
    }

    public func endProgress() {
        guard human else { return }
        lock.lock()
        defer { lock.unlock() }
        if progressLine { try? Sys.writeAll(2, Array("\r\u{1B}[K".utf8)) }
        progressLine = false
    }
}

/// A text progress bar: `[#########.........]  45%  1,234 records  5,000/s`.
public func progressBar(
    fraction: Double?, records: Int, rate: Double?, units: [(name: String, rate: Double)] = [], width: Int = 24
) -> String {
    var s = ""
    if let f = fraction {
        let filled = Int((min(max(f, 0), 1) * Double(width)).rounded(.down))
        s += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
        s += String(format: "%3d%%  ", Int(f * 100))
    }
    s += "\(records) records"
    if let rate { s += "  \(Int(rate))/s" }
    for u in units { s += "  \(Int(u.rate)) \(u.name)/s" }
    return s
}
