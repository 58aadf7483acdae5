/// struct io_tlb_slot without its `list`: what swiotlb keeps per 2 KiB slot. The free-run
/// counts live in their own dense array (IOTLBPool.lists), because allocation and release
/// walk up to a segment of them, and 32 fit in a cache line where 2 whole slots would.
struct IOTLBSlot {
    /// The original buffer's physical address for this slot; invalid while free or padding.
    var origAddr: UInt64
    /// Bytes from this slot to the end of the allocation.
    var allocSize: Int
    /// Padding slots before this one (valid in the first slot after the padding).
    var padSlots: UInt16
}
