/// Magnitude pruning: the weights with the smallest magnitude become zero, by pattern
/// and scope, and stay zero through recovery training (`Pruner.enforce` after each
/// optimizer step). Patterns match Quern's sparse kernels: unstructured (CSR), 1×4
/// blocks along the input dimension (the int8 dot product's unit), and 2:4 (two of
/// every four consecutive inputs, the layout sparse tensor cores use).
public struct Pruner {
    public enum Pattern: String, Sendable, CaseIterable {
        case unstructured
        case block1x4 = "1x4"
        case twoFour = "2:4"
    }
    public enum Scope: String, Sendable, CaseIterable { case layer, global }

    public let pattern: Pattern
    public let scope: Scope
    /// Weight matrices pruned, `[out, in…]` (conv kernels flattened per output channel).
    public let parameters: [Parameter]
    /// 1 keeps a weight, 0 holds it at zero; one mask per parameter.
    public private(set) var masks: [[Float]]

    public init(_ parameters: [Parameter], pattern: Pattern, scope: Scope) {
        self.parameters = parameters
        self.pattern = pattern
        self.scope = scope
        masks = parameters.map { [Float](repeating: 1, count: $0.value.count) }
    }

    /// Groups of weights pruned together, with their magnitude: single weights, or four
    /// consecutive inputs of one output (1×4 and 2:4 work within those).
    func groups(_ p: Parameter) -> [(indices: [Int], score: Float)] {
        let w = p.value.data
        switch pattern {
        case .unstructured:
            return w.indices.map { ([$0], abs(w[$0])) }
        case .block1x4, .twoFour:
            let inner = p.value.count / p.value.shape[0]
            var out: [(indices: [Int], score: Float)] = []
            for row in 0..<p.value.shape[0] {
                var c = 0
                while c < inner {
                    let idx = Array((row * inner + c)..<(row * inner + min(c + 4, inner)))
                    out.append((idx, idx.reduce(0) { $0 + w[$1] * w[$1] }.squareRoot()))
                    c += 4
                }
            }
            return out
        }
    }

    /// Prunes to `sparsity` (a fraction of weights; 2:4 is always one half) by magnitude
    /// of the current weights, and zeroes the pruned weights. Masks only grow: a weight
    /// pruned earlier stays pruned.
    public mutating func prune(to sparsity: Double) {
        if pattern == .twoFour {
            for (i, p) in parameters.enumerated() {
                for g in groups(p) {
                    // Keep the two largest of each four (fewer than four at a row's end: keep half, rounded up).
                    let ranked = g.indices.sorted { abs(p.value.data[$0]) > abs(p.value.data[$1]) }
                    for j in ranked.dropFirst((g.indices.count + 1) / 2) { masks[i][j] = 0 }
                }
            }
            enforce()
            return
        }
        let target = min(max(sparsity, 0), 1)
        switch scope {
        case .layer:
            for (i, p) in parameters.enumerated() {
                pruneLowest(among: groups(p).map { (i, $0.indices, $0.score) }, count: p.value.count, target)
            }
        case .global:
            var all: [(Int, [Int], Float)] = []
            var total = 0
            for (i, p) in parameters.enumerated() {
                all += groups(p).map { (i, $0.indices, $0.score) }
                total += p.value.count
            }
            pruneLowest(among: all, count: total, target)
        }
        enforce()
    }

    /// Zeroes the lowest-scoring groups until `target` of `count` weights are pruned;
    /// groups already pruned count toward it (their score is 0 once zeroed).
    mutating func pruneLowest(among groups: [(Int, [Int], Float)], count: Int, _ target: Double) {
        let ranked = groups.sorted { a, b in
            let prunedA = masks[a.0][a.1[0]] == 0, prunedB = masks[b.0][b.1[0]] == 0
            return prunedA != prunedB ? prunedA : a.2 < b.2
        }
        var pruned = 0
        let goal = Int((target * Double(count)).rounded())
        for (param, indices, _) in ranked {
            if pruned + indices.count > goal { break }
            for j in indices { masks[param][j] = 0 }
            pruned += indices.count
        }
    }

    /// Masks saved by a checkpoint, put back (and enforced) on resume.
    public mutating func restore(masks saved: [[Float]]) {
        precondition(
            saved.count == masks.count && zip(saved, masks).allSatisfy { $0.count == $1.count },
            "Pruner: masks do not fit")
        masks = saved
        enforce()
    }

    /// Holds pruned weights at zero (call after every optimizer step).
    public func enforce() {
        for (i, p) in parameters.enumerated() {
            p.value.data.withUnsafeMutableBufferPointer { w in
                for j in 0..<w.count where masks[i][j] == 0 { w[j] = 0 }
            }
        }
    }

    /// Fraction of weights at zero, per parameter.
    public var sparsity: [Double] {
        parameters.map { p in Double(p.value.data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }) / Double(max(p.value.count, 1))
        }
    }

    /// Zhu & Gupta's gradual schedule: sparsity rises from `initial` to `final` as
    /// s(t) = final + (initial − final)·(1 − t)³ over progress t ∈ [0, 1], pruning fast
    /// while the network has redundancy and slowly as it runs out.
    public static func cubic(progress t: Double, initial: Double = 0, final: Double) -> Double {
        let clamped = min(max(t, 0), 1)
        let remaining = 1 - clamped
        return final + (initial - final) * remaining * remaining * remaining
    }
}
