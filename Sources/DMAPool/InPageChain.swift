// The per-page free chain of the pre-6.4 pool, shared by `legacy` and `rbtree`: each free
// block's first 4 bytes hold the offset of the next free block of the same page, and the
// page header keeps the first free offset and how many blocks are out. An offset at or
// past the allocation means the page is full.
import DMA

/// sizeof(page->offset): the bytes the debug check skips.
let chainLinkSize = 4

struct ChainPage {
    let page: PoolPage
    var inUse = 0
    var offset = 0

    init(page: PoolPage) { self.page = page }

    func contains(_ dma: DMAAddr, allocation: Int) -> Bool {
        dma >= page.dma && dma - page.dma < DMAAddr(allocation)
    }
}

enum ChainWalk { case absent, present, corrupted }

extension PoolContext {
    /// pool_initialise_page(): write each block's link as the kernel's loop did.
    func initialiseChain(_ page: PoolPage) -> ChainPage {
        for (offset, next) in zip(geometry.blockOffsets, geometry.chainLinks) {
            page.vaddr.storeBytes(of: Int32(next), toByteOffset: offset, as: Int32.self)
        }
        return ChainPage(page: page)
    }

    /// Pops the page's first free block: in_use++, offset = the block's link.
    @inline(__always)
    func takeBlock(_ chain: inout ChainPage) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        let offset = chain.offset
        let block = chain.page.vaddr + offset
        chain.inUse += 1
        chain.offset = Int(UInt32(bitPattern: block.loadUnaligned(as: Int32.self)))
        return (block, chain.page.dma + DMAAddr(offset))
    }

    /// Pushes a block back on its page's chain: in_use--, its link = the old first offset.
    @inline(__always)
    func putBlock(_ chain: inout ChainPage, _ block: UnsafeMutableRawPointer, offset: Int) {
        chain.inUse -= 1
        block.storeBytes(of: Int32(truncatingIfNeeded: chain.offset), as: Int32.self)
        chain.offset = offset
    }

    /// The page's free offsets in chain order, from its first; as many as it may have at
    /// most, so that a chain a driver made circular ends.
    func chainOffsets(_ chain: ChainPage) -> [Int] {
        var offsets: [Int] = []
        var link = chain.offset
        while link >= 0 && link < allocation && offsets.count < geometry.blockOffsets.count {
            offsets.append(link)
            link = Int(UInt32(bitPattern: (chain.page.vaddr + link).loadUnaligned(as: Int32.self)))
        }
        return offsets
    }

    /// Walks the page's chain looking for `offset`. It gives up after more links than the
    /// page has blocks, so a chain a buggy driver made circular cannot hang the walk
    /// (Tony Battersby's "freelist corrupted" guard; legacy had none and looped forever).
    func chainWalk(_ chain: ChainPage, for offset: Int) -> ChainWalk {
        var link = chain.offset
        var free = 0
        while link < allocation {
            if link == offset { return .present }
            free += 1
            guard free + chain.inUse <= geometry.blockOffsets.count, link >= 0 else { return .corrupted }
            link = Int(UInt32(bitPattern: (chain.page.vaddr + link).loadUnaligned(as: Int32.self)))
        }
        return .absent
    }
}
