import Foundation
import Testing

@testable import QuernKernels

/// The decoder blocks' element-wise steps, every path against float64 and against the
/// scalar twin, over the range decoder activations take and past both ends of the
/// vector exp's clamp.
@Suite("element-wise decoder steps")
struct ElementwiseTests {
    /// Relative error allowed against float64, plus an absolute floor where the exact
    /// value is near 0 (products of values up to 30).
    static let relativeTolerance = 4e-6, absoluteFloor = 1e-6

    static func inputs(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        let edges: [Float] = [0, -0, 1e-8, -1e-8, 0.5, -0.5, 0.625, -0.625, 10, -10, 30, -30, 90, -90, 100, -100]
        return edges
            + (0..<count).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 100_000 - 10  // [-10, 10)
            }
    }

    func expectClose(_ got: [Float], _ want: [Double], _ what: String) {
        var worst = 0.0, at = 0
        for (i, (g, w)) in zip(got, want).enumerated() {
            let excess = abs(Double(g) - w) / max(abs(w) * Self.relativeTolerance, Self.absoluteFloor)
            if excess > worst { (worst, at) = (excess, i) }
        }
        #expect(worst <= 1, "\(what): \(got[at]) vs \(want[at]) at \(at)")
    }

    @Test("SwiGLU gate on every path", arguments: ISA.supported)
    func gatedSiLU(isa: ISA) {
        for (rows, n) in [(1, 1), (3, 37), (2, 576)] {
            let gateUp = Self.inputs(rows * 2 * n, seed: UInt64(n)).prefix(rows * 2 * n)
            let x = Array(gateUp) + [Float](repeating: 1, count: max(0, rows * 2 * n - gateUp.count))
            var out = [Float](repeating: .nan, count: rows * n)
            Elementwise.gatedSiLU(x, rows: rows, n: n, into: &out, isa: isa)
            var want = [Double](repeating: 0, count: rows * n)
            for r in 0..<rows {
                for i in 0..<n {
                    let g = Double(x[r * 2 * n + i]), u = Double(x[r * 2 * n + n + i])
                    want[r * n + i] = g / (1 + Foundation.exp(-g)) * u
                }
            }
            expectClose(out, want, "\(isa) gatedSiLU \(rows)x\(n)")
        }
    }

    @Test("tanh GELU on every path", arguments: ISA.supported)
    func geluTanh(isa: ISA) {
        for count in [1, 7, 8, 1000] {
            var x = Array(Self.inputs(count, seed: UInt64(count) + 5).prefix(count))
            let want = x.map { v -> Double in
                let d = Double(v)
                return 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            }
            Elementwise.geluTanh(&x, count: x.count, isa: isa)
            expectClose(x, want, "\(isa) geluTanh \(count)")
        }
    }
}
