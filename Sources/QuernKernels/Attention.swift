import CKernels
import Foundation

/// Multi-head self-attention on the kernel set.
public enum Attention {
    /// Self-attention over unpadded sequences packed one after another: sequence `i` is
    /// rows `offsets[i]..<offsets[i + 1]` of qkv (`3·heads·headDim` floats a row) and of
    /// `out` (`heads·headDim`). No padding means no mask and no wasted rows; sequences
    /// are split across the pool. `bf16` takes the bfloat16 kernel where the path has one
    /// (int8 encoders: their quantized GEMMs err more than its products).
    public static func sequences(
        qkv: UnsafePointer<Float>, offsets: [Int], heads: Int, headDim: Int,
        into out: UnsafeMutablePointer<Float>, bf16: Bool = false, isa: ISA = .active, pool: ThreadPool = .shared
    ) {
        sequences(
            qkv: qkv, offsets: offsets, heads: heads, headDim: headDim, into: out, bf16: bf16, kernels: isa.kernels,
            pool: pool)
    }

    /// The same through a given table (tests pass `KernelTable.avx512Emulated`).
    static func sequences(
        qkv: UnsafePointer<Float>, offsets: [Int], heads: Int, headDim: Int,
        into out: UnsafeMutablePointer<Float>, bf16: Bool, kernels: KernelTable, pool: ThreadPool
    ) {
        let hidden = heads * headDim, scale = 1 / Float(headDim).squareRoot()
        let count = offsets.count - 1
        guard count > 0 else { return }
        let longest = (0..<count).map { offsets[$0 + 1] - offsets[$0] }.max()!
        let kernel = bf16 ? kernels.attentionBF16 ?? kernels.attention : kernels.attention
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
        into out: UnsafeMutablePointer<Float>, outStride: Int, scores: UnsafeMutablePointer<Float>,
        isa: ISA = .active
    ) {
        cached(
            q: q, qStride: qStride, rows: rows, first: first, keys: keys, values: values, heads: heads,
            kvHeads: kvHeads, headDim: headDim, window: window, scale: scale, into: out, outStride: outStride,
            scores: scores, kernels: isa.kernels)
    }

    /// The same through a given table (tests compare each path with the scalar twin).
    static func cached(
        q: UnsafePointer<Float>, qStride: Int, rows: Int, first: Int, keys: UnsafePointer<Float>,
        values: UnsafePointer<Float>, heads: Int, kvHeads: Int, headDim: Int, window: Int?, scale: Float,
        into out: UnsafeMutablePointer<Float>, outStride: Int, scores: UnsafeMutablePointer<Float>,
        kernels: KernelTable
    ) {
        precondition(kvHeads > 0 && heads % kvHeads == 0 && (window ?? 1) > 0)
        kernels.attentionCached(
            q, qStride, rows, first, keys, values, heads, kvHeads, headDim, window ?? 0, scale, out, outStride, scores)
    }

    /// Floats of scratch `cached` needs for sequences up to `positions` long.
    public static func cachedScratch(positions: Int) -> Int { quern_attention_cached_scratch(positions) }
}
