// struct per_cpu_pages (mm/page_alloc.c, 6.12): each CPU's lists of free pages of orders
// 0...3 for one zone, with their own lock, so that most allocations and frees never take
// the zone lock. A list refills from the buddy lists a batch at a time (rmqueue_bulk(),
// pages appended in the order the buddy split them) and is served from its head; a freed
// page goes to the head (hot), and once the CPU holds `high` pages a batch from the
// tails (cold) goes back to the buddy lists (free_pcppages_bulk()). `high` tunes itself
// between high_min and high_max as the kernel's does: up while the CPU frees what it
// allocated and the zone has room, down when the zone is under its high watermark. The
// pages are threaded through the mem_map's links, which a page on a pcp list does not
// use otherwise; such a page is neither a free block nor an allocated one.
import Locking
import Synchronization

final class PerCPUPages: @unchecked Sendable {  // `lists` guards the mem_map entries of its pages
    static let orders = PCPSizes.costlyOrder + 1

    struct Lists {
        var head = InlineArray<4, UInt32>(repeating: PageFrame.none)
        var tail = InlineArray<4, UInt32>(repeating: PageFrame.none)
        /// Pages on the lists (a block of order n counts 2^n).
        var count = 0
        var high = 0
        var highMin: Int
        var highMax: Int
        var batch: Int
        /// Pages freed since the last allocation (halved by each allocation).
        var freeCount = 0
        /// Refills double while order-0 allocations come without frees (halved by each free).
        var allocFactor = 0
        /// PCPF_PREV_FREE_HIGH_ORDER.
        var previousFreeHighOrder = false
    }

    /// PCPF_FREE_HIGH_BATCH: the CPU's data cache slice holds more than 3 batches (any
    /// current x86 part: megabytes per core), so high-order frees keep a batch.
    static let freeHighBatch = true

    /// The zone owns its lists and outlives them.
    private unowned(unsafe) let zone: Zone
    private let memMap: UnsafeMutablePointer<PageFrame>
    let lists: SpinLock<Lists>

    init(zone: Zone, batch: Int, highMin: Int, highMax: Int) {
        self.zone = zone
        memMap = zone.memMap
        lists = SpinLock(Lists(highMin: highMin, highMax: highMax, batch: batch))
    }

    var count: Int { lists.withLock { $0.count } }
    var sizes: (count: Int, high: Int, batch: Int, highMin: Int, highMax: Int) {
        lists.withLock { ($0.count, $0.high, $0.batch, $0.highMin, $0.highMax) }
    }

    // MARK: - Allocation

    /// The corresponding kernel function is `rmqueue_pcplist()`: the head of the order's
    /// list, refilled first when it is empty. `owner` becomes the block's private word.
    @inline(__always)
    func alloc(order: Int, owner: UInt64) -> PFN? {
        lists.withLock { lists in
            lists.freeCount >>= 1
            guard let pfn = take(&lists, order: order) else { return nil }
            memMap[pfn].allocOrder = UInt8(order + 1)
            memMap[pfn].owner = owner
            return pfn
        }
    }

    /// alloc_pages_bulk()'s loop under one pcp lock: up to `count` order-0 pages, each
    /// first offered to `accept` (false puts it back and ends the run). Returns how many.
    @inline(__always)
    func allocBulk(count: Int, _ accept: (PFN) -> Bool) -> Int {
        lists.withLock { lists in
            lists.freeCount >>= 1
            var produced = 0
            while produced < count, let pfn = take(&lists, order: 0) {
                memMap[pfn].allocOrder = 1
                memMap[pfn].owner = 0
                guard accept(pfn) else {
                    memMap[pfn].allocOrder = 0
                    push(&lists, pfn, order: 0, atHead: true)
                    lists.count += 1
                    break
                }
                produced += 1
            }
            return produced
        }
    }

    /// __rmqueue_pcplist(): the list's head, after a refill of nr_pcp_alloc() blocks.
    @inline(__always)
    private func take(_ lists: inout Lists, order: Int) -> PFN? {
        if lists.head[order] == PageFrame.none && !refill(&lists, order: order) { return nil }
        let pfn = PFN(lists.head[order])
        unlink(&lists, pfn, order: order)
        lists.count -= 1 << order
        return pfn
    }

    /// rmqueue_bulk() of nr_pcp_alloc() blocks onto the list's tail; false when the zone
    /// had none.
    @inline(never)
    private func refill(_ lists: inout Lists, order: Int) -> Bool {
        let batch = refillCount(&lists, order: order)
        let taken = zone.rmqueueBulk(order: order, count: batch) { pfn in push(&lists, pfn, order: order, atHead: false) }
        lists.count += taken << order
        return taken > 0
    }

    /// nr_pcp_alloc(): a batch (scaled up by alloc_factor for order 0), within what high
    /// leaves room for; high grows by the batch while the zone is above its high mark.
    private func refillCount(_ lists: inout Lists, order: Int) -> Int {
        let base = lists.batch
        var high = clamp(lists.high, lists.highMin, lists.highMax)
        lists.high = high
        if high < base { return 1 }
        var batch = order == 0 ? base << lists.allocFactor : base
        if lists.highMin != lists.highMax && !zone.belowHigh.load(ordering: .relaxed) {
            high = min(high + batch, lists.highMax)
            lists.high = high
        }
        if order == 0 {
            let maxAlloc = max(high - lists.count - base, base)
            if batch <= maxAlloc && lists.allocFactor < PCPSizes.batchScaleMax { lists.allocFactor += 1 }
            batch = min(batch, maxAlloc)
        }
        if batch > 1 { batch = max(batch >> order, 2) }
        return batch
    }

    // MARK: - Free

    enum FreeOutcome { case freed, notAllocated, orderMismatch(allocated: Int), notOwner }

    /// The corresponding kernel function is `free_unref_page()` with its commit: the block
    /// goes to the head of its list; past `high`, a batch goes back to the buddy lists.
    /// With `mask` non-zero, only a block whose private word matches `expected` there.
    @inline(__always)
    func free(_ pfn: PFN, order: Int, expected: UInt64 = 0, mask: UInt64 = 0) -> FreeOutcome {
        lists.withLock { lists in
            let allocOrder = Int(memMap[pfn].allocOrder)
            guard allocOrder != 0 else { return .notAllocated }
            guard allocOrder - 1 == order else { return .orderMismatch(allocated: allocOrder - 1) }
            guard memMap[pfn].owner & mask == expected else { return .notOwner }
            memMap[pfn].allocOrder = 0
            commit(&lists, pfn, order: order)
            return .freed
        }
    }

    /// free_unref_page_commit().
    @inline(__always)
    private func commit(_ lists: inout Lists, _ pfn: PFN, order: Int) {
        lists.allocFactor >>= 1
        push(&lists, pfn, order: order, atHead: true)
        lists.count += 1 << order
        let batch = lists.batch
        var freeHigh = false
        if order > 0 {
            freeHigh = lists.freeCount >= batch && lists.previousFreeHighOrder
                && (!Self.freeHighBatch || lists.count >= batch)
            lists.previousFreeHighOrder = true
        } else {
            lists.previousFreeHighOrder = false
        }
        if lists.freeCount < batch << PCPSizes.batchScaleMax { lists.freeCount += 1 << order }
        let high = highForFree(&lists, batch: batch, freeHigh: freeHigh)
        if lists.count >= high {
            overHigh(&lists, batch: batch, high: high, freeHigh: freeHigh, order: order)
        }
    }

    /// nr_pcp_high() (no reclaim, so never ZONE_RECLAIM_ACTIVE).
    @inline(__always)
    private func highForFree(_ lists: inout Lists, batch: Int, freeHigh: Bool) -> Int {
        var high = clamp(lists.high, lists.highMin, lists.highMax)
        lists.high = high
        if high == 0 { return 0 }
        if freeHigh {
            lists.high = max(high - (batch << PCPSizes.batchScaleMax), lists.highMin)
            return 0
        }
        if lists.highMin == lists.highMax { return high }
        if zone.belowHigh.load(ordering: .relaxed) {
            lists.high = max(high - max(lists.freeCount, batch), lists.highMin)
            high = max(lists.count, lists.highMin)
        } else if lists.count >= high {
            let need = lists.freeCount + batch
            if lists.high < need { lists.high = clamp(need, lists.highMin, lists.highMax) }
        }
        return high
    }

    /// Past high: a batch back to the buddy lists, and ZONE_BELOW_HIGH cleared once the
    /// zone is above its high watermark again, reserve included: zone_watermark_ok() for
    /// ZONE_MOVABLE, which in the DMA and DMA32 zones asks for more than the zone holds
    /// on most machines, so there the flag stays.
    @inline(never)
    private func overHigh(_ lists: inout Lists, batch: Int, high: Int, freeHigh: Bool, order: Int) {
        freeBulk(&lists, count: freeCount(lists, batch: batch, high: high, freeHigh: freeHigh), first: order)
        if zone.belowHigh.load(ordering: .relaxed)
            && zone.freePages > zone.watermarks.high + zone.lowmemReserve[LowmemReserve.movable] {
            zone.belowHigh.store(false, ordering: .relaxed)
        }
    }

    /// nr_pcp_free(): at least a batch stays; as many as were freed in a row go.
    private func freeCount(_ lists: Lists, batch: Int, high: Int, freeHigh: Bool) -> Int {
        if freeHigh { return min(lists.count, batch << PCPSizes.batchScaleMax) }
        if high < batch { return 1 }
        return clamp(lists.freeCount, batch, high - batch)
    }

    /// free_pcppages_bulk(): `count` pages from the lists' tails, the list of order `first`
    /// first, then round-robin, under one zone lock.
    private func freeBulk(_ lists: inout Lists, count: Int, first: Int) {
        var count = min(lists.count, count)
        guard count > 0 else { return }
        var index = first - 1
        zone.freeBlocks { put in
            while count > 0 {
                repeat {
                    index += 1
                    if index >= Self.orders { index = 0 }
                } while lists.head[index] == PageFrame.none
                repeat {
                    let pfn = PFN(lists.tail[index])
                    unlink(&lists, pfn, order: index)
                    count -= 1 << index
                    lists.count -= 1 << index
                    put(pfn, index)
                } while count > 0 && lists.head[index] != PageFrame.none
            }
        }
    }

    /// drain_pages_zone(): everything back to the buddy lists, 32 batches at a time.
    /// Returns how many pages went.
    @discardableResult
    func drain() -> Int {
        lists.withLock { lists in
            let drained = lists.count
            while lists.count > 0 {
                freeBulk(&lists, count: min(lists.count, lists.batch << PCPSizes.batchScaleMax), first: 0)
            }
            return drained
        }
    }

    // MARK: - The lists

    private func push(_ lists: inout Lists, _ pfn: PFN, order: Int, atHead: Bool) {
        FrameList.insert(memMap, pfn, head: &lists.head[order], tail: &lists.tail[order], atTail: !atHead)
    }

    private func unlink(_ lists: inout Lists, _ pfn: PFN, order: Int) {
        FrameList.remove(memMap, pfn, head: &lists.head[order], tail: &lists.tail[order])
    }
}

/// The kernel's clamp(): min(max(value, low), high).
private func clamp(_ value: Int, _ low: Int, _ high: Int) -> Int { min(max(value, low), high) }
