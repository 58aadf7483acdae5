// One CPU's trace buffer (the kernel's per-CPU ring_buffer_per_cpu): records of whole
// words, written one after the other, in overwrite mode: when a record does not fit, the
// oldest ones give way (they count as overrun). A record never spans the end of the
// storage: what is left there becomes padding and the writer starts again at word 0.
// Writers take the ring's spinlock for the copy; readers copy records out under it. The
// storage is made on first use and remade when buffer_size_kb changes, under the lock.
import Locking

final class TraceRing: @unchecked Sendable {  // everything is guarded by `lock`
    struct State {
        var storage: UnsafeMutablePointer<UInt64>?
        var capacity = 0
        /// The next word to write, and the oldest record's first word.
        var head = 0
        var tail = 0
        /// Records in the ring (padding not counted), and all ever written and overrun.
        var entries = 0
        var written = 0
        var overrun = 0
    }

    /// A record's first word: its length in words (bits 0-15), its event (16-31; padding
    /// is 0xffff), the writer's pid (32-63).
    static let paddingEvent: UInt64 = 0xffff

    private let lock = SpinLock(State())

    deinit { lock.withLock { $0.storage?.deallocate() } }

    /// Storage of `words` words, empty; nil frees it.
    func resize(words: Int?) {
        let new = words.map { UnsafeMutablePointer<UInt64>.allocate(capacity: $0) }
        let old = lock.withLock { state in
            defer { state = State(storage: new, capacity: words ?? 0) }
            return state.storage
        }
        old?.deallocate()
    }

    /// Reserves `count` words and lets `fill` write them, under the lock. False when the
    /// record is larger than the ring.
    @inline(__always)
    func write(count: Int, _ fill: (UnsafeMutablePointer<UInt64>) -> Void) -> Bool {
        lock.withLock { state in
            guard let storage = state.storage, count <= state.capacity else { return false }
            let capacity = state.capacity
            if state.head + count > capacity {
                // Pad to the end (evicting what lives there) and wrap.
                makeRoom(&state, upTo: capacity)
                if state.head < capacity { storage[state.head] = UInt64(capacity - state.head) | Self.paddingEvent << 16 }
                state.head = 0
            }
            makeRoom(&state, upTo: state.head + count)
            fill(storage + state.head)
            state.head += count
            if state.head == capacity { state.head = 0 }
            state.entries += 1
            state.written += 1
            return true
        }
    }

    /// Evicts the oldest records until [head, end) holds none.
    @inline(__always)
    private func makeRoom(_ state: inout State, upTo end: Int) {
        while state.entries > 0 && state.tail >= state.head && state.tail < end {
            dropTail(&state)
            state.overrun += 1
        }
        if state.entries == 0 { state.tail = state.head }
    }

    /// Moves the tail past its record (and past padding, to word 0).
    @inline(__always)
    private func dropTail(_ state: inout State) {
        let storage = state.storage!
        state.tail += Int(storage[state.tail] & 0xffff)
        state.entries -= 1
        if state.tail == state.capacity || (state.entries > 0 && storage[state.tail] >> 16 & 0xffff == Self.paddingEvent) { state.tail = 0 }
    }

    /// Copies the records out, oldest first; `consume` removes them (trace_pipe).
    func records(consume: Bool, limit: Int = .max) -> [[UInt64]] {
        lock.withLock { state in
            var out: [[UInt64]] = []
            var state2 = state
            while state2.entries > 0 && out.count < limit, let storage = state2.storage {
                let length = Int(storage[state2.tail] & 0xffff)
                out.append(Array(UnsafeBufferPointer(start: storage + state2.tail, count: length)))
                dropTail(&state2)
            }
            if consume {
                state.tail = state2.tail
                state.entries = state2.entries
                if state.entries == 0 { state.tail = state.head }
            }
            return out
        }
    }

    var counters: (entries: Int, written: Int, overrun: Int) { lock.withLock { ($0.entries, $0.written, $0.overrun) } }

    func clear() {
        lock.withLock { state in state = State(storage: state.storage, capacity: state.capacity) }
    }
}
