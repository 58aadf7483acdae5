// dma_alloc_coherent for a device with no IOMMU (dma-direct): whole pages from the buddy
// allocator, from the highest zone the coherent mask reaches, zeroed. The owning device
// and the size are kept in the block's head page descriptor (page_private), so a free of
// something this device never allocated is refused and reported in dma-debug's words,
// and one with another size or CPU address reported, instead of corrupting the
// allocator; checking costs nothing beyond the zone lock the free takes anyway.
import PhysicalMemory
import Trace

/// The kernel's get_order(): the smallest order whose block holds `size` bytes.
public func pageOrder(_ size: Int) -> Int {
    var order = 0
    while (PhysicalMemory.pageSize << order) < size { order += 1 }
    return order
}

extension Device {
    /// The corresponding kernel function is `dma_alloc_coherent()`. Returns the CPU
    /// address and the dma address, or nil when no block below the mask is free. May sleep.
    /// `gfp` is the caller's (the trace shows it); the zone is the coherent mask's.
    public func allocCoherent(size: Int, gfp: GFP = .kernel) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        let block = allocCoherentPages(size: size)
        if traced(.dmaAlloc) { traceAlloc(virt: block?.cpu, dma: block?.dma ?? 0, size: size, gfp: gfp) }
        return block
    }

    private func allocCoherentPages(size: Int) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        guard size > 0 else { return nil }
        if let swiotlb, swiotlb.mem.forAlloc {  // a restricted pool serves its devices' coherent memory
            guard let phys = swiotlb.mem.allocCoherent(swiotlb, size: size, limits: iotlbLimits) else { return nil }
            let cpu = ram.virt(phys)
            cpu.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            coherentCount.add(1, ordering: .relaxed)
            debug?.add(DebugEntry(dma: phys, size: size, direction: .bidirectional, type: .coherent))
            return (cpu, phys)
        }
        let order = pageOrder(size)
        guard order <= PhysicalMemory.maxOrder,
            let phys = ram.allocPages(order: order, limit: limit(of: coherentDMAMask), owner: ownerTag | UInt64(size))
        else { return nil }
        coherentCount.add(1, ordering: .relaxed)
        debug?.add(DebugEntry(dma: phys, size: size, direction: .bidirectional, type: .coherent))
        let cpu = ram.virt(phys)
        PhysicalMemory.clearPages(cpu, bytes: PhysicalMemory.pageSize << order)
        return (cpu, phys)
    }

    /// The corresponding kernel function is `dma_free_coherent()`.
    public func freeCoherent(size: Int, cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        if traced(.dmaFree) { traceFree(virt: cpu, dma: dma, size: size) }
        if let swiotlb, swiotlb.mem.forAlloc {
            guard debug?.checkUnmap(self, dma: dma, size: size, direction: .bidirectional, type: .coherent) ?? true,
                swiotlb.mem.freeCoherent(swiotlb, dma, limits: iotlbLimits)
            else { return }
            coherentCount.subtract(1, ordering: .relaxed)
            return
        }
        guard let tag = ram.freeOwnedPages(dma, expected: ownerTag, mask: 0xffff_ffff_0000_0000) else {
            apiError(
                "device driver tries to free DMA memory it has not allocated "
                    + "[device address=\(dmaAddrText(dma))] [size=\(size) bytes]")
            return
        }
        let allocated = Int(tag & 0xffff_ffff)
        if allocated != size {
            apiError(
                "device driver frees DMA memory with different size [device address=\(dmaAddrText(dma))] "
                    + "[map size=\(allocated) bytes] [unmap size=\(size) bytes]")
        }
        if cpu != ram.virt(dma) {
            apiError(
                "device driver frees DMA memory with different CPU address [device address=\(dmaAddrText(dma))] "
                    + "[size=\(size) bytes] [cpu alloc address=\(dmaAddrText(ram.kernelAddress(ram.virt(dma))))] "
                    + "[cpu free address=\(dmaAddrText(ram.kernelAddress(cpu)))]")
        }
        coherentCount.subtract(1, ordering: .relaxed)
        _ = debug?.checkUnmap(self, dma: dma, size: allocated, direction: .bidirectional, type: .coherent)
    }

    /// The high word of a coherent block's page_private: this device.
    private var ownerTag: UInt64 { UInt64(id) << 32 }

    /// Coherent allocations not yet freed: what dma-debug reports as leaked at remove.
    public var coherentAllocationCount: Int { coherentCount.load(ordering: .relaxed) }

    /// A dma-debug complaint: "DMA-API: <driver> <device>: text", at KERN_WARNING as WARN prints it.
    public func apiError(_ text: String) {
        ram.log.printk(.warning, "DMA-API: \(driverString) \(name): \(text)")
    }
}
