// Memory that no other hot data shares a cache line with: counters every CPU updates, and
// per-area locks, would otherwise make CPUs that touch different things wait on each other.
import Synchronization

public enum CacheLine {
    public static let size = 64

    /// Uninitialised memory for `count` values of T, each starting its own cache line.
    public static func allocate<T: ~Copyable>(_: T.Type, count: Int) -> (base: UnsafeMutableRawPointer, stride: Int) {
        let stride = (MemoryLayout<T>.stride + size - 1) / size * size
        return (.allocate(byteCount: max(stride * count, size), alignment: size), stride)
    }
}

/// An Atomic<Int> alone on its cache line.
public struct PaddedCounter: ~Copyable, @unchecked Sendable {  // the pointee is an Atomic
    private let value: UnsafeMutablePointer<Atomic<Int>>

    public init(_ initial: Int = 0) {
        value = CacheLine.allocate(Atomic<Int>.self, count: 1).base.bindMemory(to: Atomic<Int>.self, capacity: 1)
        value.initialize(to: Atomic(initial))
    }

    deinit {
        value.deinitialize(count: 1)
        UnsafeMutableRawPointer(value).deallocate()
    }

    @inline(__always) public func load() -> Int { value.pointee.load(ordering: .relaxed) }
    @inline(__always) public func store(_ new: Int) { value.pointee.store(new, ordering: .relaxed) }
    @inline(__always) @discardableResult
    public func add(_ delta: Int) -> Int { value.pointee.wrappingAdd(delta, ordering: .relaxed).newValue }
    @inline(__always) public func subtract(_ delta: Int) { value.pointee.wrappingSubtract(delta, ordering: .relaxed) }

    /// Raises the value to at least `candidate` (a high-water mark).
    @inline(__always)
    public func raise(to candidate: Int) {
        var old = value.pointee.load(ordering: .relaxed)
        while candidate > old {
            let (exchanged, original) = value.pointee.compareExchange(expected: old, desired: candidate, ordering: .relaxed)
            if exchanged { return }
            old = original
        }
    }
}
