// Where a request's submitter waits for its completion, which an interrupt handler on
// another thread writes (the block layer's wait for a synchronous request, with blk-mq's
// hybrid polling in front of the sleep): the waiter polls the interrupt count, looking at
// its status after each interrupt that completed something, for IOThread's poll window,
// then sleeps until the handler broadcasts. A status is a driver's 16-bit completion
// status (NVMe's status field, MPI's IOCStatus); `pending` until the request completes.
import Glibc
import Hardware
import Locking
import Synchronization

/// A driver's `completion` parameter. `thread`: the emulated hardware runs in an IOThread
/// and the interrupt is handled there; `inline`: the submitting thread runs the hardware
/// and takes the interrupt itself (dmaemu's synchronous model, kept to measure what the
/// thread costs).
enum CompletionContext: String { case thread, inline }

final class CompletionWait: @unchecked Sendable {  // the statuses are guarded by `lock`
    /// Held by the handler while it completes requests (and writes their statuses).
    let lock = ConditionLock()
    private let interrupts = Atomic<Int>(0)

    static let pending = UInt16.max
    /// The status of a request the hardware never answered (the driver's command timeout).
    static let timedOut = UInt16.max - 1

    /// The handler, under `lock`, after completing at least one request: pollers look
    /// again, sleepers wake.
    func raised() {
        interrupts.add(1, ordering: .releasing)
        lock.broadcast()
    }

    /// Until the status at `waiter` is no longer `pending`; that status. With `poll` false
    /// (nothing completes the request in another thread) it goes straight to the check.
    func wait(_ waiter: UnsafeMutablePointer<UInt16>, poll: Bool) -> UInt16 {
        var seen = -1
        let deadline = ContinuousClock.now + IOThread.pollWindow
        repeat {
            let count = interrupts.load(ordering: .acquiring)
            guard count != seen else {
                sched_yield()
                continue
            }
            seen = count
            lock.lock()
            let status = waiter.pointee
            lock.unlock()
            if status != Self.pending { return status }
        } while poll && ContinuousClock.now < deadline
        lock.lock()
        while waiter.pointee == Self.pending { lock.wait() }
        let status = waiter.pointee
        lock.unlock()
        return status
    }
}
