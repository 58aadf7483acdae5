// The engines' hot-path lock, as the kernel's pool->lock and area->lock are spinlocks.
// Taking it is one compare-and-swap and releasing it a plain release store, where a
// futex mutex needs a locked instruction for each (and the uncontended cost is what the
// alloc/free/map/unmap figures measure). Critical sections under it are a handful of
// loads and stores; a waiter that spins too long yields the CPU, because unlike the
// kernel a userspace holder can be preempted.
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct SpinLock<Value>: ~Copyable, @unchecked Sendable {  // the flag guards `storage`
    @usableFromInline let flag = Atomic<UInt32>(0)
    @usableFromInline let storage: UnsafeMutablePointer<Value>

    /// The value gets cache lines of its own, so that locks of different areas or pools
    /// held on different CPUs do not contend through their data.
    public init(_ value: consuming Value) {
        storage = CacheLine.allocate(Value.self, count: 1).base.bindMemory(to: Value.self, capacity: 1)
        storage.initialize(to: value)
    }

    deinit {
        storage.deinitialize(count: 1)
        UnsafeMutableRawPointer(storage).deallocate()
    }

    /// Runs `body` with the value, holding the lock. Must not be re-entered.
    @inlinable @inline(__always)
    public borrowing func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        if !flag.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { lockSlow() }
        defer { flag.store(0, ordering: .releasing) }
        return try body(&storage.pointee)
    }

    @usableFromInline
    func lockSlow() {
        var spins = 0
        repeat {
            while flag.load(ordering: .relaxed) != 0 {
                spins += 1
                if spins >= 64 {
                    sched_yield()
                    spins = 0
                }
            }
        } while !flag.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
    }
}
