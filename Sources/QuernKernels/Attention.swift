import CKernels
import Foundation

/// Multi-head self-attention over a padded batch, on the packed GEMM and the masked
/// softmax: for each (sequence, head), `softmax(Q·Kᵀ/√d, mask)·V`. Work is split by
/// (sequence, head) across the pool; the GEMMs inside a task run on the calling thread.
public enum Attention {
    /// qkv: `[batch, seq, 3·heads·headDim]` (all of Q, then K, then V, heads contiguous in
    /// each); keep: `[batch, seq]` (1 = real token, 0 = padding; nil = all real).
    /// Writes `[batch, seq, heads·headDim]` to `out`.
    public static func forward(qkv: UnsafePointer<Float>, batch: Int, seq: Int, heads: Int, headDim: Int,
                               keep: UnsafePointer<UInt8>?, into out: UnsafeMutablePointer<Float>,
                               isa: ISA = .active, pool: ThreadPool = .shared) {
        let hidden = heads * headDim, row = 3 * hidden
        let scale = 1 / Float(headDim).squareRoot()
        pool.parallelFor(batch * heads) { task in
            let b = task / heads, h = task % heads
            var q = [Float](repeating: 0, count: seq * headDim)
            var k = [Float](repeating: 0, count: seq * headDim)
            var vt = [Float](repeating: 0, count: headDim * seq)   // Vᵀ: [headDim, seq]
            for s in 0..<seq {
                let base = qkv + (b * seq + s) * row + h * headDim
                for d in 0..<headDim {
                    q[s * headDim + d] = base[d] * scale            // fold 1/√d into Q
                    k[s * headDim + d] = base[hidden + d]
                    vt[d * seq + s] = base[2 * hidden + d]
                }
            }
            var scores = [Float](repeating: 0, count: seq * seq)
            var context = [Float](repeating: 0, count: seq * headDim)
            let keys = PackedWeights(k, n: seq, k: headDim)
            let values = PackedWeights(vt, n: headDim, k: seq)
            q.withUnsafeBufferPointer { qp in
                scores.withUnsafeMutableBufferPointer { sp in
                    SGEMM.linear(qp.baseAddress!, m: seq, keys, bias: nil, into: sp.baseAddress!, isa: isa, pool: .inline)
                    Norms.softmax(sp.baseAddress!, rows: seq, n: seq, keep: keep.map { $0 + b * seq }, isa: isa)
                    context.withUnsafeMutableBufferPointer { cp in
                        SGEMM.linear(UnsafePointer(sp.baseAddress!), m: seq, values, bias: nil, into: cp.baseAddress!,
                                     isa: isa, pool: .inline)
                    }
                }
            }
            for s in 0..<seq {
                let dst = out + (b * seq + s) * hidden + h * headDim
                for d in 0..<headDim { dst[d] = context[s * headDim + d] }
            }
        }
    }
}

extension Attention {
    /// Self-attention over unpadded sequences packed one after another: sequence `i` is
    /// rows `offsets[i]..<offsets[i + 1]` of qkv (`3·heads·headDim` floats a row) and of
    /// `out` (`heads·headDim`). No padding means no mask and no wasted rows; sequences
    /// are split across the pool.
    public static func sequences(qkv: UnsafePointer<Float>, offsets: [Int], heads: Int, headDim: Int,
                                 into out: UnsafeMutablePointer<Float>, isa: ISA = .active, pool: ThreadPool = .shared) {
        let hidden = heads * headDim, scale = 1 / Float(headDim).squareRoot()
        let count = offsets.count - 1
        guard count > 0 else { return }
        let longest = (0..<count).map { offsets[$0 + 1] - offsets[$0] }.max()!
        let kernel = isa == .scalar ? quern_attention_seq_scalar : quern_attention_seq_avx2
        let scratchSize = quern_attention_scratch(longest, headDim)
        if pool.threads == 1 {
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
            defer { scratch.deallocate() }
            for i in 0..<count where offsets[i + 1] > offsets[i] {
                kernel(qkv + offsets[i] * 3 * hidden, offsets[i + 1] - offsets[i], heads, headDim, scale, scratch, out + offsets[i] * hidden)
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

/// Rows of an embedding table by id.
public enum Embedding {
    /// table: `[vocab, dim]`; returns `[ids.count, dim]`, or nil if an id is out of range.
    public static func gather(_ table: Tensor, ids: [Int]) -> Tensor? {
        let vocab = table.rows, dim = table.rowLength
        guard ids.allSatisfy({ $0 >= 0 && $0 < vocab }) else { return nil }
        var out = [Float](repeating: 0, count: ids.count * dim)
        table.data.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                for (i, id) in ids.enumerated() {
                    (o.baseAddress! + i * dim).update(from: t.baseAddress! + id * dim, count: dim)
                }
            }
        }
        return Tensor(shape: [ids.count, dim], data: out)
    }
}

extension ThreadPool {
    /// Runs everything on the calling thread: for kernels called from inside a task.
    public static let inline = ThreadPool(threads: 1)
}
