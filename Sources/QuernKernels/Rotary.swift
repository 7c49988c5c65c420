import Foundation

/// Rotary position embeddings as Hugging Face's Llama family applies them: the head
/// vector's two halves are rotated pairwise, `(x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin)`
/// with angle `position · invFreq[i]` for pair `i` (the "rotate_half" layout; GGUF files
/// store q/k rows permuted for the interleaved layout, which their loader undoes).
///
/// Frequencies and angles are computed in Double and rounded once: the tables are then
/// the true values, and a position's rotation is the same whatever else is in the batch.
public struct RotaryEmbedding: Sendable {
    /// Rotated dimensions per head (`headDim`, or fewer for partial rotary).
    public let dimensions: Int
    /// `dimensions / 2` inverse frequencies.
    public let inverseFrequencies: [Double]
    /// Multiplies cos and sin (YaRN's attention factor; 1 otherwise).
    public let attentionFactor: Double

    /// The scalings Hugging Face configs name in `rope_scaling` / `rope_parameters`.
    public enum Scaling: Sendable, Equatable {
        case none
        /// Positions divided by `factor`.
        case linear(factor: Double)
        /// Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth
        /// blend between.
        case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContext: Double)
        /// YaRN (Qwen2.5 long context, DeepSeek): NTK-by-parts interpolation and an
        /// attention factor of `0.1·ln(factor) + 1` unless given.
        case yarn(
            factor: Double, originalContext: Double, betaFast: Double, betaSlow: Double, attentionFactor: Double?,
            truncate: Bool)
        /// One divisor per frequency, as GGUF files store Llama 3.1's scaling
        /// (`rope_freqs.weight`: llama.cpp precomputes the llama3 rule into it).
        case factors([Double])
    }

    public init(dimensions: Int, theta: Double, scaling: Scaling = .none) {
        precondition(dimensions > 0 && dimensions % 2 == 0, "rotary dimensions must be even")
        self.dimensions = dimensions
        let base = (0..<dimensions / 2).map { 1 / pow(theta, Double(2 * $0) / Double(dimensions)) }
        switch scaling {
        case .none:
            inverseFrequencies = base
            attentionFactor = 1
        case .linear(let factor):
            inverseFrequencies = base.map { $0 / factor }
            attentionFactor = 1
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = original / low, highWavelength = original / high
            inverseFrequencies = base.map { f in
                let wavelength = 2 * Double.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (original / wavelength - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
            attentionFactor = 1
        case .factors(let f):
            precondition(f.count == dimensions / 2, "one rotary factor per frequency")
            inverseFrequencies = zip(base, f).map { $0 / $1 }
            attentionFactor = 1
        case .yarn(let factor, let original, let betaFast, let betaSlow, let given, let truncate):
            // The dimension index at which a frequency makes `rotations` turns over the
            // original context.
            func correction(_ rotations: Double) -> Double {
                Double(dimensions) * log(original / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            var low = correction(betaFast), high = correction(betaSlow)
            if truncate {
                low = low.rounded(.down)
                high = high.rounded(.up)
            }
            low = max(low, 0)
            high = min(high, Double(dimensions - 1))
            if low == high { high += 0.001 }
            inverseFrequencies = base.enumerated().map { i, f in
                let ramp = min(max((Double(i) - low) / (high - low), 0), 1)
                let extrapolation = 1 - ramp
                return f / factor * (1 - extrapolation) + f * extrapolation
            }
            attentionFactor = given ?? (factor <= 1 ? 1 : 0.1 * log(factor) + 1)
        }
    }

    /// cos and sin for each position: `[positions.count, dimensions / 2]` each.
    public func tables(_ positions: [Int]) -> (cos: [Float], sin: [Float]) {
        let half = dimensions / 2
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = c
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * inverseFrequencies[i]
                c[r * half + i] = Float(Foundation.cos(angle) * attentionFactor)
                s[r * half + i] = Float(Foundation.sin(angle) * attentionFactor)
            }
        }
        return (c, s)
    }

    /// Rotates `heads` head vectors of `headDim` floats in each of `rows` rows (row `r`
    /// at `x + r·stride`, rotated with row `r` of the tables).
    public func apply(
        _ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, heads: Int, headDim: Int, cos: [Float], sin: [Float]
    ) {
        let half = dimensions / 2
        cos.withUnsafeBufferPointer { cp in
            sin.withUnsafeBufferPointer { sp in
                for r in 0..<rows {
                    let c = cp.baseAddress! + r * half, s = sp.baseAddress! + r * half
                    for h in 0..<heads {
                        let v = x + r * stride + h * headDim
                        for i in 0..<half {
                            let a = v[i], b = v[i + half]
                            v[i] = a * c[i] - b * s[i]
                            v[i + half] = b * c[i] + a * s[i]
                        }
                    }
                }
            }
        }
    }
}
