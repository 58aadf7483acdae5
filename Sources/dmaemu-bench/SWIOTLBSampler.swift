import Foundation
import SWIOTLB
import Synchronization

/// Reads a swiotlb's counters every millisecond on a thread of its own, tagging each
/// sample with the workload running, until stopped.
final class SWIOTLBSampler: Sendable {
    private let mem: IOTLBMem
    private let start = ContinuousClock.now
    private let current = Mutex("")
    private let samples = Mutex<[SWIOTLBIOResult.Sample]>([])
    private let stopped = Atomic(false)
    private let done = DispatchSemaphore(value: 0)

    init(_ mem: IOTLBMem) {
        self.mem = mem
        Thread.detachNewThread { [self] in
            while !stopped.load(ordering: .acquiring) {
                sample()
                usleep(1000)
            }
            sample()
            done.signal()
        }
    }

    func workload(_ name: String) { current.withLock { $0 = name } }

    func stop() -> [SWIOTLBIOResult.Sample] {
        stopped.store(true, ordering: .releasing)
        done.wait()
        return samples.withLock { $0 }
    }

    private func sample() {
        let sample = SWIOTLBIOResult.Sample(
            ms: milliseconds(since: start), workload: current.withLock { $0 }, used: mem.used, nslabs: mem.nslabs,
            transientNslabs: mem.transientNslabs, pools: mem.pools.count)
        samples.withLock { $0.append(sample) }
    }
}
