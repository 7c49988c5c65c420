import Foundation
import QuernCore

/// Rewrites `lease.json` every few seconds with a fresh heartbeat and the job's
/// progress, from its own thread, so `quern status` and other hosts see a live owner.
final class Heartbeat: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let queue = DispatchQueue(label: "quern.heartbeat")
    private let lock = NSLock()
    private var progress: JSONValue = .null

    init(spool: Spool, dir: String, started: Double, interval: Double) {
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            try? spool.writeLease(in: dir, started: started, progress: self.current)
        }
        timer.resume()
    }

    var current: JSONValue {
        lock.lock(); defer { lock.unlock() }
        return progress
    }

    func update(_ p: JSONValue) {
        lock.lock(); defer { lock.unlock() }
        progress = p
    }

    /// Stops the timer and waits out any write in flight: after this returns nothing
    /// touches the job directory, so it can be renamed.
    func stop() {
        timer.cancel()
        queue.sync {}
    }
}
