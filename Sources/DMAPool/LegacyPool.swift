// The dmapool of v6.3 and before: a list of pages, newest first, each with its own
// in-page free chain. Alloc scans the list for the first page with a free block, free
// scans it for the page holding the dma address; both are O(pages), and the mpt3sas
// pattern (free in allocation order) walks nearly every page per free: the seed's 9 s.
import DMA
import Locking
import PhysicalMemory
import Synchronization

final class LegacyPool: @unchecked Sendable {  // block memory is only touched under `state` or by its owner
    struct State: @unchecked Sendable {  // pointers into emulated RAM, guarded by the pool lock
        var pages: [ChainPage] = []  // page_list, oldest first: the kernel's head is the last
        var destroyed = false
    }

    let context: PoolContext
    private let state = SpinLock(State())

    init(context: PoolContext) { self.context = context }

    /// What pools_show() counts by walking the list under the lock: blocks in use, the
    /// overcounting pages * (allocation / size), and pages.
    var counters: (active: Int, blocks: Int, pages: Int) {
        state.withLock { state in
            let active = state.pages.reduce(0) { $0 + $1.inUse }
            return (active, state.pages.count * context.geometry.blocksColumnPerPage, state.pages.count)
        }
    }

    /// page_list from its head, the newest page: each page's in_use and its chain.
    var pageChains: [DMAPool.PageChain] {
        state.withLock { state in
            state.pages.reversed().map { .init(dma: $0.page.dma, inUse: $0.inUse, free: context.chainOffsets($0)) }
        }
    }

    /// The corresponding kernel function is `dma_pool_alloc()` (v6.3).
    func alloc(zero: Bool, gfp: GFP) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        let allocation = context.allocation
        var block = state.withLock { state -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? in
            var index = state.pages.count - 1
            while index >= 0 {
                if state.pages[index].offset < allocation { return take(&state.pages[index], zero: zero) }
                index -= 1
            }
            return nil
        }
        if block == nil {
            guard let page = context.allocPage(gfp) else { return nil }
            let chain = context.initialiseChain(page)
            block = state.withLock { state in
                guard !state.destroyed else { return nil }
                state.pages.append(chain)
                return take(&state.pages[state.pages.count - 1], zero: zero)
            }
        }
        guard let block else { return nil }
        if zero { block.cpu.initializeMemory(as: UInt8.self, repeating: 0, count: context.size) }
        return block
    }

    /// The corresponding kernel function is `dma_pool_free()` (v6.3): the page is always
    /// looked up; debug adds the vaddr/dma agreement and double-free checks.
    func free(_ vaddr: UnsafeMutableRawPointer, dma: DMAAddr) {
        let allocation = context.allocation
        state.withLock { state in
            guard !state.destroyed else { return }
            var index = state.pages.count - 1
            while index >= 0 && !state.pages[index].contains(dma, allocation: allocation) { index -= 1 }
            guard index >= 0 else {
                context.device.err(
                    "dma_pool_free \(context.name), \(context.pointer(vaddr))/\(dmaAddrText(dma)) (bad dma)")
                return
            }
            let page = state.pages[index].page
            let offset = vaddr - page.vaddr
            guard !context.debug || checkFree(state.pages[index], vaddr, dma, offset: offset) else { return }
            // Without debug the kernel wrote the link wherever vaddr pointed; refuse only
            // what would land outside this page and so outside anything the pool owns.
            guard offset >= 0 && offset + chainLinkSize <= allocation else {
                context.device.err(
                    "dma_pool_free \(context.name), \(context.pointer(vaddr)) (bad vaddr)/\(dmaAddrText(dma))")
                return
            }
            context.putBlock(&state.pages[index], vaddr, offset: offset)
        }
    }

    /// The corresponding kernel function is `dma_pool_destroy()` (v6.3): from the newest
    /// page, each busy page is reported and leaked, each idle one freed.
    func destroy() {
        let pages = state.withLock { state in
            state.destroyed = true
            defer { state.pages = [] }
            return state.pages
        }
        for chain in pages.reversed() {
            if chain.inUse != 0 {
                context.device.err("dma_pool_destroy \(context.name), \(context.pointer(chain.page.vaddr)) busy")
            } else {
                if context.debug {
                    chain.page.vaddr.initializeMemory(
                        as: UInt8.self, repeating: poolPoisonFreed, count: context.allocation)
                }
                context.freePage(chain.page)
            }
        }
    }

    // MARK: - Under the lock

    private func take(_ chain: inout ChainPage, zero: Bool) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        let block = context.takeBlock(&chain)
        if context.debug {
            context.checkBlock(block.cpu, linkSize: chainLinkSize, function: "dma_pool_alloc", zeroing: zero)
        }
        return block
    }

    private func checkFree(_ chain: ChainPage, _ vaddr: UnsafeMutableRawPointer, _ dma: DMAAddr, offset: Int) -> Bool {
        guard dma - chain.page.dma == DMAAddr(bitPattern: Int64(offset)) else {
            context.device.err(
                "dma_pool_free \(context.name), \(context.pointer(vaddr)) (bad vaddr)/\(dmaAddrText(dma))")
            return false
        }
        switch context.chainWalk(chain, for: offset) {
        case .present, .corrupted:
            context.device.err("dma_pool_free \(context.name), dma \(dmaAddrText(dma)) already free")
            return false
        case .absent:
            context.poisonFreed(vaddr)
            return true
        }
    }
}
