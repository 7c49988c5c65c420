import CKernels
import Foundation

/// Multi-head self-attention on the kernel set.
public enum Attention {
    /// Self-attention over unpadded sequences packed one after another: sequence `i` is
    /// rows `offsets[i]..<offsets[i + 1]` of qkv (`3·heads·headDim` floats a row) and of
    /// `out` (`heads·headDim`). No padding means no mask and no wasted rows; sequences
    /// are split across the pool.
    public static func sequences(
        qkv: UnsafePointer<Float>, offsets: [Int], heads: Int, headDim: Int,
        into out: UnsafeMutablePointer<Float>, isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        let hidden = heads * headDim, scale = 1 / Float(headDim).squareRoot()
        let count = offsets.count - 1
        guard count > 0 else { return }
        let longest = (0..<count).map { offsets[$0 + 1] - offsets[$0] }.max()!
        let kernel = isa.kernels.attention
        let scratchSize = quern_attention_scratch(longest, headDim)
        if pool.threads == 1 {
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
            defer { scratch.deallocate() }
            for i in 0..<count where offsets[i + 1] > offsets[i] {
                kernel(
                    qkv + offsets[i] * 3 * hidden, offsets[i + 1] - offsets[i], heads, headDim, scale, scratch,
                    out + offsets[i] * hidden)
            }
            return
        }
        pool.parallelFor(count) { i in
            let start = offsets[i], seq = offsets[i + 1] - start
            guard seq > 0 else { return }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
            defer { scratch.deallocate() }
            kernel(qkv + start * 3 * hidden, seq, heads, headDim, scale, scratch, out + start * hidden)
        }
    }
}

extension Attention {
    /// Causal attention of new query rows against a sequence's key/value cache, with
    /// grouped-query heads: query row `i` sits at position `first + i` and attends keys
    /// `max(0, first + i − window + 1) … first + i` (all of them without a window).
    /// `q` is `[rows, heads·headDim]` (row stride `qStride`), `keys`/`values` are
    /// `[positions, kvHeads·headDim]`, and query head `h` reads key/value head
    /// `h / (heads / kvHeads)`. Each (row, head) is computed alone, in a fixed order, so
    /// a row's output never depends on which rows or sequences share the call.
    public static func cached(
        q: UnsafePointer<Float>, qStride: Int, rows: Int, first: Int, keys: UnsafePointer<Float>,
        values: UnsafePointer<Float>, heads: Int, kvHeads: Int, headDim: Int, window: Int?, scale: Float,
        into out: UnsafeMutablePointer<Float>, outStride: Int, scores: UnsafeMutablePointer<Float>
    ) {
        let group = heads / kvHeads, kvStride = kvHeads * headDim
        for i in 0..<rows {
            let position = first + i
            let start = window.map { max(0, position - $0 + 1) } ?? 0
            for h in 0..<heads {
                let query = q + i * qStride + h * headDim
                let kv = (h / group) * headDim
                var best = -Float.infinity
                for j in start...position {
                    let s = dot(query, keys + j * kvStride + kv, headDim) * scale
                    scores[j - start] = s
                    best = max(best, s)
                }
                var total: Float = 0
                for j in 0...(position - start) {
                    let e = Foundation.exp(scores[j] - best)
                    scores[j] = e
                    total += e
                }
                let o = out + i * outStride + h * headDim
                o.update(repeating: 0, count: headDim)
                let inverse = 1 / total
                for j in start...position {
                    axpy(scores[j - start] * inverse, values + j * kvStride + kv, o, headDim)
                }
            }
        }
    }

    /// Floats of scratch `cached` needs for sequences up to `positions` long.
    public static func cachedScratch(positions: Int) -> Int { max(positions, 1) }

    /// `a · b` over `n` floats in eight fixed lanes.
    @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var lanes = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            lanes.addProduct(
                UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self),
                UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
            i += 8
        }
        var s = lanes.sum()
        while i < n {
            s += a[i] * b[i]
            i += 1
        }
        return s
    }

    /// `y += alpha · x` over `n` floats.
    @inline(__always) static func axpy(
        _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        for i in 0..<n { y[i] += alpha * x[i] }
    }
}
