// Yang Shi's mempool page bulk allocator (Feb 2023, not merged): the pool's bulk function
// first, with a mask that may not reclaim; the reserve for what is missing; the caller's
// own mask; then, for callers that may sleep, a wait for frees. True only when all `nr`
// pages were delivered; on false (atomic callers only) the pages already in the array or
// already handed to the callback are the caller's to free.
import PhysicalMemory

extension Mempool {
    /// The corresponding kernel function is `mempool_alloc_pages_bulk_array()`: fills the
    /// array's empty (0) slots, which must follow its populated ones.
    public func allocPagesBulk(_ gfp: GFP, array: UnsafeMutableBufferPointer<PhysAddr>) -> Bool {
        precondition(pagesBulkFunction != nil, "mempool_alloc_pages_bulk_array on a pool made without a bulk function")
        guard !array.isEmpty else { return true }
        return allocate(gfp, nr: array.count, array: array, callback: nil) != nil
    }

    /// The corresponding kernel function is `mempool_alloc_pages_bulk_cb()`: `callback`
    /// receives each page as soon as it is obtained; the pool keeps nothing.
    public func allocPagesBulk(_ gfp: GFP, count: Int, _ callback: (PhysAddr) -> Void) -> Bool {
        precondition(pagesBulkFunction != nil, "mempool_alloc_pages_bulk_cb on a pool made without a bulk function")
        guard count > 0 else { return true }
        return withoutActuallyEscaping(callback) { callback in
            allocate(gfp, nr: count, array: nil, callback: callback) != nil
        }
    }
}
