import CKernels
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A persistent pool of worker threads with a parallel-for whose per-call cost is well
/// under a microsecond while the workers are spinning. Workers spin briefly after each
/// job (kernels call back within microseconds, and waking a sleeping thread on a VM
/// costs 30–500 µs), then sleep on a condition variable. The calling thread works too.
///
/// Work is handed out through one 64-bit atomic: generation (16 bits) | task count
/// (24) | next index (24). A worker can only claim an index of the generation it saw,
/// so a late worker can never run a task of the next call.
public final class ThreadPool: @unchecked Sendable {
    /// The pool kernels use: `QUERN_THREADS` threads if set, else one per online core.
    public static let shared = ThreadPool(threads: ThreadPool.defaultThreads)

    public static var defaultThreads: Int {
        if let s = getenv("QUERN_THREADS"), let n = Int(String(cString: s)), n > 0 { return n }
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// Threads that run tasks, the caller included.
    public let threads: Int
    private let state = Atomic<UInt64>(0)
    private let remaining = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private var task: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    /// Serialises callers: one parallel-for at a time (kernels do not nest them).
    private let callers = Mutex<Void>(())

    private static let spinIterations = 20_000

    /// Runs everything on the caller: for work too small to be worth a hand-off.
    public static let single = ThreadPool(threads: 1)

    public init(threads: Int) {
        self.threads = max(1, threads)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for _ in 1..<self.threads {
            var tid = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            pthread_create(
                &tid, nil,
                { arg in
                    let pool = Unmanaged<ThreadPool>.fromOpaque(arg!).takeRetainedValue()
                    pool.workerLoop()
                    return nil
                }, box)
            pthread_detach(tid)
        }
    }

    @inline(__always) static func generation(_ s: UInt64) -> UInt64 { s >> 48 }
    @inline(__always) static func count(_ s: UInt64) -> Int { Int((s >> 24) & 0xFF_FFFF) }
    @inline(__always) static func index(_ s: UInt64) -> Int { Int(s & 0xFF_FFFF) }

    /// Runs `body(0..<n)` across the pool and returns when every call has finished.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 || threads == 1 {
            for i in 0..<n { body(i) }
            return
        }
        precondition(n < 1 << 24, "parallelFor: too many tasks")
        callers.withLock { _ in
            withoutActuallyEscaping(body) { body in
                task = body
                remaining.store(n, ordering: .relaxed)
                let gen = (Self.generation(state.load(ordering: .relaxed)) + 1) & 0xFFFF
                state.store(gen << 48 | UInt64(n) << 24, ordering: .sequentiallyConsistent)
                if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                    pthread_mutex_lock(&mutex)
                    pthread_cond_broadcast(&wake)
                    pthread_mutex_unlock(&mutex)
                }
                runTasks(generation: gen)
                while remaining.load(ordering: .acquiring) > 0 { spinPause() }
                task = nil
            }
        }
    }

    /// Claims and runs tasks of `generation` until none are left.
    private func runTasks(generation gen: UInt64) {
        var s = state.load(ordering: .acquiring)
        while Self.generation(s) == gen && Self.index(s) < Self.count(s) {
            let (exchanged, original) = state.compareExchange(
                expected: s, desired: s + 1,
                ordering: .acquiringAndReleasing)
            if !exchanged { s = original; continue }
            task!(Self.index(s))
            remaining.subtract(1, ordering: .releasing)
            s = state.load(ordering: .acquiring)
        }
    }

    private func workerLoop() {
        var seen = Self.generation(state.load(ordering: .acquiring))
        while true {
            var spins = 0
            var gen = Self.generation(state.load(ordering: .acquiring))
            while gen == seen && spins < Self.spinIterations {
                spinPause()
                spins += 1
                gen = Self.generation(state.load(ordering: .acquiring))
            }
            if gen == seen {
                pthread_mutex_lock(&mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while Self.generation(state.load(ordering: .sequentiallyConsistent)) == seen {
                    pthread_cond_wait(&wake, &mutex)
                }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(&mutex)
                gen = Self.generation(state.load(ordering: .acquiring))
            }
            seen = gen
            runTasks(generation: gen)
        }
    }

    @inline(__always) private func spinPause() {
        #if arch(x86_64)
            quern_cpu_relax()
        #endif
    }
}
