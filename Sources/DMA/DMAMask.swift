import PhysicalMemory

/// A dma address: with no IOMMU it equals the physical address.
public typealias DMAAddr = PhysAddr

/// The kernel's DMA_BIT_MASK(n): the highest address a device with n address bits reaches.
public func dmaBitMask(_ bits: Int) -> UInt64 {
    precondition(bits >= 0 && bits <= 64)
    return bits == 64 ? .max : (1 << UInt64(bits)) - 1
}

/// The first address above `mask`, as an allocation limit (nil-free: .max for a 64-bit mask).
func limit(of mask: UInt64) -> PhysAddr { mask == .max ? .max : mask + 1 }
