// dma_alloc_coherent for a device with no IOMMU (dma-direct): whole pages from the buddy
// allocator, from the highest zone the coherent mask reaches, zeroed. Every allocation is
// recorded so that a free of something never allocated, or freed with another size or
// CPU address, is reported in dma-debug's words instead of corrupting the allocator.
import PhysicalMemory

/// Sendable: the pointer names emulated RAM, which any thread may reach through the device.
struct CoherentAllocation: @unchecked Sendable {
    let size: Int
    let order: Int
    let cpu: UnsafeMutableRawPointer
}

/// The kernel's get_order(): the smallest order whose block holds `size` bytes.
public func pageOrder(_ size: Int) -> Int {
    var order = 0
    while (PhysicalMemory.pageSize << order) < size { order += 1 }
    return order
}

extension Device {
    /// The corresponding kernel function is `dma_alloc_coherent()`. Returns the CPU
    /// address and the dma address, or nil when no block below the mask is free. May sleep.
    public func allocCoherent(size: Int) -> (cpu: UnsafeMutableRawPointer, dma: DMAAddr)? {
        guard size > 0 else { return nil }
        let order = pageOrder(size)
        guard order <= PhysicalMemory.maxOrder,
            let phys = machine.allocPages(order: order, limit: limit(of: coherentDMAMask))
        else { return nil }
        let cpu = machine.virt(phys)
        cpu.initializeMemory(as: UInt8.self, repeating: 0, count: PhysicalMemory.pageSize << order)
        coherent.withLock { $0[phys] = CoherentAllocation(size: size, order: order, cpu: cpu) }
        return (cpu, phys)
    }

    /// The corresponding kernel function is `dma_free_coherent()`.
    public func freeCoherent(size: Int, cpu: UnsafeMutableRawPointer, dma: DMAAddr) {
        guard let allocation = coherent.withLock({ $0.removeValue(forKey: dma) }) else {
            apiError(
                "device driver tries to free DMA memory it has not allocated "
                    + "[device address=\(dmaAddrText(dma))] [size=\(size) bytes]")
            return
        }
        if allocation.size != size {
            apiError(
                "device driver frees DMA memory with different size [device address=\(dmaAddrText(dma))] "
                    + "[map size=\(allocation.size) bytes] [unmap size=\(size) bytes]")
        }
        if allocation.cpu != cpu {
            apiError(
                "device driver frees DMA memory with different CPU address [device address=\(dmaAddrText(dma))] "
                    + "[size=\(size) bytes] [cpu alloc address=\(dmaAddrText(machine.kernelAddress(allocation.cpu)))] "
                    + "[cpu free address=\(dmaAddrText(machine.kernelAddress(cpu)))]")
        }
        machine.freePages(dma, order: allocation.order)
    }

    /// Coherent allocations not yet freed: what dma-debug reports as leaked at remove.
    public var coherentAllocationCount: Int { coherent.withLock { $0.count } }

    /// A dma-debug complaint: "DMA-API: <driver> <device>: text", at KERN_WARNING as WARN prints it.
    public func apiError(_ text: String) {
        machine.log.printk(.warning, "DMA-API: \(driverString) \(name): \(text)")
    }
}
