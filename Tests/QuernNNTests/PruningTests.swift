import QuernKernels
import Testing

@testable import QuernNN

@Suite("pruning")
struct PruningTests {
    func matrix(_ rows: Int, _ cols: Int, seed: UInt64) -> Parameter {
        var r = SeededRandom(seed: seed)
        return Parameter("w", Tensor(shape: [rows, cols], data: (0..<(rows * cols)).map { _ in r.uniform(1) }))
    }

    func zeros(_ p: Parameter) -> Int { p.value.data.filter { $0 == 0 }.count }

    @Test("unstructured per layer: each matrix at the target, the smallest magnitudes gone")
    func unstructured() {
        let a = matrix(8, 10, seed: 1), b = matrix(4, 25, seed: 2)
        let keptBefore = a.value.data.map(abs).sorted().suffix(16)
        var pruner = Pruner([a, b], pattern: .unstructured, scope: .layer)
        pruner.prune(to: 0.8)
        #expect(zeros(a) == 64 && zeros(b) == 80)
        #expect(Set(a.value.data.filter { $0 != 0 }.map(abs)) == Set(keptBefore))
    }

    @Test("global scope prunes across layers to the overall target")
    func global() {
        let a = matrix(8, 10, seed: 3), b = matrix(4, 25, seed: 4)
        for i in 0..<b.value.count { b.value.data[i] *= 0.1 }  // b's weights are all small
        var pruner = Pruner([a, b], pattern: .unstructured, scope: .global)
        pruner.prune(to: 0.5)
        #expect(zeros(a) + zeros(b) == 90)
        #expect(zeros(b) > zeros(a))
    }

    @Test("1x4 blocks are pruned whole; 2:4 keeps the two largest of every four")
    func structured() {
        let a = matrix(6, 16, seed: 5)
        var blocks = Pruner([a], pattern: .block1x4, scope: .layer)
        blocks.prune(to: 0.75)
        for g in stride(from: 0, to: 96, by: 4) {
            let group = a.value.data[g..<(g + 4)]
            #expect(group.allSatisfy { $0 == 0 } || group.allSatisfy { $0 != 0 })
        }
        #expect(zeros(a) == 72)
        let b = matrix(3, 8, seed: 6)
        let original = b.value.data
        var twoFour = Pruner([b], pattern: .twoFour, scope: .layer)
        twoFour.prune(to: 0.9)  // 2:4 is always one half
        for g in stride(from: 0, to: 24, by: 4) {
            let kept = (g..<(g + 4)).filter { b.value.data[$0] != 0 }
            #expect(kept.count == 2)
            let smallestKept = kept.map { abs(original[$0]) }.min()!
            let largestDropped = (g..<(g + 4)).filter { b.value.data[$0] == 0 }.map { abs(original[$0]) }.max()!
            #expect(smallestKept >= largestDropped)
        }
    }

    @Test("pruned weights stay zero through training steps; masks only grow")
    func staysPruned() {
        var r = SeededRandom(seed: 7)
        let net = Sequential([Linear(6, 8, activation: .relu, random: &r), Linear(8, 3, random: &r)])
        let weights = net.layers.compactMap { ($0 as? Linear)?.weight }
        var pruner = Pruner(weights, pattern: .unstructured, scope: .layer)
        pruner.prune(to: 0.5)
        let pruned = weights.map { w in w.value.data.indices.filter { w.value.data[$0] == 0 } }
        let data = LabeledSamples(
            inputs: (0..<60).map { _ in r.uniform(1) }, sampleShape: [6], labels: (0..<10).map { $0 % 3 })
        var options = TrainingOptions()
        options.batchSize = 4
        let trainer = Trainer(model: net, options: options, samplesPerEpoch: 10, pool: ThreadPool(threads: 1))
        let frozen = pruner
        trainer.afterStep = { frozen.enforce() }
        _ = trainer.trainEpoch(data, epoch: 0)
        for (w, idx) in zip(weights, pruned) { #expect(idx.allSatisfy { w.value.data[$0] == 0 }) }
        pruner.prune(to: 0.75)
        for (w, idx) in zip(weights, pruned) { #expect(idx.allSatisfy { w.value.data[$0] == 0 }) }
        #expect(pruner.sparsity.allSatisfy { abs($0 - 0.75) < 0.02 })
    }

    @Test("cubic schedule: from the initial sparsity to the final one, fastest early")
    func cubic() {
        #expect(Pruner.cubic(progress: 0, final: 0.8) == 0)
        #expect(abs(Pruner.cubic(progress: 1, final: 0.8) - 0.8) < 1e-12)
        #expect(abs(Pruner.cubic(progress: 0.5, final: 0.8) - 0.7) < 1e-12)
        #expect(Pruner.cubic(progress: 2, final: 0.8) == Pruner.cubic(progress: 1, final: 0.8))
    }
}
