// One zone's buddy allocator. Free blocks of each order (0...10) sit on a doubly linked
// list threaded through the mem_map, so that a buddy found free on release can be unlinked
// in O(1) and merged; allocation splits the smallest sufficient block and puts the upper
// halves back, exactly as the kernel's expand() does. One lock per zone, as zone->lock.
import Locking
import Synchronization

final class Zone: @unchecked Sendable {  // mem_map entries of this zone are touched only under `area`
    struct FreeArea {
        var head = [UInt32](repeating: PageFrame.none, count: PhysicalMemory.orderCount)
        var tail = [UInt32](repeating: PageFrame.none, count: PhysicalMemory.orderCount)
        var nrFree = [Int](repeating: 0, count: PhysicalMemory.orderCount)
    }

    let kind: ZoneKind
    /// The managed page frames: [startPFN, endPFN).
    let startPFN: PFN
    let endPFN: PFN
    /// The mem_map; a pcp list threads its pages through it under the pcp's own lock.
    let memMap: UnsafeMutablePointer<PageFrame>
    private let area = SpinLock(FreeArea())
    /// NR_FREE_PAGES: pages in the buddy lists (not those on pcp lists), written under the
    /// lock and read without it.
    private let freeCount = Atomic<Int>(0)
    /// _watermark[WMARK_MIN], [WMARK_LOW], [WMARK_HIGH], set once the zones are known.
    var watermarks = Watermarks(min: 0, low: 0, high: 0)
    /// lowmem_reserve[]: pages held back from allocations that could have used a zone up
    /// to each index (LowmemReserve), set with the watermarks.
    var lowmemReserve = InlineArray<5, Int>(repeating: 0)
    /// ZONE_BELOW_HIGH: free pages were seen under the high watermark; the pcp lists then
    /// shrink instead of growing.
    let belowHigh = Atomic(false)
    /// zone->per_cpu_pageset: one list set per CPU (set up with the watermarks).
    var pcp: [PerCPUPages] = [] {
        didSet {
            pcpRefs.deallocate()
            pcpRefs = .allocate(capacity: pcp.count)
            pcpRefs.initialize(from: pcp.map { Unmanaged.passUnretained($0) }, count: pcp.count)
        }
    }
    /// The same, for the hot paths: references taken without retaining (`pcp` keeps them).
    private(set) var pcpRefs = UnsafeMutablePointer<Unmanaged<PerCPUPages>>.allocate(capacity: 0)

    deinit { pcpRefs.deallocate() }

    init(kind: ZoneKind, startPFN: PFN, endPFN: PFN, memMap: UnsafeMutablePointer<PageFrame>) {
        self.kind = kind
        self.startPFN = startPFN
        self.endPFN = endPFN
        self.memMap = memMap
        // Hand every frame to the allocator in the largest aligned blocks, in ascending
        // order at the list tails, as memblock_free_pages() does at boot: the first
        // allocations then come from the bottom of the zone.
        area.withLock { area in
            var pfn = startPFN
            while pfn < endPFN {
                var order = PhysicalMemory.maxOrder
                while order > 0 && (pfn & ((1 << order) - 1) != 0 || pfn + (1 << order) > endPFN) {
                    order -= 1
                }
                link(&area, pfn, order, atTail: true)
                pfn += 1 << order
            }
        }
    }

    var managedPages: Int { endPFN - startPFN }

    func contains(_ pfn: PFN) -> Bool { pfn >= startPFN && pfn < endPFN }

    /// Free block counts per order, as /proc/buddyinfo shows them.
    var nrFree: [Int] { area.withLock { $0.nrFree } }

    var freePages: Int { freeCount.load(ordering: .relaxed) }

    /// The corresponding kernel function is `__rmqueue_smallest()`. Takes zone->lock.
    /// `owner` becomes the block's private word.
    func rmqueue(order: Int, owner: UInt64 = 0) -> PFN? {
        area.withLock { area in
            let pfn = takeBlock(&area, order: order)
            if let pfn { memMap[pfn].owner = owner }
            return pfn
        }
    }

    /// The corresponding kernel function is `rmqueue_bulk()`: up to `count` blocks of
    /// `order` under one acquisition of the lock, handed to `body` in the order taken (the
    /// split halves in physical order), for a pcp list. They are neither free nor
    /// allocated blocks afterwards: the pcp list owns them. Returns how many.
    func rmqueueBulk(order: Int, count: Int, _ body: (PFN) -> Void) -> Int {
        area.withLock { area in
            var taken = 0
            while taken < count, let pfn = takeBlock(&area, order: order) {
                memMap[pfn].allocOrder = 0
                body(pfn)
                taken += 1
            }
            return taken
        }
    }

    /// Back from a pcp list under one acquisition of the lock (free_pcppages_bulk()'s
    /// __free_one_page() calls): `body` is handed the function that frees one block.
    func freeBlocks(_ body: ((PFN, Int) -> Void) -> Void) {
        area.withLock { area in
            body { pfn, order in putBlock(&area, pfn, order: order) }
        }
    }

    /// The private word of an allocated block's head page; nil for any other page.
    func pagePrivate(_ pfn: PFN) -> UInt64? {
        area.withLock { _ in memMap[pfn].allocOrder != 0 ? memMap[pfn].owner : nil }
    }

    /// Frees the allocated block headed by `pfn`, with the order it was allocated with,
    /// if its private word matches `expected` under `mask`; returns that word, or nil and
    /// changes nothing.
    func freeOwned(_ pfn: PFN, expected: UInt64, mask: UInt64) -> UInt64? {
        area.withLock { area in
            let allocOrder = Int(memMap[pfn].allocOrder)
            let owner = memMap[pfn].owner
            guard allocOrder != 0, owner & mask == expected else { return nil }
            putBlock(&area, pfn, order: allocOrder - 1)
            return owner
        }
    }

    /// Takes `pages` contiguous frames out of the allocator for good (memblock-style
    /// reservation): the lowest run of free max-order blocks long enough, the tail beyond
    /// `pages` given back. Returns the first frame, or nil.
    func reserve(pages: Int, endLimit: PFN) -> PFN? {
        let blockPages = 1 << PhysicalMemory.maxOrder
        let blocks = (pages + blockPages - 1) / blockPages
        return area.withLock { area -> PFN? in
            var free: [PFN] = []
            var next = area.head[PhysicalMemory.maxOrder]
            while next != PageFrame.none {
                free.append(PFN(next))
                next = memMap[Int(next)].next
            }
            free.sort()
            var runStart = 0
            for i in free.indices {
                if i > 0 && free[i] != free[i - 1] + blockPages { runStart = i }
                guard i - runStart + 1 == blocks else { continue }
                let first = free[runStart]
                guard first + pages <= endLimit else { return nil }
                for pfn in free[runStart...i] { unlink(&area, pfn, PhysicalMemory.maxOrder) }
                giveBack(&area, from: first + pages, to: first + blocks * blockPages)
                return first
            }
            return nil
        }
    }

    /// Takes [first, first + pages) out of the allocator for good, as a memblock
    /// reservation at a fixed address does; the max-order blocks around it must all be
    /// free (as at boot), and what they hold outside the range is given back. False, and
    /// nothing taken, otherwise.
    func reserve(at first: PFN, pages: Int) -> Bool {
        let blockPages = 1 << PhysicalMemory.maxOrder
        let start = first & ~(blockPages - 1)
        let end = (first + pages + blockPages - 1) & ~(blockPages - 1)
        guard pages > 0, start >= startPFN, end <= endPFN else { return false }
        return area.withLock { area in
            let blocks = stride(from: start, to: end, by: blockPages)
            guard blocks.allSatisfy({ Int(memMap[$0].freeOrder) == PhysicalMemory.maxOrder + 1 }) else { return false }
            for pfn in blocks { unlink(&area, pfn, PhysicalMemory.maxOrder) }
            giveBack(&area, from: start, to: first)
            giveBack(&area, from: first + pages, to: end)
            return true
        }
    }

    /// Frees [from, to) in the largest aligned blocks that fit.
    private func giveBack(_ area: inout FreeArea, from: PFN, to end: PFN) {
        var pfn = from
        while pfn < end {
            var order = 0
            while order < PhysicalMemory.maxOrder && pfn & ((2 << order) - 1) == 0 && pfn + (2 << order) <= end {
                order += 1
            }
            link(&area, pfn, order, atTail: false)
            pfn += 1 << order
        }
    }

    enum FreeError: Error { case notAllocated, orderMismatch(allocated: Int) }

    /// The corresponding kernel function is `__free_one_page()`: merge with free buddies.
    /// A block that is not allocated with this order is left alone and the reason returned.
    @discardableResult
    func free(_ pfn: PFN, order: Int) -> FreeError? {
        area.withLock { area in
            let allocOrder = Int(memMap[pfn].allocOrder)
            guard allocOrder != 0 else { return .notAllocated }
            guard allocOrder - 1 == order else { return .orderMismatch(allocated: allocOrder - 1) }
            putBlock(&area, pfn, order: order)
            return nil
        }
    }

    // MARK: - Under the lock

    private func takeBlock(_ area: inout FreeArea, order: Int) -> PFN? {
        var current = order
        while current < PhysicalMemory.orderCount && area.head[current] == PageFrame.none {
            current += 1
        }
        guard current < PhysicalMemory.orderCount else { return nil }
        let pfn = PFN(area.head[current])
        unlink(&area, pfn, current)
        while current > order {  // expand(): give back the upper halves
            current -= 1
            link(&area, pfn + (1 << current), current, atTail: false)
        }
        memMap[pfn].allocOrder = UInt8(order + 1)
        return pfn
    }

    private func putBlock(_ area: inout FreeArea, _ pfn: PFN, order: Int) {
        memMap[pfn].allocOrder = 0
        var pfn = pfn
        var order = order
        while order < PhysicalMemory.maxOrder {
            let buddy = pfn ^ (1 << order)
            guard contains(buddy), Int(memMap[buddy].freeOrder) == order + 1 else { break }
            unlink(&area, buddy, order)
            pfn = min(pfn, buddy)
            order += 1
        }
        link(&area, pfn, order, atTail: false)
    }

    private func link(_ area: inout FreeArea, _ pfn: PFN, _ order: Int, atTail: Bool) {
        memMap[pfn].freeOrder = UInt8(order + 1)
        FrameList.insert(memMap, pfn, head: &area.head[order], tail: &area.tail[order], atTail: atTail)
        area.nrFree[order] += 1
        freeCount.store(freeCount.load(ordering: .relaxed) + 1 << order, ordering: .relaxed)
    }

    private func unlink(_ area: inout FreeArea, _ pfn: PFN, _ order: Int) {
        FrameList.remove(memMap, pfn, head: &area.head[order], tail: &area.tail[order])
        memMap[pfn].freeOrder = 0
        area.nrFree[order] -= 1
        freeCount.store(freeCount.load(ordering: .relaxed) - 1 << order, ordering: .relaxed)
    }
}
