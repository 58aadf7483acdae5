// A pthread mutex with a condition variable on the monotonic clock, for waits that must
// drop the lock while they sleep: mempool's pool->wait, the FUSE loop's idle workers.
// The condition variable drops and retakes the mutex around the sleep, so a wake-up
// between a failed check and the sleep cannot be lost.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public final class ConditionLock: @unchecked Sendable {  // the pthread objects are the synchronisation
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        // Adaptive (PTHREAD_MUTEX_ADAPTIVE_NP, 3: a GNU name Swift's Glibc does not export):
        // a taker that finds it held spins a little before it sleeps. A completion lock is
        // held for microseconds by a thread on the other CPU, and sleeping on it costs a
        // futex wake-up of about 50 us.
        var kind = pthread_mutexattr_t()
        pthread_mutexattr_init(&kind)
        pthread_mutexattr_settype(&kind, 3)
        pthread_mutex_init(mutex, &kind)
        pthread_mutexattr_destroy(&kind)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }

    /// Called with the lock held; returns with it held, after a signal (or a spurious
    /// wake-up: callers re-check their condition).
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// As wait(), but returns after `seconds` at the latest.
    public func wait(seconds: Int) { wait(milliseconds: seconds * 1000) }

    /// As wait(), but returns after `milliseconds` at the latest.
    public func wait(milliseconds: Int) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + milliseconds % 1000 * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        _ = pthread_cond_timedwait(condition, mutex, &deadline)
    }

    public func signal() { pthread_cond_signal(condition) }
    public func broadcast() { pthread_cond_broadcast(condition) }
}
