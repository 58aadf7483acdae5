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

extension Device {
    /// The corresponding kernel function is `dma_set_mask()`: false (the kernel's -EIO)
    /// when the direct mapping cannot serve `mask`, as dma_direct_supported() decides: a
    /// mask of 32 bits or more always can, a narrower one must reach ZONE_DMA (or all of
    /// RAM when it is smaller). The mask is unchanged then.
    public func setMask(_ mask: UInt64) -> Bool {
        let lowest = min(ram.size - 1, ZoneKind.dma.limit - 1)
        guard mask >= dmaBitMask(32) || mask >= lowest else { return false }
        dmaMask = mask
        return true
    }
}
