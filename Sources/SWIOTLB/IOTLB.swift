// The software IO TLB's units (include/linux/swiotlb.h): 2 KiB slots, grouped in
// 128-slot segments that no mapping crosses.
import PhysicalMemory

public enum IOTLB {
    /// IO_TLB_SHIFT: a slot is 2 KiB.
    public static let shift = 11
    public static let size = 1 << shift
    /// IO_TLB_SEGSIZE: slots per segment; no mapping is longer or crosses one.
    public static let segmentSize = 128
    /// IO_TLB_DEFAULT_SIZE: 64 MiB.
    public static let defaultBytes = 64 << 20
    /// IO_TLB_MIN_SLABS: 1 MiB worth of slots.
    public static let minSlabs = (1 << 20) >> shift
    /// SLABS_PER_PAGE << MAX_PAGE_ORDER: the largest pool the page allocator can back, 4 MiB.
    public static let maxPoolSlabs = (PhysicalMemory.pageSize / size) << PhysicalMemory.maxOrder
    /// The physical address of a free or padding slot's original (INVALID_PHYS_ADDR).
    static let invalidPhysAddr = PhysAddr.max

    /// nr_slots(): slots covering `bytes`.
    @inline(__always)
    static func slots(_ bytes: Int) -> Int { (bytes + size - 1) >> shift }

    /// The largest mapping a device may ask for: one segment, less its min_align_mask
    /// rounded up to a slot (swiotlb_max_mapping_size()).
    public static func maxMappingSize(minAlignMask: UInt64) -> Int {
        let padding = minAlignMask == 0 ? 0 : Int((minAlignMask + UInt64(size) - 1) & ~UInt64(size - 1))
        return size * segmentSize - padding
    }
}
