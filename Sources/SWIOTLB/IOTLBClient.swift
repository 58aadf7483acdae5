// What swiotlb keeps per device (struct device's dma_io_tlb_* fields): the mem it maps
// through, its transient pools, and whether it ever bounced, so devices that never did
// skip the pool lookup on unmap entirely.
import Locking
import Synchronization

public final class IOTLBClient: @unchecked Sendable {  // `memRef` is kept alive by `mem`
    public let mem: IOTLBMem
    /// `mem` for the hot paths, which must not retain and release a shared object per call.
    let memRef: Unmanaged<IOTLBMem>
    /// The device's "<driver> <name>" prefix for its messages, read only when one is printed.
    let prefix: @Sendable () -> String
    let transientPools = PthreadMutex<[IOTLBPool]>([])
    /// dev->dma_uses_io_tlb.
    let usesIOTLB = Atomic(false)

    public init(mem: IOTLBMem, prefix: @escaping @Sendable () -> String) {
        self.mem = mem
        self.memRef = .passUnretained(mem)
        self.prefix = prefix
    }

    /// Runs `body` with the mem, without a retain/release pair.
    @inline(__always)
    public func withMem<R>(_ body: (IOTLBMem) -> R) -> R { memRef._withUnsafeGuaranteedRef(body) }

    /// Transient pools this device holds now.
    public var transientPoolCount: Int { transientPools.withLock { $0.count } }
}
