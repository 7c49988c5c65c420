/// A dense fp32 tensor in row-major order. Shapes are written out where tensors are
/// used: `[batch, features]`, `[out_features, in_features]`.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }
    public var rows: Int { shape.first ?? 1 }
    /// Length of one row: the product of every dimension after the first.
    public var rowLength: Int { shape.dropFirst().reduce(1, *) }

    public func row(_ i: Int) -> ArraySlice<Float> { data[(i * rowLength)..<((i + 1) * rowLength)] }

    /// Index of each row's largest value (the first on ties): a classifier's predictions.
    public func argmaxRows() -> [Int] {
        let n = rowLength
        return (0..<rows).map { r in
            var best = 0
            for c in 1..<max(n, 1) where data[r * n + c] > data[r * n + best] { best = c }
            return best
        }
    }
}
