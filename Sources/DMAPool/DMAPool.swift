// The dma_pool API: small blocks of coherent DMA memory for one device, carved from
// pages that are never returned before the pool is destroyed. The pool forwards to one
// of three engines, one per kernel generation, chosen at create; all three share the
// argument rules of their generation (DMAPoolGeometry) and the pool's place in its
// device's `pools` file.
import DMA
import PhysicalMemory
import Trace

public final class DMAPool: DevicePool, @unchecked Sendable {  // every field is immutable; engines lock themselves
    /// The name as the kernel keeps it: strscpy() into name[32], so at most 31 bytes.
    public let name: String

    public static func keptName(_ name: String) -> String { String(decoding: name.utf8.prefix(31), as: UTF8.self) }
    public let device: Device
    public let algorithm: DMAPoolAlgorithm
    public let geometry: DMAPoolGeometry
    /// DMAPOOL_DEBUG: poisoning, corruption and double-free checks.
    public let debug: Bool
    /// The name as the pool's trace events record it, and the pool's address they show
    /// (the kernel's events of a pool show its struct dma_pool pointer; this object's
    /// address plays that part).
    let traceName: TraceName
    var poolAddress: UInt64 { UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) }
    /// Keeps the engine alive; the hot paths call it through `engine`.
    private let owner: AnyObject
    /// The engine, called without a retain/release pair: loading a class reference from a
    /// property retains it for the call, two atomic operations that would cost as much as
    /// the lock. `owner` keeps it alive as long as the pool.
    private let engine: Engine

    private enum Engine {
        case stack(Unmanaged<StackPool>)
        case rbtree(Unmanaged<RBTreePool>)
        case legacy(Unmanaged<LegacyPool>)
    }

    /// The corresponding kernel function is `dma_pool_create()`: checks the arguments as
    /// the chosen generation did, then adds the pool at the head of the device's list,
    /// which creates the device's `pools` file when it is the first. May sleep.
    public init(
        name: String, device: Device, size: Int, align: Int = 0, boundary: Int = 0,
        algorithm: DMAPoolAlgorithm = .stack, debug: Bool = false
    ) throws(DMAPoolError) {
        geometry = try DMAPoolGeometry(size: size, align: align, boundary: boundary, algorithm: algorithm)
        self.name = Self.keptName(name)
        traceName = TraceName(self.name)
        self.device = device
        self.algorithm = algorithm
        self.debug = debug
        let context = PoolContext(name: self.name, device: device, geometry: geometry, debug: debug)
        switch algorithm {
        case .stack:
            let pool = StackPool(context: context)
            (owner, engine) = (pool, .stack(.passUnretained(pool)))
        case .rbtree:
            let pool = RBTreePool(context: context)
            (owner, engine) = (pool, .rbtree(.passUnretained(pool)))
        case .legacy:
            let pool = LegacyPool(context: context)
            (owner, engine) = (pool, .legacy(.passUnretained(pool)))
        }
        device.dmaPools.add(self)
        if let tracer = device.tracer, tracer.isEnabled(.dmaPoolCreate) {
            // The arguments as the caller passed them, as a kprobe on a real host sees them.
            tracer.record(.dmaPoolCreate, device.traceName, payload: 4 + traceName.recordWords) { [traceName, poolAddress] p in
                (p[0], p[1], p[2], p[3]) = (UInt64(size), UInt64(align), UInt64(boundary), poolAddress)
                traceName.write(to: p + 4)
            }
        }
    }

    /// The corresponding kernel function is `dma_pool_alloc()`: a block's CPU address and
    /// dma address, or nil when no page could be added. Takes the pool lock; may sleep
    /// to add a page (a page comes with `gfp`). No heap allocation once the pool has a
    /// free block (stack).
    @inline(__always)
    public func alloc(_ gfp: GFP = .kernel) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? { alloc(zero: false, gfp: gfp) }

    /// The corresponding kernel function is `dma_pool_zalloc()`: alloc with __GFP_ZERO.
    public func zalloc(_ gfp: GFP = .kernel) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? { alloc(zero: true, gfp: gfp) }

    @inline(__always)
    private func alloc(zero: Bool, gfp: GFP) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        let block: (cpu: UnsafeMutableRawPointer, dma: DMAAddr)?
        switch engine {
        case .stack(let pool): block = pool._withUnsafeGuaranteedRef { $0.alloc(zero: zero, gfp: gfp) }
        case .rbtree(let pool): block = pool._withUnsafeGuaranteedRef { $0.alloc(zero: zero, gfp: gfp) }
        case .legacy(let pool): block = pool._withUnsafeGuaranteedRef { $0.alloc(zero: zero, gfp: gfp) }
        }
        if let block, device.traced(.dmaPoolAlloc) { traceBlock(.dmaPoolAlloc, block.cpu, block.dma) }
        return block
    }

    /// dmaemu's dma_pool_alloc and dma_pool_free events: the block's addresses.
    @inline(never)
    private func traceBlock(_ event: TraceEvent, _ cpu: UnsafeMutableRawPointer, _ dma: DMAAddr) {
        let vaddr = device.ram.kernelAddress(cpu)
        device.tracer?.record(event, device.traceName, payload: 3 + traceName.recordWords) { [traceName, poolAddress] p in
            (p[0], p[1], p[2]) = (vaddr, dma, poolAddress)
            traceName.write(to: p + 3)
        }
    }

    /// The corresponding kernel function is `dma_pool_free()`. Takes the pool lock; never sleeps.
    public func free(_ cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        if device.traced(.dmaPoolFree) { traceBlock(.dmaPoolFree, cpu, dma) }
        switch engine {
        case .stack(let pool): pool._withUnsafeGuaranteedRef { $0.free(cpu, dma: dma) }
        case .rbtree(let pool): pool._withUnsafeGuaranteedRef { $0.free(cpu, dma: dma) }
        case .legacy(let pool): pool._withUnsafeGuaranteedRef { $0.free(cpu, dma: dma) }
        }
    }

    /// The corresponding kernel function is `dma_pool_destroy()`: unlinks the pool from
    /// its device (removing `pools` with the last one) and frees its pages, or reports
    /// the pool busy and leaks them while blocks are still out. The pool allocates
    /// nothing afterwards. May sleep.
    public func destroy() {
        if let tracer = device.tracer, tracer.isEnabled(.dmaPoolDestroy) {
            tracer.record(.dmaPoolDestroy, device.traceName, payload: 1 + traceName.recordWords) { [traceName, poolAddress] p in
                p[0] = poolAddress
                traceName.write(to: p + 1)
            }
        }
        device.dmaPools.remove(self)
        switch engine {
        case .stack(let pool): pool.takeUnretainedValue().destroy()
        case .rbtree(let pool): pool.takeUnretainedValue().destroy()
        case .legacy(let pool): pool.takeUnretainedValue().destroy()
        }
    }

    /// The numbers of the pool's `pools` line: blocks in use, the blocks column (legacy
    /// overcounts it), pages. legacy and rbtree walk their pages for it, as they did.
    public var counters: (active: Int, blocks: Int, pages: Int) {
        switch engine {
        case .stack(let pool): pool.takeUnretainedValue().counters
        case .rbtree(let pool): pool.takeUnretainedValue().counters
        case .legacy(let pool): pool.takeUnretainedValue().counters
        }
    }

    public func poolInfoLine() -> String {
        let (active, blocks, pages) = counters
        return PoolContext(name: name, device: device, geometry: geometry, debug: debug)
            .poolInfoLine(active: active, blocks: blocks, pages: pages)
    }

    /// One page of the pre-6.4 pool: its dma, in_use and free offsets in chain order.
    package struct PageChain: Equatable {
        package let dma: DMAAddr
        package let inUse: Int
        package let free: [Int]
    }

    /// The free blocks in the order alloc takes them, as the oracle module reads them out
    /// of a real kernel's pool: 6.4+'s stack (each block's dma), or the legacy pool's
    /// pages from page_list's head with their chains. nil for rbtree, which no kernel had.
    package enum FreeList: Equatable {
        case stack([DMAAddr])
        case pages([PageChain])
    }

    package var freeList: FreeList? {
        switch engine {
        case .stack(let pool): .stack(pool.takeUnretainedValue().freeBlocks)
        case .legacy(let pool): .pages(pool.takeUnretainedValue().pageChains)
        case .rbtree: nil
        }
    }

    /// For tests of the rbtree engine: page count and black height (nil if unbalanced).
    package var treeShape: (pages: Int, blackHeight: Int?)? {
        if case .rbtree(let pool) = engine { return pool.takeUnretainedValue().treeShape }
        return nil
    }
}

extension Device {
    /// The device's `pools` attribute, or nil while it has no pool (no file, as in the kernel).
    public var pools: String? { dmaPools.poolsText }
}
