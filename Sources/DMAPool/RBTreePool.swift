// Tony Battersby's dmapool ("mpt3sas and dmapool scalability", v6, 2022): the pre-6.4
// in-page free chains, plus a red-black tree of pages by dma address so free finds its
// page in O(log pages), and avail_page_list, the pages with a free block, so alloc finds
// one in O(1). A page leaves the list when its last block goes and rejoins at the head
// when one comes back. It never landed; Keith Busch's stack replaced both in v6.4.
import DMA
import Locking
import PhysicalMemory
import Synchronization

final class RBTreePool: @unchecked Sendable {  // block memory is only touched under `state` or by its owner
    struct State: @unchecked Sendable {  // pointers into emulated RAM, guarded by the pool lock
        var tree = PageTree()
        var availHead: Int32 = -1
        var destroyed = false
    }

    let context: PoolContext
    private let state = SpinLock(State())

    init(context: PoolContext) { self.context = context }

    /// pools_show() walks the tree (rb_first/rb_next) under the lock; the blocks column
    /// is pages * blks_per_alloc.
    var counters: (active: Int, blocks: Int, pages: Int) {
        state.withLock { state in
            var active = 0
            var pages = 0
            state.tree.inOrder { node in
                active += node.chain.inUse
                pages += 1
            }
            return (active, pages * context.geometry.blocksColumnPerPage, pages)
        }
    }

    /// Pages in the tree and the tree's black height (nil if unbalanced), for tests.
    var treeShape: (pages: Int, blackHeight: Int?) {
        state.withLock { ($0.tree.nodes.count, $0.tree.blackHeight()) }
    }

    func alloc(zero: Bool, gfp: GFP) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        var block = state.withLock { state -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? in
            guard state.availHead >= 0 else { return nil }
            return take(&state, Int(state.availHead), zero: zero)
        }
        if block == nil {
            guard let page = context.allocPage(gfp) else { return nil }
            let chain = context.initialiseChain(page)
            block = state.withLock { state in
                guard !state.destroyed else { return nil }
                switch state.tree.insert(chain, allocation: context.allocation) {
                case .overlap(let existing):
                    // Cannot happen with a sound page allocator; the kernel WARNs and
                    // leaks the page rather than crash, and so do we.
                    context.device.ram.log.printk(
                        .warning,
                        "\(context.device.name): \(context.name): DMA address overlap: old \(dmaAddrText(existing)) "
                            + "new \(dmaAddrText(page.dma)) len \(context.allocation)")
                    return nil
                case .inserted(let index):
                    addAvail(&state, index)
                    return take(&state, index, zero: zero)
                }
            }
        }
        guard let block else { return nil }
        if zero { block.cpu.initializeMemory(as: UInt8.self, repeating: 0, count: context.size) }
        return block
    }

    func free(_ vaddr: UnsafeMutableRawPointer, dma: DMAAddr) {
        state.withLock { state in
            guard !state.destroyed else { return }
            guard let index = state.tree.find(dma, allocation: context.allocation) else {
                context.device.err(
                    "dma_pool_free \(context.name), \(context.pointer(vaddr))/\(dmaAddrText(dma)) (bad dma)")
                return
            }
            let chain = state.tree.nodes[index].chain
            let offset = vaddr - chain.page.vaddr
            guard offset >= 0 && offset + chainLinkSize <= context.allocation,
                !context.debug || dma - chain.page.dma == DMAAddr(offset)
            else {
                context.device.err(
                    "dma_pool_free \(context.name), \(context.pointer(vaddr)) (bad vaddr)/\(dmaAddrText(dma))")
                return
            }
            if context.debug {
                switch context.chainWalk(chain, for: offset) {
                case .present:
                    context.device.err("dma_pool_free \(context.name), dma \(dmaAddrText(dma)) already free")
                    return
                case .corrupted:
                    context.device.err("dma_pool_free \(context.name), freelist corrupted")
                    return
                case .absent:
                    context.poisonFreed(vaddr)
                }
            }
            if !state.tree.nodes[index].onAvail { addAvail(&state, index) }
            context.putBlock(&state.tree.nodes[index].chain, vaddr, offset: offset)
        }
    }

    /// dma_pool_destroy() in post-order over the tree: busy pages reported and leaked.
    func destroy() {
        let tree = state.withLock { state in
            state.destroyed = true
            defer { state.tree = PageTree() }
            return state.tree
        }
        tree.postOrder { node in
            if node.chain.inUse != 0 {
                context.device.err("dma_pool_destroy \(context.name), \(context.pointer(node.chain.page.vaddr)) busy")
            } else {
                context.freePage(node.chain.page)
            }
        }
    }

    // MARK: - Under the lock

    private func take(_ state: inout State, _ index: Int, zero: Bool) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        let block = context.takeBlock(&state.tree.nodes[index].chain)
        if state.tree.nodes[index].chain.offset >= context.allocation { removeAvail(&state, index) }
        if context.debug {
            context.checkBlock(block.cpu, linkSize: chainLinkSize, function: "dma_pool_alloc", zeroing: zero)
        }
        return block
    }

    /// list_add(&page->avail_page_link, &pool->avail_page_list): at the head.
    private func addAvail(_ state: inout State, _ index: Int) {
        let head = state.availHead
        state.tree.nodes[index].availNext = head
        state.tree.nodes[index].availPrev = -1
        state.tree.nodes[index].onAvail = true
        if head >= 0 { state.tree.nodes[Int(head)].availPrev = Int32(index) }
        state.availHead = Int32(index)
    }

    /// list_del_init(&page->avail_page_link).
    private func removeAvail(_ state: inout State, _ index: Int) {
        let next = state.tree.nodes[index].availNext
        let prev = state.tree.nodes[index].availPrev
        if prev >= 0 { state.tree.nodes[Int(prev)].availNext = next } else { state.availHead = next }
        if next >= 0 { state.tree.nodes[Int(next)].availPrev = prev }
        state.tree.nodes[index].onAvail = false
    }
}
