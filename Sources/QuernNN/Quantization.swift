/// Activation ranges for static int8 quantization, observed on calibration data: the
/// plain minimum and maximum, or percentiles that ignore rare outliers (which would
/// otherwise stretch the u8 grid and cost every other value precision).
public struct RangeObserver: Sendable {
    public enum Method: String, Sendable, CaseIterable { case minmax, percentile }

    public let method: Method
    /// For `.percentile`: the upper percentile kept (the lower is 100 − p).
    public let percentile: Double
    /// Values kept per input for percentiles (a seeded reservoir sample beyond this).
    public let reservoirSize: Int
    var lo: [String: Float] = [:], hi: [String: Float] = [:]
    var reservoirs: [String: [Float]] = [:]
    var seen: [String: Int] = [:]
    var random = SeededRandom(seed: 0xCA11B)

    public init(method: Method, percentile: Double = 99.99, reservoirSize: Int = 1 << 18) {
        self.method = method
        self.percentile = percentile
        self.reservoirSize = reservoirSize
    }

    /// Takes in values of the input called `key` (a weight matrix's, in Quern's layer stacks).
    public mutating func observe(_ layer: String, _ values: [Float]) {
        var l = lo[layer] ?? .infinity, h = hi[layer] ?? -.infinity
        for v in values where v.isFinite {
            l = min(l, v)
            h = max(h, v)
        }
        lo[layer] = l
        hi[layer] = h
        guard method == .percentile else { return }
        var kept = reservoirs[layer] ?? []
        var n = seen[layer] ?? 0
        for v in values where v.isFinite {
            n += 1
            if kept.count < reservoirSize {
                kept.append(v)
            } else {
                let j = Int(random.next() % UInt64(n))
                if j < reservoirSize { kept[j] = v }
            }
        }
        reservoirs[layer] = kept
        seen[layer] = n
    }

    /// The range to quantize input `layer` to (nil if it was never observed).
    public func range(_ layer: String) -> (lo: Float, hi: Float)? {
        guard let l = lo[layer], let h = hi[layer], l <= h else { return nil }
        guard method == .percentile, let values = reservoirs[layer], !values.isEmpty else { return (l, h) }
        let sorted = values.sorted()
        func at(_ p: Double) -> Float {
            let i = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count - 1)).rounded())))
            return sorted[i]
        }
        return (at(100 - percentile), at(percentile))
    }
}
