// The page bulk allocator (v5.13+) in the two forms dmaemu's callers use: an array whose
// empty slots are filled, and Yang Shi's callback that is handed each page. Pages come
// from the highest allowed zone first, many per lock acquisition; either form may fall
// short, and the caller owns whatever was produced.

extension PhysicalMemory {
    /// The corresponding kernel function is `alloc_pages_bulk_array()`: fills the slots of
    /// `array` that hold 0 (the empty marker; physical page 0 is never handed out) with
    /// order-0 pages below `limit`. Returns how many slots are populated afterwards,
    /// those already filled included, so a caller compares it with `array.count`.
    public func allocPagesBulk(_ array: UnsafeMutableBufferPointer<PhysAddr>, limit: PhysAddr = .max) -> Int {
        var populated = array.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        var slot = 0
        _ = bulk(count: array.count - populated, limit: limit) { phys in
            while array[slot] != 0 { slot += 1 }
            array[slot] = phys
            populated += 1
        }
        return populated
    }

    /// The corresponding kernel function is `alloc_pages_bulk_cb()`: hands up to `count`
    /// order-0 pages to `body`, one call per page, and returns how many it produced.
    public func allocPagesBulk(count: Int, limit: PhysAddr = .max, _ body: (PhysAddr) -> Void) -> Int {
        bulk(count: count, limit: limit, body)
    }

    /// alloc_pages_bulk() from the highest allowed zone's pcp list for the calling CPU,
    /// under its lock, refilled a batch at a time; a lower zone takes over when one runs
    /// dry (the kernel picks one zone by its watermarks, which dmaemu does not enforce). A
    /// single page is alloc_pages(), as the kernel's bulk call hands it over.
    private func bulk(count: Int, limit: PhysAddr, _ body: (PhysAddr) -> Void) -> Int {
        if count == 1 {
            guard let phys = allocPages(order: 0, limit: limit) else { return 0 }
            body(phys)
            return 1
        }
        var produced = 0
        var failed = false
        let highest = ZoneKind.highest(below: limit).rawValue
        var index = zones.count
        while index > 0 && produced < count && !failed {
            index -= 1
            let zone = zones[index]
            guard zone.startPFN << Self.pageShift < limit else { continue }
            noteBelowHigh(zone, order: 0, highest: highest)
            produced += withLocalPCP(zone) { $0.allocBulk(count: count - produced) { pfn in
                // A page above the limit ends this zone's turn; an injected fault ends the call.
                guard (PhysAddr(pfn) + 1) << PhysAddr(Self.pageShift) <= limit else { return false }
                guard !faults.shouldFail() else {
                    failed = true
                    return false
                }
                body(PhysAddr(pfn) << PhysAddr(Self.pageShift))
                return true
            } }
        }
        return produced
    }
}
