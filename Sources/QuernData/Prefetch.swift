import Foundation
import QuernCore

/// Runs libarchive (decompression and unpacking) on its own thread, a few megabytes
/// ahead of the record decoder, so the two share the machine's cores the way
/// `tar xzf` and its `gzip` child do. Data arrives in pooled chunks; memory stays at
/// `depth` chunks whatever the archive's size.
final class ArchivePrefetcher: @unchecked Sendable {
    /// A pooled buffer of one member's decompressed bytes.
    final class Chunk {
        let storage: UnsafeMutableRawBufferPointer
        var count = 0
        /// Compressed bytes read from the file once this chunk was filled.
        var compressedAfter = 0
        init(capacity: Int) { storage = .allocate(byteCount: capacity, alignment: 64) }
        deinit { storage.deallocate() }
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }
    }

    enum Message {
        /// A member header; `read` says whether its data follows.
        case entry(ArchiveReader.Entry, read: Bool)
        case data(Chunk)
        case endOfMember
        case end
        case failure(Error)
    }

    private let reader: ArchiveReader
    private let shouldRead: (ArchiveReader.Entry) -> Bool
    private let chunkSize: Int
    private let depth: Int
    private let condition = NSCondition()
    private var queue: [Message] = []
    private var free: [Chunk] = []
    private var cancelled = false
    private var thread: Thread?

    init(
        reader: ArchiveReader, chunkSize: Int = 1 << 20, depth: Int = 4,
        shouldRead: @escaping (ArchiveReader.Entry) -> Bool
    ) {
        self.reader = reader
        self.chunkSize = chunkSize
        self.depth = depth
        self.shouldRead = shouldRead
        // The thread keeps the prefetcher alive until it exits; RecordStream cancels it.
        let t = Thread { self.produce() }
        t.name = "quern.archive"
        thread = t
        t.start()
    }

    deinit {
        cancel()
    }

    /// Stops the producer and waits for it, so the archive is never read after this.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while thread != nil { condition.wait() }
        condition.unlock()
    }

    /// The next message, waiting for the producer if needed.
    func next() -> Message {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty { condition.wait() }
        let m = queue.removeFirst()
        condition.broadcast()
        return m
    }

    /// Gives a consumed chunk back to the pool.
    func recycle(_ chunk: Chunk) {
        condition.lock()
        chunk.count = 0
        free.append(chunk)
        condition.broadcast()
        condition.unlock()
    }

    private func send(_ m: Message) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= depth && !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(m)
        condition.broadcast()
        return true
    }

    private func takeChunk() -> Chunk? {
        condition.lock()
        defer { condition.unlock() }
        if cancelled { return nil }
        return free.popLast() ?? Chunk(capacity: chunkSize)
    }

    private func produce() {
        defer {
            condition.lock()
            thread = nil
            condition.broadcast()
            condition.unlock()
        }
        do {
            while let entry = try reader.next() {
                let read = shouldRead(entry)
                guard send(.entry(entry, read: read)) else { return }
                guard read else { continue }
                guard var chunk = takeChunk() else { return }
                while let block = try reader.readBlock() {
                    var offset = 0
                    while offset < block.count {
                        let n = min(block.count - offset, chunkSize - chunk.count)
                        (chunk.storage.baseAddress! + chunk.count).copyMemory(
                            from: block.baseAddress! + offset, byteCount: n)
                        chunk.count += n
                        offset += n
                        if chunk.count == chunkSize {
                            chunk.compressedAfter = reader.compressedBytesRead
                            guard send(.data(chunk)), let c = takeChunk() else { return }
                            chunk = c
                        }
                    }
                }
                if chunk.count > 0 {
                    chunk.compressedAfter = reader.compressedBytesRead
                    guard send(.data(chunk)) else { return }
                } else {
                    recycle(chunk)
                }
                guard send(.endOfMember) else { return }
            }
            _ = send(.end)
        } catch {
            _ = send(.failure(error))
        }
    }
}
