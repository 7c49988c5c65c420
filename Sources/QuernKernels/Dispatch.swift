import CKernels
import QuernCore

#if canImport(Glibc)
    import Glibc
#endif

/// The instruction-set paths the kernels have. One binary runs on any x86-64: the
/// best path the CPU supports is chosen at run time (cpuid), and `QUERN_ISA` can force a
/// lower one, so every path can be exercised on one machine.
public enum ISA: String, CaseIterable, Sendable, Comparable {
    case scalar, avx2, avx512, vnni

    var rank: Int { ISA.allCases.firstIndex(of: self)! }
    public static func < (a: ISA, b: ISA) -> Bool { a.rank < b.rank }

    static let features = quern_cpu_features()
    static func has(_ feature: Int) -> Bool { features & UInt32(feature) != 0 }

    /// Paths this CPU can run. `.vnni` means int8 dot products in hardware, either
    /// AVX512-VNNI or AVX-VNNI (Alder Lake and later clients, which lack AVX-512), so
    /// `.vnni` does not imply AVX-512: the fp32 wide tile asks `has(QUERN_CPU_AVX512)`
    /// separately (`KernelTable.vnni`).
    public static let supported: [ISA] = {
        var out: [ISA] = [.scalar]
        if has(QUERN_CPU_AVX2) { out.append(.avx2) }
        if has(QUERN_CPU_AVX512) { out.append(.avx512) }
        if has(QUERN_CPU_VNNI) || has(QUERN_CPU_AVXVNNI) { out.append(.vnni) }
        return out
    }()

    /// The path kernels use by default: the best supported, or `QUERN_ISA` if it is
    /// supported (a path the CPU lacks would die with SIGILL, so it falls back, loudly).
    public static let active: ISA = {
        let best = supported.max()!
        guard let raw = getenv("QUERN_ISA").map({ String(cString: $0) }), !raw.isEmpty else { return best }
        guard let asked = ISA(rawValue: raw) else {
            Log.shared.warning("QUERN_ISA=\(raw) is not one of \(ISA.allCases.map(\.rawValue)); using \(best.rawValue)")
            return best
        }
        guard supported.contains(asked) else {
            Log.shared.warning(
                "QUERN_ISA=\(raw) is not supported by this CPU (it has \(supported.map(\.rawValue))); using \(best.rawValue)"
            )
            return best
        }
        return asked
    }()
}

/// 64-byte-aligned storage for packed operands.
public final class AlignedBuffer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    public let count: Int

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<T>.stride, alignment: 64)
        if zeroed { memset(raw, 0, max(count, 1) * MemoryLayout<T>.stride) }
        pointer = raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}
