import Foundation
import Locking
import SWIOTLB

/// Reads a swiotlb's counters every millisecond on a thread of its own, tagging each
/// sample with the workload running, until stopped.
final class SWIOTLBSampler: Sendable {
    private let mem: IOTLBMem
    private let start = ContinuousClock.now
    private let current = PthreadMutex("")
    private let samples = PthreadMutex<[SWIOTLBIOResult.Sample]>([])
    private let loop = PthreadMutex<Periodic?>(nil)

    init(_ mem: IOTLBMem) {
        self.mem = mem
        loop.withLock { $0 = Periodic(everyMicroseconds: 1000) { [self] _ in sample() } }
    }

    func workload(_ name: String) { current.withLock { $0 = name } }

    /// The samples, the last one taken now.
    func stop() -> [SWIOTLBIOResult.Sample] {
        loop.withLock { $0 }?.stop()
        sample()
        return samples.withLock { $0 }
    }

    /// A tick before the first workload is named records nothing (a slow machine, or
    /// ThreadSanitizer, lets the thread tick before the caller names it).
    private func sample() {
        let workload = current.withLock { $0 }
        guard !workload.isEmpty else { return }
        let sample = SWIOTLBIOResult.Sample(
            ms: milliseconds(since: start), workload: workload, used: mem.used, nslabs: mem.nslabs,
            transientNslabs: mem.transientNslabs, pools: mem.pools.count)
        samples.withLock { $0.append(sample) }
    }
}
