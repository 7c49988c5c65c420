import Foundation

/// Wall-clock and monotonic time, injectable so the watcher and leases can be tested
/// without sleeping.
public protocol TimeSource: Sendable {
    /// Seconds since the Unix epoch.
    func now() -> Double
    /// Seconds on a monotonic clock, for durations.
    func monotonic() -> Double
}

public struct SystemTime: TimeSource {
    public init() {}
    public func now() -> Double { Date().timeIntervalSince1970 }
    public func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

public enum Timestamp {
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T10:00:00.123Z`.
    public static func iso8601(_ t: Double) -> String {
        var secs = time_t(t.rounded(.down))
        var tmv = tm()
        gmtime_r(&secs, &tmv)
        let ms = Int((t - t.rounded(.down)) * 1000)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
            Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
            Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), ms)
    }
}
