// pool->lock and pool->wait together. A mempool user sleeps in the kernel with the lock
// dropped and is woken by mempool_free(); ConditionLock does the same around its sleep.
import Locking

typealias WaitQueue = ConditionLock

extension ConditionLock {
    /// io_schedule_timeout() on the queue: called with the lock held, returns with it held,
    /// after a wake-up or when `seconds` have passed, whichever comes first.
    func sleep(seconds: Int) { wait(seconds: seconds) }

    /// wake_up(): every sleeper re-checks (mempool's waits are not exclusive).
    func wakeUp() { broadcast() }
}
