// A mutex on pthread_mutex_t with Synchronization.Mutex's withLock. ThreadSanitizer
// intercepts pthread locks but cannot see Synchronization.Mutex's futex (its lock code is
// in the uninstrumented libswiftSynchronization), so under `make sanitize` every access
// guarded by one looked like a race. The engines' hot paths use SpinLock, not this.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct PthreadMutex<Value: ~Copyable>: ~Copyable, @unchecked Sendable {  // `lock` guards `value`
    @usableFromInline let lock: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline let value: UnsafeMutablePointer<Value>

    public init(_ initialValue: consuming Value) {
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    @inlinable
    public borrowing func withLock<Result: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value.pointee)
    }
}
