// pool->lock and pool->wait together: a mutex and a condition variable on the monotonic
// clock. A mempool user sleeps in the kernel with the lock dropped and is woken by
// mempool_free(); here the condition variable drops and retakes the mutex around the
// sleep, so a wake-up between the failed check and the sleep cannot be lost.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class WaitQueue: @unchecked Sendable {  // the pthread objects are the synchronisation
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
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

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

    /// io_schedule_timeout() on the queue: called with the lock held, returns with it held,
    /// after a wake-up or when `seconds` have passed, whichever comes first.
    func sleep(seconds: Int) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += seconds
        _ = pthread_cond_timedwait(condition, mutex, &deadline)
    }

    /// wake_up(): every sleeper re-checks (mempool's waits are not exclusive).
    func wakeUp() { pthread_cond_broadcast(condition) }
}
