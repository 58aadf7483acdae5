// The stock page-pool callbacks (mempool_alloc_pages / mempool_free_pages) and the
// constructors built on them, over the emulated machine's buddy allocator.
import PhysicalMemory

extension Mempool {
    /// The corresponding kernel function is `mempool_create_page_pool(min_nr, order)`.
    public static func pagePool(ram: PhysicalMemory, minNr: Int, order: Int) throws(MempoolError) -> Mempool {
        try Mempool(
            minNr: minNr,
            alloc: { gfp in ram.allocPages(gfp, order: order) },
            free: { page in ram.freePages(page, order: order) }, ram: ram)
    }

    /// mempool_create_pages_bulk() with the page allocator's own bulk API behind it.
    public static func pagesBulkPool(ram: PhysicalMemory, minNr: Int) throws(MempoolError) -> Mempool {
        try Mempool(
            minNr: minNr, ram: ram,
            pagesBulk: { gfp, nr, array, callback in
                if let array { return ram.allocPagesBulk(array, limit: gfp.zoneLimit) }
                return ram.allocPagesBulk(count: nr, limit: gfp.zoneLimit, callback)
            },
            free: { page in ram.freePages(page, order: 0) })
    }
}
