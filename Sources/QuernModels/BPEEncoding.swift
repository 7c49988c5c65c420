import QuernCore

extension BPETokenizer {
    /// Per-thread encoding state: the scalar tables, the cache of merged words and scratch
    /// buffers. Encoding is pure; a session only makes it faster, so each worker thread
    /// keeps its own.
    public final class Session {
        public let tokenizer: BPETokenizer
        let scalars: BPEScalars
        let cutter: BPEPreTokenizing
        var cache = BPEWordCache()
        /// Set for a one-regex pipeline (every preset but StarCoder's): a Split whose regex
        /// matches at every position, so its matches are the words, then a plain ByteLevel;
        /// or ByteLevel with its own regex. Those go word by word with no list of pieces.
        let singlePattern: BPEPipeline.SplitPattern?
        var normalized: [UInt8] = []
        var codePoints: [UInt32] = []
        var arena: [UInt8] = []
        var pieces: [(Int, Int)] = []
        var nextPieces: [(Int, Int)] = []
        var events: [(Int, Int, Bool)] = []
        var addedSplits: [(Int, Int, Int32)] = []
        var normalizedSplits: [(Int, Int, Int32)] = []
        // The word being merged: a linked list of symbols, and a heap of candidate merges.
        var symbolIDs: [Int32] = []
        var symbolPrevious: [Int32] = []
        var symbolNext: [Int32] = []
        var symbolLength: [Int32] = []
        var heap: [UInt64] = []

        public init(_ tokenizer: BPETokenizer) {
            self.tokenizer = tokenizer
            scalars = BPEScalars(nfc: tokenizer.pipeline.nfc)
            cutter = BPEPreTokenizing(scalars: scalars)
            // (A literal pattern's matches leave gaps: it goes the long way.)
            let steps = tokenizer.pipeline.steps,
                plain = BPEPipeline.Step.byteLevel(addPrefixSpace: false, useRegex: false)
            var single: BPEPipeline.SplitPattern?
            if steps == [.byteLevel(addPrefixSpace: false, useRegex: true)] {
                single = .gpt2
            } else if steps.count == 2 && steps[1] == plain,
                case .split(let pattern, .isolated, invert: false) = steps[0]
            {
                if case .literal = pattern {} else { single = pattern }
            }
            singlePattern = single
        }

        /// The ids of `text`, with the post-processor's special tokens when `addSpecialTokens`.
        public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
            let t = tokenizer
            var out: [Int32] = []
            out.reserveCapacity(text.utf8.count / 3 + 8)
            if addSpecialTokens { out += t.prefixIDs }
            var text = text
            text.withUTF8 { u in
                guard let base = u.baseAddress else { return }
                if t.addedRaw.isEmpty {
                    segment(base, u.count, into: &out)
                    return
                }
                t.addedRaw.split(base, u.count, scalars: scalars, into: &addedSplits)
                for (start, end, id) in addedSplits {
                    if id >= 0 { out.append(id) } else { segment(base + start, end - start, into: &out) }
                }
            }
            if addSpecialTokens { out += t.suffixIDs }
            return out
        }

        /// One stretch of text between raw-matched added tokens: normalized, cut at the
        /// normalized added tokens, then into words.
        func segment(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
            guard n > 0 else { return }
            normalized.removeAll(keepingCapacity: true)
            if tokenizer.pipeline.nfc && scalars.nfc(p, n, into: &normalized, scratch: &codePoints) {
                let copy = normalized
                copy.withUnsafeBufferPointer { words($0.baseAddress!, $0.count, into: &out) }
            } else {
                words(p, n, into: &out)
            }
        }

        func words(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
            let t = tokenizer
            if t.addedNormalized.isEmpty { return preTokenize(p, n, into: &out) }
            t.addedNormalized.split(p, n, scalars: scalars, into: &normalizedSplits)
            let splits = normalizedSplits
            for (start, end, id) in splits {
                if id >= 0 { out.append(id) } else { preTokenize(p + start, end - start, into: &out) }
            }
        }

        /// Cuts text into words with the pipeline's steps and merges each.
        func preTokenize(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
            guard n > 0 else { return }
            if let pattern = singlePattern {
                var i = 0
                while i < n {
                    let end =
                        switch pattern {
                        case .cl100k(let d): cutter.cl100k(p, i, n, maxDigits: d)
                        default: cutter.gpt2(p, i, n)
                        }
                    merge(p + i, end - i, into: &out)
                    i = end
                }
                return
            }
            arena.removeAll(keepingCapacity: true)
            arena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            pieces.removeAll(keepingCapacity: true)
            pieces.append((0, n))
            for step in tokenizer.pipeline.steps {
                nextPieces.removeAll(keepingCapacity: true)
                cutter.apply(step, pieces, arena: &arena, into: &nextPieces, events: &events)
                swap(&pieces, &nextPieces)
                pieces.removeAll { $0.0 >= $0.1 }
            }
            let words = arena
            words.withUnsafeBufferPointer { a in
                for (start, end) in pieces { merge(a.baseAddress! + start, end - start, into: &out) }
            }
        }

        /// The ids of one word (its UTF-8 bytes), from the cache or by merging.
        func merge(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
            let t = tokenizer
            if n == 1 {
                let id = t.byteIDs[Int(w[0])]
                if id >= 0 { out.append(id) } else if let unknown = t.unknownID { out.append(unknown) }
                return
            }
            if t.ignoreMerges {
                let id = t.pieces.lookup(w, n)
                if id >= 0 {
                    out.append(id)
                    return
                }
            }
            if cache.lookup(w, n, into: &out) { return }
            let mark = out.count
            mergeWord(w, n, into: &out)
            cache.insert(w, n, out[mark...])
        }

        /// BPE as `tokenizers` does it, to the letter: one symbol per byte, then the
        /// lowest-ranked merge first (the leftmost among equals), from a heap whose stale
        /// entries are skipped when the pair they name no longer makes the same token.
        func mergeWord(_ w: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
            let t = tokenizer
            symbolIDs.removeAll(keepingCapacity: true)
            symbolLength.removeAll(keepingCapacity: true)
            var pendingUnknown: Int32 = 0  // bytes of an unknown run not yet added
            func add(_ id: Int32, _ length: Int32) {
                symbolIDs.append(id)
                symbolLength.append(length)
            }
            for i in 0..<n {
                let id = t.byteIDs[Int(w[i])]
                if id >= 0 {
                    if pendingUnknown > 0 { add(t.unknownID!, pendingUnknown) }
                    pendingUnknown = 0
                    add(id, 1)
                } else if t.unknownID != nil {
                    if pendingUnknown > 0 && !t.fuseUnknown {
                        add(t.unknownID!, pendingUnknown)
                        pendingUnknown = 0
                    }
                    pendingUnknown += 1
                }
            }
            if pendingUnknown > 0 { add(t.unknownID!, pendingUnknown) }
            let count = symbolIDs.count
            symbolPrevious.removeAll(keepingCapacity: true)
            symbolNext.removeAll(keepingCapacity: true)
            for i in 0..<count {
                symbolPrevious.append(Int32(i - 1))
                symbolNext.append(i + 1 < count ? Int32(i + 1) : -1)
            }
            heap.removeAll(keepingCapacity: true)
            if count > 1 {
                for i in 0..<(count - 1) {
                    let rank = t.merges.rank(symbolIDs[i], symbolIDs[i + 1])
                    if rank >= 0 { push(rank, i) }
                }
            }
            while let top = pop() {
                let rank = Int32(truncatingIfNeeded: top >> 32), pos = Int(top & 0xFFFF_FFFF)
                let newID = t.merges.newIDs[Int(rank)]
                if symbolLength[pos] == 0 || symbolNext[pos] == -1 { continue }
                let right = Int(symbolNext[pos])
                let current = t.merges.rank(symbolIDs[pos], symbolIDs[right])
                if current < 0 || t.merges.newIDs[Int(current)] != newID { continue }
                symbolIDs[pos] = newID
                symbolLength[pos] += symbolLength[right]
                symbolNext[pos] = symbolNext[right]
                symbolLength[right] = 0
                let after = Int(symbolNext[right])
                if after >= 0 { symbolPrevious[after] = Int32(pos) }
                let before = Int(symbolPrevious[pos])
                if before >= 0 {
                    let r = t.merges.rank(symbolIDs[before], newID)
                    if r >= 0 { push(r, before) }
                }
                if after >= 0 {
                    let r = t.merges.rank(newID, symbolIDs[after])
                    if r >= 0 { push(r, pos) }
                }
            }
            for i in 0..<count where symbolLength[i] != 0 { out.append(symbolIDs[i]) }
        }

        // A binary min-heap of (rank, position), packed so that comparing the packed values
        // orders by rank, then position.
        func push(_ rank: Int32, _ pos: Int) {
            heap.append(UInt64(UInt32(rank)) << 32 | UInt64(pos))
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if heap[parent] <= heap[i] { break }
                heap.swapAt(parent, i)
                i = parent
            }
        }

        func pop() -> UInt64? {
            guard let top = heap.first else { return nil }
            let last = heap.removeLast()
            if heap.isEmpty { return top }
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l] < heap[m] { m = l }
                if r < heap.count && heap[r] < heap[m] { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
            return top
        }
    }
}

/// Added tokens and where they match, as `tokenizers`' AddedVocabulary finds them: the
/// leftmost match, the longest there, scanning on after it; `single_word` drops a match
/// inside a word, `lstrip`/`rstrip` take the whitespace beside it into the token.
struct BPEAddedTokens: Sendable {
    struct Entry: Sendable {
        let bytes: [UInt8]
        let id: Int32
        let singleWord: Bool
        let lstrip: Bool
        let rstrip: Bool
    }
    let entries: [Entry]
    /// Entry indices by first byte, longest first.
    let byFirstByte: [[Int]]

    init(_ tokens: [(text: String, id: Int32, token: BPETokenizer.AddedToken)]) {
        let entries = tokens.map {
            Entry(
                bytes: Array($0.text.utf8), id: $0.id, singleWord: $0.token.singleWord, lstrip: $0.token.lstrip,
                rstrip: $0.token.rstrip)
        }
        var first = [[Int]](repeating: [], count: 256)
        for (i, e) in entries.enumerated() where !e.bytes.isEmpty { first[Int(e.bytes[0])].append(i) }
        self.entries = entries
        byFirstByte = first.map { list in list.sorted { entries[$0].bytes.count > entries[$1].bytes.count } }
    }

    var isEmpty: Bool { entries.isEmpty }

    /// The longest entry matching at `p[i]`.
    func longest(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Int? {
        for e in byFirstByte[Int(p[i])] {
            let b = entries[e].bytes
            guard b.count <= n - i else { continue }
            var same = true
            for j in 1..<b.count where p[i + j] != b[j] {
                same = false
                break
            }
            if same { return e }
        }
        return nil
    }

    /// Cuts `n` bytes at `p` into text (id -1) and added tokens, as `find_matches` does.
    func split(_ p: UnsafePointer<UInt8>, _ n: Int, scalars: BPEScalars, into out: inout [(Int, Int, Int32)]) {
        out.removeAll(keepingCapacity: true)
        var searchFrom = 0, startOffset = 0
        while searchFrom < n {
            var found: (Int, Int)?
            var i = searchFrom
            while i < n {
                if !byFirstByte[Int(p[i])].isEmpty, let e = longest(p, i, n) {
                    found = (i, e)
                    break
                }
                i += 1
            }
            guard let (matchStart, e) = found else { break }
            let entry = entries[e]
            let matchEnd = matchStart + entry.bytes.count
            searchFrom = matchEnd
            if entry.singleWord {
                let startSpace = matchStart == 0 || !Self.isWord(lastScalarBefore: matchStart, p, scalars)
                let stopSpace = matchEnd == n || !Self.isWord(UTF8Scalars.decode(p, matchEnd).0, scalars)
                if !startSpace || !stopSpace { continue }
            }
            var start = matchStart, stop = matchEnd
            if entry.lstrip {
                var s = matchStart
                while s > startOffset {  // no further: the start is never before startOffset
                    let before = Self.scalarStart(before: s, p)
                    if scalars.flags(UTF8Scalars.decode(p, before).0) & BPEUnicode.space == 0 { break }
                    s = before
                }
                start = max(s, startOffset)
            }
            if entry.rstrip {
                while stop < n {
                    let (v, length) = UTF8Scalars.decode(p, stop)
                    if scalars.flags(v) & BPEUnicode.space == 0 { break }
                    stop += length
                }
            }
            if startOffset < start { out.append((startOffset, start, -1)) }
            out.append((start, stop, entry.id))
            startOffset = stop
        }
        if startOffset != n { out.append((startOffset, n, -1)) }
    }

    static func scalarStart(before i: Int, _ p: UnsafePointer<UInt8>) -> Int {
        var s = i - 1
        while s > 0 && p[s] & 0xC0 == 0x80 { s -= 1 }
        return s
    }

    static func isWord(lastScalarBefore i: Int, _ p: UnsafePointer<UInt8>, _ scalars: BPEScalars) -> Bool {
        isWord(UTF8Scalars.decode(p, scalarStart(before: i, p)).0, scalars)
    }

    static func isWord(_ v: UInt32, _ scalars: BPEScalars) -> Bool { scalars.flags(v) & BPEUnicode.word != 0 }
}

/// Merge rules: (left id, right id) → rank, open addressing over the packed pair; the
/// token a rank makes is `newIDs[rank]`. A pair listed twice keeps its last rank, as the
/// hash map `tokenizers` builds does.
struct BPEMergeTable: Sendable {
    private var keys: [UInt64]
    private var ranks: [Int32]
    private let mask: Int
    var newIDs: [Int32] = []

    init(count: Int) {
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        keys = [UInt64](repeating: .max, count: capacity)
        ranks = [Int32](repeating: -1, count: capacity)
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    mutating func insert(_ a: Int32, _ b: Int32, rank: Int32) {
        let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
        var h = slot(key)
        while keys[h] != .max && keys[h] != key { h = (h + 1) & mask }
        keys[h] = key
        ranks[h] = rank
    }

    /// The rank of merging `a` then `b`, or -1.
    @inline(__always) func rank(_ a: Int32, _ b: Int32) -> Int32 {
        let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
        var h = slot(key)
        while true {
            let k = keys[h]
            if k == key { return ranks[h] }
            if k == .max { return -1 }
            h = (h + 1) & mask
        }
    }
}

/// A session's memory of merged words: their bytes → ids, open addressing over bytes kept
/// back to back. It grows with use and is cleared when full, so it stays bounded however
/// varied the text.
struct BPEWordCache {
    static let maxWords = 1 << 16
    static let maxWordBytes = 256
    private var slots = [Int32](repeating: -1, count: 1 << 10)
    private var hashes: [Int] = []
    private var keyStarts: [Int32] = [0]
    private var keys: [UInt8] = []
    private var valueStarts: [Int32] = [0]
    private var values: [Int32] = []

    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<n { h = (h ^ UInt64(p[i])) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Appends the cached ids of the word and returns true, or returns false.
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) -> Bool {
        guard n <= Self.maxWordBytes else { return false }
        let h = Self.hash(p, n), mask = slots.count - 1
        var s = h & mask
        while true {
            let e = Int(slots[s])
            if e < 0 { return false }
            if hashes[e] == h && Int(keyStarts[e + 1] - keyStarts[e]) == n {
                let k = Int(keyStarts[e])
                var same = true
                for j in 0..<n where keys[k + j] != p[j] {
                    same = false
                    break
                }
                if same {
                    out += values[Int(valueStarts[e])..<Int(valueStarts[e + 1])]
                    return true
                }
            }
            s = (s + 1) & mask
        }
    }

    mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, _ ids: ArraySlice<Int32>) {
        guard n <= Self.maxWordBytes else { return }
        if hashes.count >= Self.maxWords {
            slots = [Int32](repeating: -1, count: slots.count)
            hashes.removeAll(keepingCapacity: true)
            keyStarts = [0]
            keys.removeAll(keepingCapacity: true)
            valueStarts = [0]
            values.removeAll(keepingCapacity: true)
        } else if hashes.count * 2 >= slots.count {
            slots = [Int32](repeating: -1, count: slots.count * 2)
            for (e, h) in hashes.enumerated() { place(h, e) }
        }
        let h = Self.hash(p, n)
        place(h, hashes.count)
        hashes.append(h)
        keys.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        keyStarts.append(Int32(keys.count))
        values += ids
        valueStarts.append(Int32(values.count))
    }

    private mutating func place(_ h: Int, _ entry: Int) {
        let mask = slots.count - 1
        var s = h & mask
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = Int32(entry)
    }
}
