// struct io_tlb_mem: a software IO TLB, a list of pools searched newest first. When no
// pool has room and the mem may grow (CONFIG_SWIOTLB_DYNAMIC), a worker adds a pool of the
// default size in the background, and the request that failed gets a transient pool made
// exactly for it, owned by its device and freed at unmap; added pools are never freed.
// Readers walk the pool list without a lock: it only ever grows, and a pool is published
// by the release store of the count after its slot in the table is written.
import Dispatch
import Lib
import Locking
import PhysicalMemory
import Printk
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public enum SWIOTLBError: Error, Equatable {
    /// Not a value this file takes (EINVAL).
    case invalidValue
    /// No memory for the pool (ENOMEM).
    case noMemory
}

public final class IOTLBMem: @unchecked Sendable {  // the pool table is append-only, published by `poolCount`
    public let ram: PhysicalMemory
    /// The debugfs directory name: "" for the default mem, the region's for a restricted pool.
    public let name: String
    /// Every streaming map through this mem bounces (swiotlb=force, a restricted pool, a CoCo VM).
    public let forceBounce: Bool
    /// Coherent allocations of its devices come from the pool (restricted pools).
    public let forAlloc: Bool
    public let canGrow: Bool
    /// New pools are made below this address.
    public let physLimit: PhysAddr
    /// What a dynamic pool is made with: the boot size and area count.
    public let defaultNslabs: Int
    public let defaultNareas: Int
    public let confidential: ConfidentialComputing?
    /// CONFIG_DEBUG_FS's exact counters (see SWIOTLBConfig.debugfsCounters).
    public let debugfsCounters: Bool
    /// SWIOTLBConfig.movesData.
    let movesData: Bool
    /// SWIOTLBConfig.kernel: 6.1's slot search or 6.12's.
    public let kernel: KernelVersion

    private static let maxPools = 4096
    private let poolTable: UnsafeMutablePointer<Unmanaged<IOTLBPool>>
    private let poolCount = Atomic<Int>(0)
    private let addLock = PthreadMutex(())
    private let atomicPool: AtomicPool?

    // Every map and unmap updates these (the kernel's debugfs atomics, whose contention
    // its v7 cover letter mentions); each has a cache line to itself, away from poolCount.
    private let nslabsCounter = PaddedCounter()
    private let totalUsed = PaddedCounter()
    private let hiwater = PaddedCounter()
    private let transientSlabs = PaddedCounter()

    private let growPending = Atomic(false)
    private let fullCount = Atomic<Int>(0)
    private let lastFullSize = Atomic<Int>(0)
    private let transientMade = Atomic<Int>(0)
    private let growth = DispatchGroup()
    private let fullReport = RateLimit()
    private let growFailReport = RateLimit()
    private let overflowWarned = Atomic(false)

    /// The machine's default software IO TLB, as swiotlb_init() leaves it: a boot pool
    /// below 4 GiB (memblock_alloc_low), halved until it fits or falls to the minimum.
    /// Returns nil when swiotlb is disabled or no memory could be had.
    public convenience init?(ram: PhysicalMemory, config: SWIOTLBConfig, cpus: Int = CPU.online) {
        guard !config.disabled else { return nil }
        let log = ram.log
        var nslabs = config.nslabs
        if let adjusted = config.adjustedForEncryptedMemory(totalMemory: ram.size) {
            nslabs = adjusted.nslabs
            log.printk(.info, "software IO TLB: SWIOTLB bounce buffer size adjusted to \(adjusted.reportedBytes >> 20)MB")
        }
        // swiotlb_adjust_nareas(): 0 areas is 1.
        var nareas = max(config.nareas ?? roundUpPowerOfTwo(max(cpus, 1)), 1)
        log.printk(.info, "software IO TLB: area num \(nareas).")
        // round_up_default_nslabs(): room for a segment per area, and a power of two.
        if nslabs < IOTLB.segmentSize * nareas || nslabs & (nslabs - 1) != 0 {
            nslabs = roundUpPowerOfTwo(max(nslabs, IOTLB.segmentSize * nareas))
            log.printk(.info, "software IO TLB: SWIOTLB bounce buffer size roundup to \((nslabs << IOTLB.shift) >> 20)MB")
        }
        nareas = limitNareas(nareas, nslabs)
        let lowLimit: PhysAddr = 4 << 30
        var start: PhysAddr?
        if let at = config.bootAddress {
            if ram.reserveContiguous(at: at, bytes: nslabs << IOTLB.shift) {
                start = at
            } else {
                log.printk(.warning, "software IO TLB: [mem 0x\(hex(at, 16))] is not free RAM here: placed as memblock_alloc_low() would")
            }
        }
        while start == nil {
            start = ram.reserveContiguous(bytes: nslabs << IOTLB.shift, limit: lowLimit)
            guard start == nil else { break }
            guard nslabs > IOTLB.minSlabs else {
                log.printk(.warning, "software IO TLB: Cannot allocate buffer")
                return nil
            }
            nslabs = (nslabs >> 1 + IOTLB.segmentSize - 1) / IOTLB.segmentSize * IOTLB.segmentSize
            nareas = limitNareas(nareas, nslabs)
        }
        self.init(
            ram: ram, name: "", forceBounce: config.force || config.confidential != nil, forAlloc: false,
            canGrow: config.dynamic, physLimit: lowLimit, defaultNslabs: nslabs, defaultNareas: nareas,
            confidential: config.confidential, debugfsCounters: config.debugfsCounters, movesData: config.movesData,
            kernel: config.kernel)
        let pool = IOTLBPool(
            start: start!, vaddr: ram.virt(start!), nslabs: nslabs, nareas: nareas, transient: false, source: .reserved)
        decrypt(pages: (nslabs << IOTLB.shift) / PhysicalMemory.pageSize)
        addPool(pool)
        log.printk(
            .info,
            "software IO TLB: mapped [mem 0x\(hex(pool.start, 16))-0x\(hex(pool.end, 16))] (\((nslabs << IOTLB.shift) >> 20)MB)")
    }

    /// A restricted DMA pool (`restricted-dma-pool` reserved memory): its own region with
    /// one area, shared by the devices bound to it, which always bounce through it and get
    /// their coherent memory from it; it never grows.
    public convenience init?(restricted name: String, bytes: Int, ram: PhysicalMemory, kernel: KernelVersion = .v6_12) {
        let nslabs = bytes >> IOTLB.shift
        guard nslabs > 0, let start = ram.reserveContiguous(bytes: nslabs << IOTLB.shift, limit: 4 << 30) else {
            return nil
        }
        self.init(
            ram: ram, name: name, forceBounce: true, forAlloc: true, canGrow: false, physLimit: 4 << 30,
            defaultNslabs: nslabs, defaultNareas: 1, confidential: nil, debugfsCounters: true, movesData: true, kernel: kernel)
        addPool(IOTLBPool(start: start, vaddr: ram.virt(start), nslabs: nslabs, nareas: 1, transient: false, source: .reserved))
        ram.log.printk(
            .info, "Reserved memory: created restricted DMA pool at 0x\(hex(start, 16)), size \(bytes >> 20) MiB")
    }

    private init(
        ram: PhysicalMemory, name: String, forceBounce: Bool, forAlloc: Bool, canGrow: Bool, physLimit: PhysAddr,
        defaultNslabs: Int, defaultNareas: Int, confidential: ConfidentialComputing?, debugfsCounters: Bool, movesData: Bool,
        kernel: KernelVersion
    ) {
        self.debugfsCounters = debugfsCounters
        self.movesData = movesData
        self.kernel = kernel
        self.ram = ram
        self.name = name
        self.forceBounce = forceBounce
        self.forAlloc = forAlloc
        self.canGrow = canGrow
        self.physLimit = physLimit
        self.defaultNslabs = defaultNslabs
        self.defaultNareas = defaultNareas
        self.confidential = confidential
        atomicPool = confidential.flatMap { AtomicPool(ram: ram, bytes: $0.coherentPoolBytes) }
        poolTable = .allocate(capacity: Self.maxPools)
    }

    deinit {
        for i in 0..<poolCount.load(ordering: .acquiring) { poolTable[i].release() }
        poolTable.deallocate()
    }

    // MARK: - Counters (debugfs)

    /// io_tlb_nslabs: slots in every pool but the transient ones.
    public var nslabs: Int { nslabsCounter.load() }
    /// io_tlb_used: slots in use in every pool, transient ones included; without the
    /// debugfs counters, the unlocked sum of the areas' counts (transient pools too).
    public var used: Int {
        guard !debugfsCounters else { return totalUsed.load() }
        return pools.reduce(transientSlabs.load()) { $0 + $1.usedUnlocked }
    }
    /// io_tlb_used_hiwater.
    public var usedHiwater: Int { hiwater.load() }
    /// io_tlb_transient_nslabs: slots in the transient pools that exist now.
    public var transientNslabs: Int { transientSlabs.load() }

    /// Writing io_tlb_used_hiwater: only 0 is taken, and resets the mark.
    public func setUsedHiwater(_ value: Int) throws(SWIOTLBError) {
        guard value == 0 else { throw .invalidValue }
        hiwater.store(0)
    }

    /// The non-transient pools, oldest first.
    public var pools: [IOTLBPool] {
        (0..<poolCount.load(ordering: .acquiring)).map { poolTable[$0].takeUnretainedValue() }
    }

    private func incUsed(_ slots: Int) {
        if debugfsCounters { hiwater.raise(to: totalUsed.add(slots)) }
    }

    private func decUsed(_ slots: Int) {
        if debugfsCounters { totalUsed.subtract(slots) }
    }

    /// dev->dma_uses_io_tlb = true; written only when it changes, so devices mapping on
    /// several CPUs do not pass the line back and forth for nothing.
    private func markUsesIOTLB(_ client: IOTLBClient) {
        if !client.usesIOTLB.load(ordering: .relaxed) { client.usesIOTLB.store(true, ordering: .releasing) }
    }

    // MARK: - Finding slots

    /// The corresponding kernel function is `swiotlb_find_slots()`: the calling CPU's
    /// area in every pool, then the next area in every pool, and so on; then, when the
    /// mem may grow, a background pool and a transient one for this request.
    func findSlots(_ client: IOTLBClient, _ request: IOTLBPool.Request, dmaLimit: PhysAddr, mayBlock: Bool, cpu: Int?)
        -> (pool: Unmanaged<IOTLBPool>, index: Int)?
    {
        // 6.12 refuses more than a segment up front; 6.1 searches (and fails, or never ends).
        let search61 = kernel == .v6_1
        guard search61 || request.allocSize <= IOTLB.segmentSize * IOTLB.size else { return nil }
        let cpu = cpu ?? CPU.current
        let count = poolCount.load(ordering: .acquiring)
        for offset in 0..<defaultNareas {
            var p = count - 1
            while p >= 0 {  // list_add_rcu() put the newest pool first
                let index = poolTable[p]._withUnsafeGuaranteedRef { pool -> Int? in
                    guard offset < pool.nareas else { return nil }
                    let area = (cpu + offset) & (pool.nareas - 1)
                    return search61 ? pool.searchArea61(area, request, log: { ram.log.printk(.err, $0) }) : pool.searchArea(area, request)
                }
                if let index {
                    incUsed(IOTLB.slots(request.allocSize))
                    markUsesIOTLB(client)
                    return (poolTable[p], index)
                }
                p -= 1
            }
        }
        guard canGrow else { return nil }
        scheduleGrowth()
        let nslots = IOTLB.slots(request.allocSize)
        guard let pool = allocPool(minSlabs: nslots, nslabs: nslots, nareas: 1, limit: dmaLimit, mayBlock: mayBlock, transient: true)
        else { return nil }
        guard let index = pool.searchArea(0, request) else {
            freePoolMemory(pool)
            return nil
        }
        client.transientPools.withLock { $0.append(pool) }
        transientSlabs.add(pool.nslabs)
        transientMade.wrappingAdd(1, ordering: .relaxed)
        incUsed(nslots)
        markUsesIOTLB(client)
        return (.passUnretained(pool), index)  // the device's list keeps it until unmap
    }

    /// The pool holding `addr` for this device: the mem's pools, then its transient ones;
    /// nothing to look at for a device that never bounced.
    func findPool(_ client: IOTLBClient, _ addr: PhysAddr) -> Unmanaged<IOTLBPool>? {
        guard client.usesIOTLB.load(ordering: .acquiring) else { return nil }
        let count = poolCount.load(ordering: .acquiring)
        for p in 0..<count where poolTable[p]._withUnsafeGuaranteedRef({ $0.contains(addr) }) {
            return poolTable[p]
        }
        return client.transientPools.withLock { pools in pools.first { $0.contains(addr) }.map { .passUnretained($0) } }
    }

    /// Gives a mapping's slots back; a transient pool goes as a whole (swiotlb_del_transient()).
    func release(_ client: IOTLBClient, _ pool: IOTLBPool, _ tlbAddr: PhysAddr, minAlignMask: UInt64) {
        guard pool.transient else {
            decUsed(pool.release(tlbAddr, minAlignMask: minAlignMask))
            return
        }
        // The list held the pool's only strong reference (the caller's is unretained): the
        // one taken out keeps it alive until its memory is freed (ASan saw the read after).
        let removed = client.transientPools.withLock { pools -> IOTLBPool? in
            guard let at = pools.firstIndex(where: { $0 === pool }) else { return nil }
            return pools.remove(at: at)
        }
        guard let removed else { return }
        decUsed(removed.nslabs)
        transientSlabs.subtract(removed.nslabs)
        freePoolMemory(removed)
    }

    // MARK: - Growth

    private func scheduleGrowth() {
        guard !growPending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        growth.enter()
        DispatchQueue.global().async { [self] in
            growPending.store(false, ordering: .releasing)
            dynAlloc()
            growth.leave()
        }
    }

    /// swiotlb_dyn_alloc(): a pool of the default size and area count, at least the
    /// minimum, below the mem's limit, from a context that may sleep.
    private func dynAlloc() {
        guard let pool = allocPool(
            minSlabs: IOTLB.minSlabs, nslabs: defaultNslabs, nareas: defaultNareas, limit: physLimit, mayBlock: true,
            transient: false)
        else {
            if growFailReport.allow().print { ram.log.printk(.warning, "software IO TLB: Failed to allocate new pool") }
            return
        }
        addPool(pool)
    }

    /// Waits until no growth is in flight (for tests and orderly shutdown).
    public func waitForGrowth() { growth.wait() }

    private func addPool(_ pool: IOTLBPool) {
        addLock.withLock { _ in
            let count = poolCount.load(ordering: .relaxed)
            guard count < Self.maxPools else { return freePoolMemory(pool) }
            (poolTable + count).initialize(to: .passRetained(pool))
            poolCount.store(count + 1, ordering: .releasing)
            nslabsCounter.add(pool.nslabs)
        }
    }

    /// swiotlb_alloc_pool(): at most 4 MiB of slots; halved (to whole segments) down to
    /// `minSlabs` while the memory cannot be had.
    private func allocPool(minSlabs: Int, nslabs: Int, nareas: Int, limit: PhysAddr, mayBlock: Bool, transient: Bool)
        -> IOTLBPool?
    {
        var nslabs = nslabs
        var nareas = nareas
        if nslabs > IOTLB.maxPoolSlabs {
            nslabs = IOTLB.maxPoolSlabs
            nareas = limitNareas(nareas, nslabs)
        }
        while true {
            if let (phys, source) = allocTLB(bytes: nslabs << IOTLB.shift, limit: limit, mayBlock: mayBlock) {
                return IOTLBPool(
                    start: phys, vaddr: ram.virt(phys), nslabs: nslabs, nareas: nareas, transient: transient,
                    source: source)
            }
            guard nslabs > minSlabs else { return nil }
            nslabs = (nslabs >> 1 + IOTLB.segmentSize - 1) / IOTLB.segmentSize * IOTLB.segmentSize
            nareas = limitNareas(nareas, nslabs)
        }
    }

    /// swiotlb_alloc_tlb(): in a CoCo VM a map that may not sleep takes already-decrypted
    /// memory from the atomic pool; otherwise pages, decrypted when the VM needs it.
    private func allocTLB(bytes: Int, limit: PhysAddr, mayBlock: Bool) -> (PhysAddr, IOTLBPool.Source)? {
        let pages = (bytes + PhysicalMemory.pageSize - 1) / PhysicalMemory.pageSize
        if confidential != nil && !mayBlock {
            guard let phys = atomicPool?.alloc(pages: pages) else { return nil }
            return (phys, .atomicPool)
        }
        var order = 0
        while 1 << order < pages { order += 1 }
        guard let phys = ram.allocPages(order: order, limit: limit) else { return nil }
        decrypt(pages: 1 << order)
        return (phys, .pages(order: order))
    }

    /// swiotlb_dyn_free(): pages are re-encrypted before they go back.
    private func freePoolMemory(_ pool: IOTLBPool) {
        switch pool.source {
        case .reserved:
            break
        case .atomicPool:
            atomicPool?.free(pool.start, pages: (pool.nslabs << IOTLB.shift + PhysicalMemory.pageSize - 1) / PhysicalMemory.pageSize)
        case .pages(let order):
            ndelay((confidential?.encryptNsPerPage ?? 0) << order)
            ram.freePages(pool.start, order: order)
        }
    }

    private func decrypt(pages: Int) { ndelay((confidential?.decryptNsPerPage ?? 0) * pages) }

    // MARK: - Reports

    /// Maps that found no slots (each a "swiotlb buffer is full", printed or not: the
    /// printk is rate-limited and NO_WARN skips it), and the last one's size; transient
    /// pools made. A replay reads these around each map.
    public var fullMaps: (count: Int, lastSize: Int) { (fullCount.load(ordering: .relaxed), lastFullSize.load(ordering: .relaxed)) }
    public var transientPoolsMade: Int { transientMade.load(ordering: .relaxed) }

    func noteFull(size: Int) {
        lastFullSize.store(size, ordering: .relaxed)
        fullCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// "swiotlb buffer is full", at most 10 per 5 seconds.
    func reportFull(_ client: IOTLBClient, size: Int) {
        let (print, suppressed) = fullReport.allow()
        if suppressed > 0 { ram.log.printk(.warning, "swiotlb_tbl_map_single: \(suppressed) callbacks suppressed") }
        guard print else { return }
        ram.log.printk(
            .warning,
            "\(client.prefix()): swiotlb buffer is full (sz: \(size) bytes), total \(nslabs) (slots), used \(used) (slots)")
    }

    func reportOverflow(_ client: IOTLBClient, allocSize: Int, size: Int) {
        guard !overflowWarned.exchange(true, ordering: .relaxed) else { return }
        ram.log.printk(
            .warning, "\(client.prefix()): Buffer overflow detected. Allocation size: \(allocSize). Mapping size: \(size).")
    }
}

/// limit_nareas(): no more areas than whole segments.
func limitNareas(_ nareas: Int, _ nslots: Int) -> Int {
    nslots < nareas * IOTLB.segmentSize ? max(nslots / IOTLB.segmentSize, 1) : nareas
}
