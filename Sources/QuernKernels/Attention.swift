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
