/// struct io_tlb_slot: what swiotlb keeps per 2 KiB slot.
struct IOTLBSlot {
    /// The original buffer's physical address for this slot; invalid while free or padding.
    var origAddr: UInt64
    /// Bytes from this slot to the end of the allocation.
    var allocSize: Int
    /// Free slots from here to the end of the segment, or 0 while in use.
    var list: UInt16
    /// Padding slots before this one (valid in the first slot after the padding).
    var padSlots: UInt16
}
