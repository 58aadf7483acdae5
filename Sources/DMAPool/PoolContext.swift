// What the three engines share: the pool's identity and geometry, the device whose
// coherent memory backs its pages, and the DMAPOOL_DEBUG switch. Page allocation and
// the pools line live here so each engine keeps only its free-block bookkeeping.
import DMA
import PhysicalMemory

/// One coherent allocation of `allocation` bytes: a pool "page".
struct PoolPage: @unchecked Sendable {  // the pointer names emulated RAM, reachable from any thread
    let vaddr: UnsafeMutableRawPointer
    let dma: DMAAddr
}

struct PoolContext: Sendable {
    let name: String
    let device: Device
    let geometry: DMAPoolGeometry
    let debug: Bool

    var size: Int { geometry.size }
    var allocation: Int { geometry.allocation }

    /// The corresponding kernel function is `pool_alloc_page()`; in debug the whole
    /// allocation is poisoned with POOL_POISON_FREED before its blocks are linked.
    func allocPage(_ gfp: GFP) -> PoolPage? {
        guard let (vaddr, dma) = device.allocCoherent(size: allocation, gfp: gfp.subtracting(.zero)) else { return nil }
        if debug { vaddr.initializeMemory(as: UInt8.self, repeating: poolPoisonFreed, count: allocation) }
        return PoolPage(vaddr: vaddr, dma: dma)
    }

    func freePage(_ page: PoolPage) {
        device.freeCoherent(size: allocation, cpu: page.vaddr, dma: page.dma)
    }

    /// `%p` of a block or page.
    func pointer(_ vaddr: UnsafeRawPointer) -> String { device.pointerText(vaddr) }

    /// One line of `pools`: "%-16s %4zu %4zu %4u %2zu\n". All three generations print
    /// the same widths; they differ in what they count.
    func poolInfoLine(active: Int, blocks: Int, pages: Int) -> String {
        leftJustified(name, 16) + " " + rightJustified(active, 4) + " " + rightJustified(blocks, 4) + " "
            + rightJustified(size, 4) + " " + rightJustified(pages, 2) + "\n"
    }
}

func leftJustified(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func rightJustified(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}
