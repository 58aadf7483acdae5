import Foundation
import Synchronization

/// Moves the progress bar by the clock while a call that cannot report runs for a known
/// number of seconds.
final class Ticker: Sendable {
    private let stopped = Atomic(false)
    private let done = DispatchSemaphore(value: 0)

    init(seconds: Int) {
        let total = max(seconds, 1) * 10
        Thread.detachNewThread { [self] in
            var tenths = 0
            while !stopped.load(ordering: .acquiring) {
                usleep(100_000)
                tenths += 1
                Progress.shared.step(min(tenths, total), of: total)
            }
            done.signal()
        }
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        done.wait()
    }
}
