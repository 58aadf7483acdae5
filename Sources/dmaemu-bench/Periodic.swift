import Foundation
import Synchronization

/// A thread of its own that calls `body(n)` (n = 0, 1, ...) then sleeps, until stopped;
/// stop() returns once the thread has seen it.
final class Periodic: Sendable {
    private let stopped = Atomic(false)
    private let done = DispatchSemaphore(value: 0)

    init(everyMicroseconds interval: UInt32, _ body: @escaping @Sendable (Int) -> Void) {
        Thread.detachNewThread { [self] in
            var n = 0
            while !stopped.load(ordering: .acquiring) {
                body(n)
                n += 1
                usleep(interval)
            }
            done.signal()
        }
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        done.wait()
    }
}
