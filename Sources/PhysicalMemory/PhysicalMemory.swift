// The emulated machine's RAM: one anonymous MAP_NORESERVE mapping, so that 8 GiB of
// "physical" memory costs only what is touched. A physical address is an offset into the
// mapping, which makes phys_to_virt and virt_to_phys one addition each. Page frame 0 is
// reserved, as firmware keeps it on a real machine, so no allocation ever has physical
// (and so dma) address 0 and a zero address can mean "no page", as NULL does.
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
    private let memMap: UnsafeMutablePointer<PageFrame>
    private let memMapBytes: Int

    public init(size: UInt64 = 8 << 30, log: KernelLog = KernelLog()) throws(PhysicalMemoryError) {
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
    }

    deinit {
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
    /// limit allows downwards, as the zonelist falls back. `owner` becomes the block's
    /// page_private word (see `freeOwnedPages`). May be called from any thread.
    public func allocPages(order: Int, limit: PhysAddr = .max, owner: UInt64 = 0) -> PhysAddr? {
        guard order >= 0 && order <= Self.maxOrder, !faults.shouldFail(order: order) else { return nil }
        for zone in zones.reversed() where zone.startPFN << Self.pageShift < limit {
            guard let pfn = zone.rmqueue(order: order, owner: owner) else { continue }
            let end = PhysAddr(pfn + (1 << order)) << PhysAddr(Self.pageShift)
            if end <= limit { return PhysAddr(pfn) << PhysAddr(Self.pageShift) }
            zone.free(pfn, order: order)
        }
        return nil
    }

    /// The corresponding kernel function is `__free_pages()`. A block that is not
    /// allocated, or not with this order, is reported and left alone.
    public func freePages(_ phys: PhysAddr, order: Int) {
        let pfn = PFN(phys >> PhysAddr(Self.pageShift))
        guard phys & PhysAddr(Self.pageSize - 1) == 0, let zone = zone(of: pfn) else {
            log.printk(.alert, "BUG: Bad page state in process dmaemu  pfn:\(hex(pfn, 5))")
            return
        }
        switch zone.free(pfn, order: order) {
        case nil:
            break
        case .notAllocated:
            log.printk(.alert, "BUG: Bad page state in process dmaemu  pfn:\(hex(pfn, 5))")
        case .orderMismatch(let allocated):
            log.printk(.alert, "BUG: Bad page state in process dmaemu  pfn:\(hex(pfn, 5))")
            log.printk(.alert, "page dumped because: freed with order \(order), allocated with order \(allocated)")
        }
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
        return zone.freeOwned(pfn, expected: expected, mask: mask)
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
