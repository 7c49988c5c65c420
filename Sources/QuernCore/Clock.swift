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

    /// Seconds since the epoch of an RFC 3339 time (`2026-12-06T10:00:00Z`,
    /// `2026-12-06T11:00:00.5+01:00`); nil when the text is not one.
    public static func parse(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func digits(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var v = 0
            for c in b[at..<(at + n)] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            return v
        }
        guard b.count >= 20, let year = digits(0, 4), b[4] == 0x2D, let month = digits(5, 2), b[7] == 0x2D,
            let day = digits(8, 2), b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20, let hour = digits(11, 2),
            b[13] == 0x3A, let minute = digits(14, 2), b[16] == 0x3A, let second = digits(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var at = 19, fraction = 0.0
        if at < b.count && b[at] == 0x2E {
            at += 1
            var scale = 0.1
            let start = at
            while at < b.count, b[at] >= 0x30, b[at] <= 0x39 {
                fraction += Double(b[at] - 0x30) * scale
                scale /= 10
                at += 1
            }
            guard at > start else { return nil }
        }
        guard at < b.count else { return nil }
        var offset = 0
        if b[at] == 0x5A || b[at] == 0x7A {
            at += 1
        } else if b[at] == 0x2B || b[at] == 0x2D, let h = digits(at + 1, 2), at + 3 < b.count, b[at + 3] == 0x3A,
            let m = digits(at + 4, 2), h < 24, m < 60
        {
            offset = (b[at] == 0x2B ? 1 : -1) * (h * 3600 + m * 60)
            at += 6
        } else {
            return nil
        }
        guard at == b.count else { return nil }
        var tmv = tm()
        tmv.tm_year = Int32(year - 1900)
        tmv.tm_mon = Int32(month - 1)
        tmv.tm_mday = Int32(day)
        tmv.tm_hour = Int32(hour)
        tmv.tm_min = Int32(minute)
        tmv.tm_sec = Int32(second)
        return Double(timegm(&tmv)) - Double(offset) + fraction
    }

    /// Seconds in a duration such as `90s`, `30m`, `24h`, `2d` (a positive number and a
    /// unit); nil when the text is not one.
    public static func duration(_ text: String) -> Double? {
        guard let unit = text.last, let scale = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][String(unit)],
            let n = Double(text.dropLast()), n.isFinite, n > 0, text.dropLast().allSatisfy({ $0.isNumber || $0 == "." })
        else { return nil }
        return n * scale
    }
}
