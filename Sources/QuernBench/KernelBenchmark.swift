import Foundation
import QuernCore
import QuernKernels

/// `quern bench kernels`: GFLOP/s of Quern's GEMM against OpenBLAS (numpy, through
/// shared/bench/gemm_anchor.py) on the same shapes and thread counts, in the same run.
public struct KernelBenchmark {
    public struct Shape: Sendable, CustomStringConvertible {
        public let m, k, n: Int
        public var description: String { "\(m)x\(k)x\(n)" }
        /// Batch-sized shapes: where sparsity and thread scaling are judged.
        var isLarge: Bool { m >= 512 }
        /// The shape as the tables' first column.
        var column: String { description.padding(toLength: 18, withPad: " ", startingAt: 0) }
        public init(_ m: Int, _ k: Int, _ n: Int) { self.m = m; self.k = k; self.n = n }
    }

    /// all-MiniLM-L6-v2's matmuls for 2048 tokens, 1024³, and single/few-row inference.
    public static let defaultShapes = [
        Shape(2048, 384, 384), Shape(2048, 384, 1536), Shape(2048, 1536, 384),
        Shape(1024, 1024, 1024), Shape(1, 384, 1536), Shape(8, 384, 1536),
        Shape(16, 384, 1536), Shape(16, 1536, 384)
    ]

    let anchor: String?
    let seconds: Double

    public init(anchorScript: String?, seconds: Double = 1) {
        anchor = anchorScript
        self.seconds = seconds
    }

    /// Best time of repeated runs filling about `seconds`.
    func time(_ body: () -> Void) -> Double {
        let clock = SystemTime()
        body()
        var best = Double.infinity
        let start = clock.monotonic()
        var runs = 0
        while runs < 3 || (clock.monotonic() - start < seconds && runs < 10_000) {
            let t0 = clock.monotonic()
            body()
            best = min(best, clock.monotonic() - t0)
            runs += 1
        }
        return best
    }

    /// GFLOP/s (2·M·K·N per run) of `kernel` on a random `[M, K]` input into `[M, N]`.
    func gflops(_ s: Shape, seed: UInt64, _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void)
        -> Double
    {
        var rng = SplitMix(seed: seed)
        let x = (0..<(s.m * s.k)).map { _ in Float(rng.unit()) - 0.5 }
        var y = [Float](repeating: 0, count: s.m * s.n)
        let t = x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in time { kernel(xp.baseAddress!, yp.baseAddress!) } }
        }
        return 2.0 * Double(s.m * s.k * s.n) / t / 1e9
    }

    /// Random `[N, K]` weights with about `density` of them nonzero.
    func weights(_ s: Shape, seed: UInt64, density: Double = 1) -> Tensor {
        var rng = SplitMix(seed: seed)
        return Tensor(
            shape: [s.n, s.k],
            data: (0..<(s.n * s.k)).map { _ in
                density >= 1 || rng.unit() < density ? Float(rng.unit()) - 0.5 : 0
            })
    }

    /// Keeps about `keep` of the 1×4 blocks of each row (by a fixed pseudo-random choice).
    func blockPruned(_ w: Tensor, keep: Double) -> Tensor {
        var rng = SplitMix(seed: 17)
        var out = w
        let k = w.shape[1]
        for r in 0..<w.shape[0] {
            for g in 0..<((k + 3) / 4) where rng.unit() >= keep {
                for t in 0..<4 where 4 * g + t < k { out.data[r * k + 4 * g + t] = 0 }
            }
        }
        return out
    }

    public func run(shapes: [Shape], threadCounts: [Int]) throws {
        print("quern bench kernels  (isa \(ISA.active.rawValue); cpu: \(cpuModel()))")
        print(
            "target: fp32 >= 1.0x OpenBLAS on every shape; int8 >= 3x our fp32 (VNNI); 2 threads >= 1.8x one for M >= 512"
        )
        print("fp32 GEMM y = x·wᵀ, GFLOP/s (best of repeated runs), OpenBLAS via numpy in the same run\n")
        print("shape MxKxN        threads   quern  openblas   ratio")
        var measured: [Int: [Int: Double]] = [:]  // threads → shape index → GFLOP/s
        for threads in threadCounts {
            let pool = ThreadPool(threads: threads)
            let reference = try anchorGFLOPs(shapes: shapes, threads: threads)
            for (i, s) in shapes.enumerated() {
                let w = PackedWeights(weights(s, seed: 7))
                let ours = gflops(s, seed: 7) { SGEMM.linear($0, m: s.m, w, bias: nil, into: $1, pool: pool) }
                measured[threads, default: [:]][i] = ours
                let theirs = reference[i]
                let ratio = theirs.map { String(format: "%6.2f", ours / $0) } ?? "     -"
                let theirsText = theirs.map { String(format: "%8.1f", $0) } ?? "       -"
                print(s.column + String(format: " %7d %7.1f ", threads, ours) + theirsText + "  " + ratio)
            }
        }
        let layout = ISA.active == .vnni ? "K quads, vpdpbusd" : "K quads, vpmaddubsw (pair-bounded weights)"
        print(
            "\nint8 GEMM (u8 activations quantized per row inside the call × s8 weights; \(layout)), GOP/s vs our fp32:"
        )
        print("shape MxKxN        threads    int8    fp32   ratio")
        var measuredInt8: [Int: [Int: Double]] = [:]  // threads → shape index → GOP/s; the sparse tables reuse it
        for threads in threadCounts {
            let pool = ThreadPool(threads: threads)
            for (i, s) in shapes.enumerated() where s.m >= 16 {
                let w = QuantizedWeights(quantizing: weights(s, seed: 11))
                let ops = gflops(s, seed: 11) { QGEMM.linear($0, m: s.m, w, bias: nil, into: $1, pool: pool) }
                measuredInt8[threads, default: [:]][i] = ops
                let fp32 = measured[threads]?[i] ?? .nan
                print(s.column + String(format: " %7d %7.1f %7.1f %7.2f", threads, ops, fp32, ops / fp32))
            }
        }
        print("\nfp32 CSR sparse GEMM (unstructured pruning) vs our dense fp32, speed-up:")
        print("shape MxKxN        threads  density  sparse GFLOP/s-equiv  speed-up")
        for threads in threadCounts {
            let pool = ThreadPool(threads: threads)
            for (i, s) in shapes.enumerated() where s.isLarge {
                for density in [0.5, 0.3, 0.2, 0.1] {
                    let sparse = SparseWeights(weights(s, seed: 5, density: density))
                    let equivalent = gflops(s, seed: 5) {
                        SparseGEMM.linear($0, m: s.m, sparse, bias: nil, into: $1, pool: pool)
                    }
                    let dense = measured[threads]?[i] ?? .nan
                    print(
                        s.column
                            + String(
                                format: " %7d  %7.2f  %20.1f  %8.2f", threads, density, equivalent, equivalent / dense))
                }
            }
        }
        print(
            "\nint8 1x4 block-sparse GEMM vs our dense int8, speed-up (target: >= 2x at 80 % sparsity, >= 3x at 90 %):")
        print("shape MxKxN        threads  blocks kept  sparse GOP/s-equiv  dense int8  speed-up")
        for threads in threadCounts {
            let pool = ThreadPool(threads: threads)
            for (i, s) in shapes.enumerated() where s.isLarge {
                let denseOps = measuredInt8[threads]?[i] ?? .nan
                for kept in [0.5, 0.3, 0.2, 0.1] {
                    let pruned = QuantizedWeights(quantizing: blockPruned(weights(s, seed: 13), keep: kept))
                    let sparse = BlockSparseWeights(pruned)
                    let ops = gflops(s, seed: 13) {
                        SparseQGEMM.linear($0, m: s.m, sparse, bias: nil, into: $1, pool: pool)
                    }
                    print(
                        s.column
                            + String(
                                format: " %7d  %11.2f  %18.1f  %10.1f  %8.2f",
                                threads, sparse.blockDensity, ops, denseOps, ops / denseOps))
                }
            }
        }
        print("\nint8 CSR sparse GEMM (unstructured pruning) vs our dense int8, speed-up:")
        print("shape MxKxN        threads  density  sparse GOP/s-equiv  dense int8  speed-up")
        for threads in threadCounts {
            let pool = ThreadPool(threads: threads)
            for (i, s) in shapes.enumerated() where s.isLarge {
                let denseOps = measuredInt8[threads]?[i] ?? .nan
                for density in [0.5, 0.3, 0.2, 0.1] {
                    let sparse = SparseQuantizedWeights(
                        QuantizedWeights(quantizing: weights(s, seed: 17, density: density)))
                    let ops = gflops(s, seed: 17) {
                        SparseQGEMM.linear($0, m: s.m, sparse, bias: nil, into: $1, pool: pool)
                    }
                    print(
                        s.column
                            + String(
                                format: " %7d  %7.2f  %18.1f  %10.1f  %8.2f",
                                threads, sparse.density, ops, denseOps, ops / denseOps))
                }
            }
        }
        if let most = threadCounts.max(), most > 1 {
            print("\nparallel efficiency, \(most) threads over 1 (target >= 1.8 for M >= 512):")
            print("shape MxKxN          fp32    int8")
            for (i, s) in shapes.enumerated() where s.isLarge {
                func ratio(_ table: [Int: [Int: Double]]) -> String {
                    guard let a = table[1]?[i], let b = table[most]?[i] else { return "     -" }
                    return String(format: "%6.2fx", b / a)
                }
                print("  " + s.column + " " + ratio(measured) + "  " + ratio(measuredInt8))
            }
        }
    }

    /// OpenBLAS GFLOP/s per shape from the anchor script (nil entries if it is absent).
    func anchorGFLOPs(shapes: [Shape], threads: Int) throws -> [Double?] {
        let lines =
            Anchor.jsonLines(
                python: "python3", script: anchor, arguments: shapes.map { "\($0.m),\($0.k),\($0.n)" },
                environment: ["OPENBLAS_NUM_THREADS": String(threads)]) ?? []
        return shapes.indices.map { $0 < lines.count ? lines[$0]["gflops"]?.doubleValue : nil }
    }
}

extension SplitMix {
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
