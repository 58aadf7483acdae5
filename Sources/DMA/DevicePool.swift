// dev->dma_pools: the list a device keeps of its DMA pools, newest first, so that the
// `pools` attribute can print them. The DMA layer only holds them; DMAPool knows their
// algorithms and formats.
import Locking

/// A pool that can print its line of the `pools` attribute.
public protocol DevicePool: AnyObject, Sendable {
    var name: String { get }
    /// One "%-16s %4zu %4zu %4u %2zu\n"-style line, in its algorithm's kernel format.
    func poolInfoLine() -> String
}

public final class DevicePoolList: Sendable {
    private let pools = PthreadMutex<[any DevicePool]>([])

    /// Adds at the head (list_add); returns whether the list was empty before, which is
    /// when the kernel creates the `pools` file.
    @discardableResult
    public func add(_ pool: any DevicePool) -> Bool {
        pools.withLock { pools in
            pools.insert(pool, at: 0)
            return pools.count == 1
        }
    }

    /// Unlinks the pool (list_del); returns whether the list is now empty.
    @discardableResult
    public func remove(_ pool: any DevicePool) -> Bool {
        pools.withLock { pools in
            pools.removeAll { $0 === pool }
            return pools.isEmpty
        }
    }

    /// The pools, newest first.
    public var all: [any DevicePool] { pools.withLock { $0 } }

    /// The corresponding kernel function is `pools_show()`; nil while the device has no
    /// pool, when the kernel has no `pools` file. Holds the list lock while printing,
    /// as pools_lock is held.
    public var poolsText: String? {
        pools.withLock { pools in
            guard !pools.isEmpty else { return nil }
            return pools.reduce("poolinfo - 0.1\n") { $0 + $1.poolInfoLine() }
        }
    }
}
