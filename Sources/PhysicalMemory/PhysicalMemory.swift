// The emulated machine's RAM: one anonymous MAP_NORESERVE mapping, so that 8 GiB of
// "physical" memory costs only what is touched. A physical address is an offset into the
// mapping, which makes phys_to_virt and virt_to_phys one addition each. Page frame 0 is
// reserved, as firmware keeps it on a real machine, so no allocation ever has physical
// (and so dma) address 0 and a zero address can mean "no page", as NULL does.
import Lib
import Printk

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A physical address; with no IOMMU it is also the dma address a device uses.
public typealias PhysAddr = UInt64

public enum PhysicalMemoryError: Error, Equatable, CustomStringConvertible {
    case badSize(UInt64)
    case mapFailed(errno: Int32)

    public var description: String {
        switch self {
        case .badSize(let size):
            "RAM size \(size) must be a multiple of 4096 and at least 32 pages"
        case .mapFailed(let errno):
            "mmap of RAM failed: \(String(cString: strerror(errno)))"
        }
    }
}

public final class PhysicalMemory: @unchecked Sendable {  // immutable after init; zones lock themselves
    public static let pageShift = 12
    public static let pageSize = 1 << pageShift
    /// The kernel's MAX_PAGE_ORDER on x86-64: blocks of up to 4 MiB.
    public static let maxOrder = 10
    public static let orderCount = maxOrder + 1
    /// x86-64's direct map base: the kernel virtual address `%p` prints for physical 0.
    public static let pageOffset: UInt64 = 0xffff_8880_0000_0000

    public let size: UInt64
    public let base: UnsafeMutableRawPointer
    public let log: KernelLog
    public let faults: FaultInjection
    /// mm/mempool.c's fail_mempool_alloc_bulk, one per machine as the kernel's is static
    /// in mm/: kept with the machine's memory so that every mempool on it shares it.
    public let failMempoolAllocBulk: FaultInjection
    /// The populated zones, lowest first.
    public var zoneKinds: [ZoneKind] { zones.map(\.kind) }

    let zones: [Zone]
    /// The same, for the hot paths: references taken without retaining (`zones` keeps them).
    private let zoneRefs: UnsafeMutableBufferPointer<Unmanaged<Zone>>
    /// Each zone's first pfn, so that a free finds its zone without touching one that is
    /// not its own; the zones follow each other from pfn 1 to `endPFN`.
    private let zoneStarts: UnsafeMutableBufferPointer<PFN>
    private let endPFN: PFN
    private let memMap: UnsafeMutablePointer<PageFrame>
    private let memMapBytes: Int

    /// The CPUs with pcp lists of their own (the calling thread's CPU picks its lists).
    public let cpus: Int
    /// /proc/sys/vm/min_free_kbytes, as boot and khugepaged leave it.
    public private(set) var minFreeKbytes = 0

    /// `pcpLists` false gives every CPU the kernel's boot pageset instead (high 0, batch 1:
    /// each page goes straight to and from the buddy lists), for tests that reason in
    /// the buddy allocator's own page order.
    public init(size: UInt64 = 8 << 30, log: KernelLog = KernelLog(), cpus: Int = CPU.online, pcpLists: Bool = true) throws(PhysicalMemoryError) {
        guard size % UInt64(Self.pageSize) == 0, size >= 32 * UInt64(Self.pageSize) else {
            throw .badSize(size)
        }
        let pageCount = Int(size >> UInt64(Self.pageShift))
        guard pageCount < Int(PageFrame.none) else { throw .badSize(size) }
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        guard let ram = mmap(nil, Int(size), PROT_READ | PROT_WRITE, flags, -1, 0), ram != MAP_FAILED
        else { throw .mapFailed(errno: errno) }
        let bytes = pageCount * MemoryLayout<PageFrame>.stride
        guard let map = mmap(nil, bytes, PROT_READ | PROT_WRITE, flags, -1, 0), map != MAP_FAILED else {
            let error = errno
            munmap(ram, Int(size))
            throw .mapFailed(errno: error)
        }
        self.size = size
        self.base = ram
        self.log = log
        self.faults = FaultInjection(log: log)
        self.failMempoolAllocBulk = FaultInjection(name: "fail_mempool_alloc_bulk", log: log)
        self.memMapBytes = bytes
        self.memMap = map.bindMemory(to: PageFrame.self, capacity: pageCount)
        var zones: [Zone] = []
        var start: PFN = 1
        for kind in ZoneKind.allCases {
            let end = PFN(min(size, kind.limit) >> UInt64(Self.pageShift))
            if end > start {
                zones.append(Zone(kind: kind, startPFN: start, endPFN: end, memMap: memMap))
                start = end
            }
        }
        self.zones = zones
        zoneRefs = .allocate(capacity: zones.count)
        _ = zoneRefs.initialize(from: zones.map { Unmanaged.passUnretained($0) })
        zoneStarts = .allocate(capacity: zones.count)
        _ = zoneStarts.initialize(from: zones.map(\.startPFN))
        endPFN = zones.last?.endPFN ?? 0
        self.cpus = max(cpus, 1)
        setupPerZoneWatermarks(pcpLists: pcpLists)
    }

    /// init_per_zone_wmark_min() and the pcp sizes that follow from it: watermarks from
    /// min_free_kbytes, then each zone's batch, high_min (its low watermark over the CPUs)
    /// and high_max (an eighth of it over the CPUs), and a pcp list set per CPU.
    private func setupPerZoneWatermarks(pcpLists: Bool) {
        let managed = zones.map(\.managedPages)
        minFreeKbytes = Watermarks.minFreeKbytes(managed: managed)
        var byIndex = [0, 0, 0]
        for zone in zones { byIndex[zone.kind.rawValue] = zone.managedPages }
        let reserves = LowmemReserve.table(managed: byIndex)
        for (zone, sizes) in zip(zones, Self.zoneSizes(managed: managed, minFreeKbytes: minFreeKbytes, cpus: cpus)) {
            zone.watermarks = Watermarks(min: sizes.min, low: sizes.low, high: sizes.high)
            zone.lowmemReserve = reserves[zone.kind.rawValue]
            zone.pcp = (0..<cpus).map { _ in
                pcpLists ? PerCPUPages(zone: zone, batch: sizes.batch, highMin: sizes.highMin, highMax: sizes.highMax)
                    : PerCPUPages(zone: zone, batch: 1, highMin: 0, highMax: 0)
            }
        }
    }

    deinit {
        zoneRefs.deallocate()
        zoneStarts.deallocate()
        munmap(base, Int(size))
        munmap(memMap, memMapBytes)
    }

    // MARK: - Addresses

    /// The corresponding kernel function is `phys_to_virt()`.
    @inline(__always)
    public func virt(_ phys: PhysAddr) -> UnsafeMutableRawPointer { base + Int(phys) }

    /// The corresponding kernel function is `virt_to_phys()`.
    @inline(__always)
    public func phys(_ virt: UnsafeRawPointer) -> PhysAddr { PhysAddr(virt - UnsafeRawPointer(base)) }

    /// Whether `virt` points into this machine's RAM.
    public func contains(_ virt: UnsafeRawPointer) -> Bool {
        virt >= UnsafeRawPointer(base) && virt < UnsafeRawPointer(base) + Int(size)
    }

    /// The kernel virtual address of `virt` in the direct map: what `%p` prints (as with
    /// no_hash_pointers), so messages name the same addresses on every run.
    /// Wrapping arithmetic, because a caller's bad pointer must still print, not trap.
    public func kernelAddress(_ virt: UnsafeRawPointer) -> UInt64 {
        UInt64(UInt(bitPattern: virt)) &- UInt64(UInt(bitPattern: base)) &+ Self.pageOffset
    }

    // MARK: - Page allocation

    /// The corresponding kernel function is `alloc_pages()`: 2^order contiguous pages,
    /// aligned to their size, wholly below `limit`. Zones are tried from the highest the
    /// limit allows downwards, as the zonelist falls back; orders up to 3 come from the
    /// calling CPU's pcp list of the zone. When every zone fails, the pcp lists are
    /// drained and the zones tried once more, as the slow path does after direct reclaim.
    /// `owner` becomes the block's page_private word (see `freeOwnedPages`). May be called
    /// from any thread.
    public func allocPages(order: Int, limit: PhysAddr = .max, owner: UInt64 = 0) -> PhysAddr? {
        guard order >= 0 && order <= Self.maxOrder, !faults.shouldFail(order: order) else { return nil }
        if let phys = allocFromZones(order: order, limit: limit, owner: owner) { return phys }
        guard drainAllPages(limit: limit) > 0 else { return nil }
        return allocFromZones(order: order, limit: limit, owner: owner)
    }

    /// get_page_from_freelist(): the first zone that has the block.
    private func allocFromZones(order: Int, limit: PhysAddr, owner: UInt64) -> PhysAddr? {
        let highest = ZoneKind.highest(below: limit).rawValue
        var index = zoneRefs.count
        while index > 0 {
            index -= 1
            let phys = zoneRefs[index]._withUnsafeGuaranteedRef { zone -> PhysAddr? in
                guard zone.startPFN << Self.pageShift < limit else { return nil }
                noteBelowHigh(zone, order: order, highest: highest)
                let pfn: PFN?
                if order <= PCPSizes.costlyOrder {
                    pfn = withLocalPCP(zone) { $0.alloc(order: order, owner: owner) }
                } else {
                    pfn = zone.rmqueue(order: order, owner: owner)
                }
                guard let pfn else { return nil }
                let end = PhysAddr(pfn + (1 << order)) << PhysAddr(Self.pageShift)
                if end <= limit { return PhysAddr(pfn) << PhysAddr(Self.pageShift) }
                release(zone, pfn, order: order)
                return nil
            }
            if let phys { return phys }
        }
        return nil
    }

    /// The zone of `pfn`, without retaining it, or nil (as zone(of:) without the ARC).
    @inline(__always)
    func withZone<R>(of pfn: PFN, _ body: (Zone) -> R) -> R? {
        guard pfn < endPFN else { return nil }
        var index = zoneStarts.count
        while index > 0 {
            index -= 1
            if pfn >= zoneStarts[index] { return zoneRefs[index]._withUnsafeGuaranteedRef(body) }
        }
        return nil
    }

    /// ZONE_BELOW_HIGH, set as get_page_from_freelist() sets it: the zone's free pages,
    /// less the block's, no longer above the high watermark and the reserve it keeps from
    /// allocations that may use zones up to `highest` (zone_watermark_fast()).
    @inline(__always)
    func noteBelowHigh(_ zone: Zone, order: Int, highest: Int) {
        if !zone.belowHigh.load(ordering: .relaxed)
            && zone.freePages - ((1 << order) - 1) <= zone.watermarks.high + zone.lowmemReserve[highest] {
            zone.belowHigh.store(true, ordering: .relaxed)
        }
    }

    /// this_cpu_ptr(zone->per_cpu_pageset): the calling thread's CPU's lists.
    @inline(__always)
    func withLocalPCP<R>(_ zone: Zone, _ body: (PerCPUPages) -> R) -> R {
        let cpu = CPU.current
        return zone.pcpRefs[cpu < cpus ? cpu : cpu % cpus]._withUnsafeGuaranteedRef(body)
    }

    /// The corresponding kernel function is `drain_all_pages()`: every CPU's pcp lists of
    /// the zones below `limit` back to the buddy lists. Returns how many pages went.
    @discardableResult
    public func drainAllPages(limit: PhysAddr = .max) -> Int {
        var drained = 0
        for zone in zones where zone.startPFN << Self.pageShift < limit {
            for pcp in zone.pcp { drained += pcp.drain() }
        }
        return drained
    }

    /// Pages on pcp lists now, over every CPU and zone (not in buddyinfo, not free).
    public var pcpPages: Int { zones.reduce(0) { $0 + $1.pcp.reduce(0) { $0 + $1.count } } }

    /// Pages nobody holds: free in the buddy lists or waiting on a pcp list. What a leak
    /// check compares, where `freePages` (NR_FREE_PAGES) moves with the pcp lists.
    public var unusedPages: Int { freePages + pcpPages }

    /// The corresponding kernel function is `__free_pages()`. A block that is not
    /// allocated, or not with this order, is reported and left alone.
    public func freePages(_ phys: PhysAddr, order: Int) {
        let pfn = PFN(phys >> PhysAddr(Self.pageShift))
        let outcome = phys & PhysAddr(Self.pageSize - 1) == 0 ? withZone(of: pfn) { release($0, pfn, order: order) } : nil
        switch outcome {
        case .freed?, .notOwner?:
            break
        case nil, .notAllocated?:
            log.printk(.alert, "BUG: Bad page state in process dmaemu  pfn:\(hex(pfn, 5))")
        case .orderMismatch(let allocated)?:
            log.printk(.alert, "BUG: Bad page state in process dmaemu  pfn:\(hex(pfn, 5))")
            log.printk(.alert, "page dumped because: freed with order \(order), allocated with order \(allocated)")
        }
    }

    /// A block back to the calling CPU's pcp list (orders up to 3) or the buddy lists.
    @discardableResult
    private func release(_ zone: Zone, _ pfn: PFN, order: Int, expected: UInt64 = 0, mask: UInt64 = 0) -> PerCPUPages.FreeOutcome {
        guard order <= PCPSizes.costlyOrder else {
            switch zone.free(pfn, order: order) {
            case nil: return .freed
            case .notAllocated: return .notAllocated
            case .orderMismatch(let allocated): return .orderMismatch(allocated: allocated)
            }
        }
        return withLocalPCP(zone) { $0.free(pfn, order: order, expected: expected, mask: mask) }
    }

    /// The corresponding kernel function is `memblock_alloc_low()` (below `limit`): a
    /// physically contiguous range of any size, taken from the allocator for good, as boot
    /// code and reserved-memory regions take it. Highest allowed zone first.
    public func reserveContiguous(bytes: Int, limit: PhysAddr = .max) -> PhysAddr? {
        let pages = (bytes + Self.pageSize - 1) >> Self.pageShift
        guard pages > 0 else { return nil }
        for zone in zones.reversed() where zone.startPFN << Self.pageShift < limit {
            let endLimit = PFN(min(limit, PhysAddr(zone.endPFN) << PhysAddr(Self.pageShift)) >> PhysAddr(Self.pageShift))
            if let pfn = zone.reserve(pages: pages, endLimit: endLimit) { return PhysAddr(pfn) << PhysAddr(Self.pageShift) }
        }
        return nil
    }

    /// memblock_reserve() of a range the boot log names: [phys, phys + bytes) taken for
    /// good, where it lay on the machine a recording came from. False, and nothing taken,
    /// unless the range is page-aligned, inside one zone and still wholly free.
    public func reserveContiguous(at phys: PhysAddr, bytes: Int) -> Bool {
        let pfn = PFN(phys >> PhysAddr(Self.pageShift))
        let pages = (bytes + Self.pageSize - 1) >> Self.pageShift
        guard phys & PhysAddr(Self.pageSize - 1) == 0, let zone = zone(of: pfn), zone.contains(pfn + pages - 1) else { return false }
        return zone.reserve(at: pfn, pages: pages)
    }

    func zone(of pfn: PFN) -> Zone? {
        for zone in zones where zone.contains(pfn) { return zone }
        return nil
    }

    /// page_private() of an allocated block: the word its allocator keeps in the head
    /// page's descriptor (the DMA layer records the owning device and the size there).
    /// nil unless `phys` is the head of an allocated block.
    public func pagePrivate(_ phys: PhysAddr) -> UInt64? {
        let pfn = PFN(phys >> PhysAddr(Self.pageShift))
        guard phys & PhysAddr(Self.pageSize - 1) == 0, let zone = zone(of: pfn) else { return nil }
        return zone.pagePrivate(pfn)
    }

    /// Frees the block `phys` heads, with its allocated order, only if its private word
    /// matches `expected` in the bits of `mask`: one check-and-free under the zone lock, so
    /// an owner can refuse a free of what it never allocated. Returns the private word, or
    /// nil (nothing changed) when `phys` heads no allocated block or another owner's.
    public func freeOwnedPages(_ phys: PhysAddr, expected: UInt64, mask: UInt64) -> UInt64? {
        let pfn = PFN(phys >> PhysAddr(Self.pageShift))
        guard phys & PhysAddr(Self.pageSize - 1) == 0, let zone = zone(of: pfn) else { return nil }
        // The block's order says which list it goes to; the pcp list checks it again
        // under its lock, with the owner.
        let order = Int(zone.memMap[pfn].allocOrder) - 1
        guard order >= 0 else { return nil }
        guard order <= PCPSizes.costlyOrder else { return zone.freeOwned(pfn, expected: expected, mask: mask) }
        let owner = zone.memMap[pfn].owner
        guard case .freed = release(zone, pfn, order: order, expected: expected, mask: mask) else { return nil }
        return owner
    }

    /// The number of free pages in the zone, or 0 when the machine has no such zone.
    public func freePages(in kind: ZoneKind) -> Int { zones.first { $0.kind == kind }?.freePages ?? 0 }

    /// Free pages in all zones.
    public var freePages: Int { zones.reduce(0) { $0 + $1.freePages } }

    /// Free block counts per order for a zone (all zeros when the zone is absent).
    public func nrFree(in kind: ZoneKind) -> [Int] {
        zones.first { $0.kind == kind }?.nrFree ?? Array(repeating: 0, count: Self.orderCount)
    }

    /// Pages the buddy allocator manages in a zone.
    public func managedPages(in kind: ZoneKind) -> Int { zones.first { $0.kind == kind }?.managedPages ?? 0 }
}

/// Lower-case hex, zero-padded to `width` digits, as printk's "%0Nx".
public func hex<T: BinaryInteger>(_ value: T, _ width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
