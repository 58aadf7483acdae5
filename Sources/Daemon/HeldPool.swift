// A DMA pool as the control surface holds it: the pool and the blocks allocated through
// `alloc` and not yet given back through `free`, oldest first.
import DMA
import DMAPool
import Synchronization
import SystemPackage

/// A block out of a pool: its pointer names emulated RAM, reachable from any thread.
struct HeldBlock: @unchecked Sendable {
    let cpu: UnsafeMutableRawPointer
    let dma: DMAAddr
}

final class HeldPool: Sendable {
    let pool: DMAPool
    private let blocks = Mutex<[HeldBlock]>([])

    /// The most blocks one write may ask for.
    static let maxCount: UInt64 = 100_000_000

    init(_ pool: DMAPool) { self.pool = pool }

    var held: Int { blocks.withLock { $0.count } }

    /// `alloc` N: all of them or none (ENOMEM, and the ones taken go back). The blocks go
    /// straight onto the held list, under its lock (the pool's own lock nests inside).
    func alloc(_ count: Int, zero: Bool = false) throws(Errno) {
        try blocks.withLock { (blocks) throws(Errno) in
            let start = blocks.count
            blocks.reserveCapacity(start + count)
            for _ in 0..<count {
                guard let block = zero ? pool.zalloc() : pool.alloc() else {
                    for block in blocks[start...].reversed() { pool.free(block.cpu, dma: block.dma) }
                    blocks.removeSubrange(start...)
                    throw .noMemory
                }
                blocks.append(HeldBlock(cpu: block.cpu, dma: block.dma))
            }
        }
    }

    /// `free` N or all, oldest (allocation order, as a driver tears down) or newest first.
    func free(_ count: Int?, newestFirst: Bool) throws(Errno) {
        let released = try blocks.withLock { (blocks) throws(Errno) -> [HeldBlock] in
            let n = count ?? blocks.count
            guard n <= blocks.count else { throw .invalidArgument }
            if newestFirst {
                let tail = Array(blocks.suffix(n).reversed())
                blocks.removeLast(n)
                return tail
            }
            let head = Array(blocks.prefix(n))
            blocks.removeFirst(n)
            return head
        }
        for block in released { pool.free(block.cpu, dma: block.dma) }
    }
}
