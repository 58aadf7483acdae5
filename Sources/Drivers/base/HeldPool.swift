// A DMA pool as its device holds it, with the blocks allocated from it, oldest first: what
// a driver took at probe, then what `alloc` took for the user. The driver's blocks come
// first and are the driver's: `free` cannot reach them, and a driver's pool cannot be
// destroyed by hand; remove gives them all back, as devres does at unbind.
import DMA
import DMAPool
import Locking
import SystemPackage

/// A block out of a pool: its pointer names emulated RAM, reachable from any thread.
public struct HeldBlock: @unchecked Sendable {
    public let cpu: UnsafeMutableRawPointer
    public let dma: DMAAddr

    public init(cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        self.cpu = cpu
        self.dma = dma
    }
}

public final class HeldPool: Sendable {
    public let pool: DMAPool
    /// Made by a driver's probe (not by create_pool).
    public let ownedByDriver: Bool
    private struct Blocks {
        var list: [HeldBlock] = []
        /// list[..<pinned] belong to the driver.
        var pinned = 0
    }
    private let blocks = PthreadMutex(Blocks())

    /// The most blocks one write may ask for.
    public static let maxCount: UInt64 = 100_000_000

    init(_ pool: DMAPool, ownedByDriver: Bool = false) {
        self.pool = pool
        self.ownedByDriver = ownedByDriver
    }

    public var held: Int { blocks.withLock { $0.list.count } }

    /// `alloc` N: all of them or none (ENOMEM, and the ones taken go back). The blocks go
    /// straight onto the held list, under its lock (the pool's own lock nests inside).
    public func alloc(_ count: Int, zero: Bool = false) throws(Errno) {
        try blocks.withLock { (blocks) throws(Errno) in
            let start = blocks.list.count
            // Doubling, as append does: reserving exactly start + count would copy the whole
            // list on every `echo 1 > alloc`.
            if start + count > blocks.list.capacity {
                blocks.list.reserveCapacity(max(start + count, 2 * blocks.list.capacity))
            }
            for _ in 0..<count {
                guard let block = zero ? pool.zalloc() : pool.alloc() else {
                    for block in blocks.list[start...].reversed() { pool.free(block.cpu, dma: block.dma) }
                    blocks.list.removeSubrange(start...)
                    throw .noMemory
                }
                blocks.list.append(HeldBlock(cpu: block.cpu, dma: block.dma))
            }
        }
    }

    /// A driver's allocations at probe: held like `alloc`'s, pinned, and returned.
    public func allocForDriver(_ count: Int, zero: Bool = false) throws(Errno) -> ArraySlice<HeldBlock> {
        try alloc(count, zero: zero)
        return blocks.withLock { blocks in
            defer { blocks.pinned = blocks.list.count }
            return blocks.list[blocks.pinned...]
        }
    }

    /// `free` N or all of the blocks `alloc` took, oldest (allocation order, as a driver
    /// tears down) or newest first; EINVAL for more than that.
    public func free(_ count: Int?, newestFirst: Bool) throws(Errno) {
        let released = try blocks.withLock { (blocks) throws(Errno) -> [HeldBlock] in
            let available = blocks.list.count - blocks.pinned
            let n = count ?? available
            guard n <= available else { throw .invalidArgument }
            if newestFirst {
                let tail = Array(blocks.list.suffix(n).reversed())
                blocks.list.removeLast(n)
                return tail
            }
            let head = Array(blocks.list[blocks.pinned..<(blocks.pinned + n)])
            blocks.list.removeSubrange(blocks.pinned..<(blocks.pinned + n))
            return head
        }
        for block in released { pool.free(block.cpu, dma: block.dma) }
    }

    /// Every block, the driver's too, in allocation order: remove and destroy_pool.
    public func releaseAll() {
        let released = blocks.withLock { blocks in
            defer { blocks = Blocks() }
            return blocks.list
        }
        for block in released { pool.free(block.cpu, dma: block.dma) }
    }
}
