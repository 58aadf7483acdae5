// The v6.4+ dmapool (Keith Busch, "dmapool: link blocks across pages"): one LIFO stack
// of free blocks shared by every page, the link kept inside each free block as the
// kernel's struct dma_block { next_block; dma }. Alloc pops and free pushes under one
// lock; neither looks at pages, so both are O(1) and allocate nothing. Pages are only
// walked in debug mode, to catch a bad dma or a double free.
import DMA
import Locking
import PhysicalMemory
import Synchronization

final class StackPool: @unchecked Sendable {  // block memory is only touched under `state` or by its owner
    /// sizeof(struct dma_block) on 64-bit: the bytes the debug check skips.
    static let blockLinkSize = 16

    struct State: @unchecked Sendable {  // pointers into emulated RAM, guarded by the pool lock
        var nextBlock: UnsafeMutableRawPointer?
        var nrBlocks = 0
        var nrActive = 0
        var pages: [PoolPage] = []  // page_list, oldest first (the kernel's list is newest first)
        var destroyed = false
    }

    let context: PoolContext
    private let state = SpinLock(State())
    /// The machine's RAM, the only place a freed block may be.
    private let ram: ClosedRange<UInt>

    init(context: PoolContext) {
        self.context = context
        let base = UInt(bitPattern: context.device.ram.base)
        ram = base...(base + UInt(context.device.ram.size) - UInt(Self.blockLinkSize))
    }

    var counters: (active: Int, blocks: Int, pages: Int) {
        state.withLock { ($0.nrActive, $0.nrBlocks, $0.pages.count) }
    }

    /// The free stack from its top, each block by its dma: the order alloc takes them in.
    var freeBlocks: [DMAAddr] {
        state.withLock { state in
            var dmas: [DMAAddr] = []
            var block = state.nextBlock
            while let current = block, dmas.count < state.nrBlocks {
                dmas.append(current.loadUnaligned(fromByteOffset: 8, as: DMAAddr.self))
                block = UnsafeMutableRawPointer(bitPattern: current.loadUnaligned(as: UInt.self))
            }
            return dmas
        }
    }

    /// The corresponding kernel function is `dma_pool_alloc()`. Takes the pool lock once,
    /// twice when a page must be added (the page is allocated with the lock dropped).
    @inline(__always)
    func alloc(zero: Bool, gfp: GFP) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        var block = state.withLock { $0.destroyed ? nil : Self.pop(&$0) }
        if block == nil {
            guard let page = context.allocPage(gfp) else { return nil }
            block = state.withLock { state in
                guard !state.destroyed else { return nil }
                initialise(&state, page)
                return Self.pop(&state)
            }
        }
        guard let block else { return nil }
        let dma = block.loadUnaligned(fromByteOffset: 8, as: DMAAddr.self)
        if context.debug {
            context.checkBlock(block, linkSize: Self.blockLinkSize, function: "pool_check_block", zeroing: zero)
        }
        if zero { block.initializeMemory(as: UInt8.self, repeating: 0, count: context.size) }
        return (block, dma)
    }

    /// The corresponding kernel function is `dma_pool_free()`. The address is trusted, as
    /// in the kernel, unless debug is on; only an address outside RAM, which would bring
    /// down the daemon rather than corrupt the emulated machine, is always refused.
    @inline(__always)
    func free(_ vaddr: UnsafeMutableRawPointer, dma: DMAAddr) {
        guard ram.contains(UInt(bitPattern: vaddr)) else { return badDMA(vaddr, dma) }
        state.withLock { state in
            guard !state.destroyed, !context.debug || blockIsValid(state, vaddr, dma) else { return }
            Self.push(&state, vaddr, dma)
            state.nrActive &-= 1
        }
    }

    /// The corresponding kernel function is `dma_pool_destroy()`, after the pool has been
    /// unlinked from its device: a pool with blocks still out is reported once and all of
    /// its pages are leaked, never handed back while a driver may still use them.
    func destroy() {
        let (pages, busy) = state.withLock { state in
            state.destroyed = true
            state.nextBlock = nil
            defer { state.pages = [] }
            return (state.pages, state.nrActive != 0)
        }
        if busy {
            context.device.err("dma_pool_destroy \(context.name) busy")
            return
        }
        for page in pages.reversed() { context.freePage(page) }
    }

    // MARK: - Under the lock

    @inline(__always)
    private static func pop(_ state: inout State) -> UnsafeMutableRawPointer? {
        guard let block = state.nextBlock else { return nil }
        state.nextBlock = UnsafeMutableRawPointer(bitPattern: block.loadUnaligned(as: UInt.self))
        state.nrActive &+= 1
        return block
    }

    @inline(__always)
    private static func push(_ state: inout State, _ block: UnsafeMutableRawPointer, _ dma: DMAAddr) {
        block.storeBytes(of: dma, toByteOffset: 8, as: DMAAddr.self)
        block.storeBytes(of: UInt(bitPattern: state.nextBlock), as: UInt.self)
        state.nextBlock = block
    }

    /// pool_initialise_page(): link the page's blocks in ascending order and splice the
    /// chain in front of the free stack, so the lowest address is handed out first.
    private func initialise(_ state: inout State, _ page: PoolPage) {
        let offsets = context.geometry.blockOffsets
        for offset in offsets.reversed() {
            Self.push(&state, page.vaddr + offset, page.dma + DMAAddr(offset))
        }
        state.nrBlocks += offsets.count
        state.pages.append(page)
    }

    /// pool_block_err() in debug: a dma in no page is "bad dma" and a block already on
    /// the free stack is "already free"; otherwise the block is poisoned and may be pushed.
    private func blockIsValid(_ state: State, _ vaddr: UnsafeMutableRawPointer, _ dma: DMAAddr) -> Bool {
        let allocation = DMAAddr(context.allocation)
        // pool_find_page() walks page_list from its head, the newest page.
        guard state.pages.reversed().contains(where: { dma >= $0.dma && dma - $0.dma < allocation }) else {
            badDMA(vaddr, dma)
            return false
        }
        var block = state.nextBlock
        while let current = block {
            if current == vaddr {
                context.device.err("pool_block_err \(context.name), dma \(dmaAddrText(dma)) already free")
                return false
            }
            block = UnsafeMutableRawPointer(bitPattern: current.loadUnaligned(as: UInt.self))
        }
        context.poisonFreed(vaddr)
        return true
    }

    private func badDMA(_ vaddr: UnsafeMutableRawPointer, _ dma: DMAAddr) {
        context.device.err("pool_block_err \(context.name), \(context.pointer(vaddr))/\(dmaAddrText(dma)) (bad dma)")
    }
}
