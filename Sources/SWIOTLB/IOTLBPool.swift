// struct io_tlb_pool: one physically contiguous bounce region of 2 KiB slots. Each slot
// records how many free slots follow it up to the end of its 128-slot segment, so a
// search needs only one comparison per candidate and a run never crosses a segment;
// release renumbers the freed run and the free run before it, merging both sides. The
// region is split into areas, each with its own lock, used count and next-fit index, so
// CPUs mapping at once rarely meet on a lock.
import Locking
import PhysicalMemory

#if canImport(Glibc)
import Glibc
#endif

public final class IOTLBPool: @unchecked Sendable {  // slots of an area are touched only under its lock
    struct Area {
        var used = 0
        /// Area-relative slot where the next search starts.
        var index = 0
    }

    public let start: PhysAddr
    public let end: PhysAddr
    public let vaddr: UnsafeMutableRawPointer
    public let nslabs: Int
    public let nareas: Int
    public let areaNslabs: Int
    /// Made for one mapping that found no room, owned by its device, freed at unmap.
    public let transient: Bool
    let slots: UnsafeMutablePointer<IOTLBSlot>
    /// Each slot's `list`: free slots from it to the end of its segment, 0 while in use.
    let lists: UnsafeMutablePointer<UInt16>
    /// One lock per area, each on its own cache line.
    private let areaBase: UnsafeMutableRawPointer
    private let areaStride: Int
    /// How the memory was obtained, so it goes back the same way.
    let source: Source

    enum Source { case reserved, pages(order: Int), atomicPool }

    /// swiotlb_init_io_tlb_pool(): every slot free, each counting to its segment's end
    /// (capped at the pool's end: a transient pool may be shorter than a segment).
    init(start: PhysAddr, vaddr: UnsafeMutableRawPointer, nslabs: Int, nareas: Int, transient: Bool, source: Source) {
        self.start = start
        self.end = start + PhysAddr(nslabs << IOTLB.shift)
        self.vaddr = vaddr
        self.nslabs = nslabs
        self.nareas = nareas
        self.areaNslabs = nslabs / nareas
        self.transient = transient
        self.source = source
        slots = .allocate(capacity: nslabs)
        lists = .allocate(capacity: nslabs)
        for i in 0..<nslabs {
            lists[i] = UInt16(min(IOTLB.segmentSize - i % IOTLB.segmentSize, nslabs - i))
            slots[i] = IOTLBSlot(origAddr: IOTLB.invalidPhysAddr, allocSize: 0, padSlots: 0)
        }
        (areaBase, areaStride) = CacheLine.allocate(SpinLock<Area>.self, count: nareas)
        for i in 0..<nareas {
            (areaBase + i * areaStride).bindMemory(to: SpinLock<Area>.self, capacity: 1).initialize(to: SpinLock(Area()))
        }
        Self.zero(vaddr, bytes: nslabs << IOTLB.shift)
    }

    /// The region starts zeroed, as memblock and the page allocator hand it out. A large
    /// one is given back to the kernel instead of written (MADV_DONTNEED on private
    /// anonymous memory reads as zeros again): a 1 GiB pool then costs nothing until
    /// slots are used, as on a machine whose RAM is already there.
    static func zero(_ vaddr: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= 2 << 20 && Int(bitPattern: vaddr) & (PhysicalMemory.pageSize - 1) == 0
            && madvise(vaddr, bytes, MADV_DONTNEED) == 0
        {
            return
        }
        vaddr.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit {
        slots.deallocate()
        lists.deallocate()
        for i in 0..<nareas { area(i).deinitialize(count: 1) }
        areaBase.deallocate()
    }

    public func contains(_ addr: PhysAddr) -> Bool { addr >= start && addr < end }

    @inline(__always)
    func area(_ index: Int) -> UnsafeMutablePointer<SpinLock<Area>> {
        (areaBase + index * areaStride).assumingMemoryBound(to: SpinLock<Area>.self)
    }

    /// Slots in use in all areas, read without their locks (mem_used() without DEBUG_FS).
    var usedUnlocked: Int { (0..<nareas).reduce(0) { $0 + area($1).pointee.withLock { $0.used } } }

    /// Slots in use in each area, for tests and debugfs.
    public var areaUsed: [Int] { (0..<nareas).map { i in area(i).pointee.withLock { $0.used } } }

    /// The free-run count of every slot (the kernel's `list`), for tests.
    package func freeRuns(_ range: Range<Int>) -> [Int] {
        range.map { index in area(index / areaNslabs).pointee.withLock { _ in Int(lists[index]) } }
    }

    /// The search's view of the device and the request.
    struct Request {
        var origAddr: PhysAddr
        /// The padded size: the mapping plus its min-align offset, aligned.
        var allocSize: Int
        var allocAlignMask: UInt64
        var minAlignMask: UInt64
        var segmentBoundaryMask: UInt64
    }

    /// The corresponding kernel function is `swiotlb_search_pool_area()`: next-fit from the
    /// area's index. Returns the pool-absolute first slot, or nil. Takes the area lock.
    func searchArea(_ areaIndex: Int, _ request: Request) -> Int? {
        var allocAlignMask = request.allocAlignMask
        var iotlbAlignMask = request.minAlignMask
        let boundaryMask = request.segmentBoundaryMask
        let tblDMA = start & boundaryMask
        let maxSlots = maxSlotCount(boundaryMask)
        let nslots = IOTLB.slots(request.allocSize)
        let offset = Int(request.origAddr & request.minAlignMask & UInt64(IOTLB.size - 1))
        // Streaming maps of a page or more stay page aligned when nothing else is asked.
        if allocAlignMask == 0 && iotlbAlignMask == 0 && request.allocSize >= PhysicalMemory.pageSize {
            allocAlignMask = UInt64(PhysicalMemory.pageSize - 1)
        }
        allocAlignMask |= UInt64(IOTLB.size - 1)
        iotlbAlignMask &= ~allocAlignMask
        let stride = maxSlotCount(max(allocAlignMask, iotlbAlignMask))
        let slotBase = areaIndex * areaNslabs
        let areaNslabs = self.areaNslabs

        return area(areaIndex).pointee.withLock { area -> Int? in
            guard nslots <= areaNslabs - area.used else { return nil }
            var index = area.index
            var checked = 0
            while checked < areaNslabs {
                let slotIndex = slotBase + index
                let tlbAddr = tblDMA + PhysAddr(slotIndex << IOTLB.shift)
                if tlbAddr & allocAlignMask != 0
                    || (request.origAddr != 0 && tlbAddr & iotlbAlignMask != request.origAddr & iotlbAlignMask)
                {
                    index = (index + 1) % areaNslabs
                    checked += 1
                    continue
                }
                if !crossesBoundary(slotIndex, nslots, shift: IOTLB.slots(Int(truncatingIfNeeded: tblDMA)), maxSlots),
                    Int(lists[slotIndex]) >= nslots
                {
                    markUsed(slotIndex, nslots, allocSize: request.allocSize, offset: offset)
                    area.index = (index + nslots) % areaNslabs
                    area.used += nslots
                    return slotIndex
                }
                index = (index + stride) % areaNslabs
                checked += stride
            }
            return nil
        }
    }

    /// The slots of the run become in use; the free slots before it in its segment now
    /// count only up to the run.
    func markUsed(_ first: Int, _ nslots: Int, allocSize: Int, offset: Int) {
        for i in first..<(first + nslots) {
            lists[i] = 0
            slots[i].allocSize = allocSize - (offset + ((i - first) << IOTLB.shift))
        }
        renumberFreeBefore(first, from: 0)
    }

    /// The free slots before `index` in its segment count on from `count`, up to the
    /// segment start or the first slot in use.
    @inline(__always)
    private func renumberFreeBefore(_ index: Int, from count: UInt16) {
        // The kernel stops where io_tlb_offset(i) == IO_TLB_SEGSIZE - 1: before the segment start.
        let segmentStart = index & ~(IOTLB.segmentSize - 1)
        var count = count
        var slot = lists + (index &- 1)
        let stop = lists + segmentStart
        while slot >= stop && slot.pointee != 0 {
            count &+= 1
            slot.pointee = count
            slot -= 1
        }
    }

    /// The corresponding kernel function is `swiotlb_release_slots()`: the run (with its
    /// padding) is freed and renumbered together with the free slots on both sides.
    /// Takes the area lock. Returns how many slots were freed.
    func release(_ tlbAddr: PhysAddr, minAlignMask: UInt64) -> Int {
        let offset = Int(tlbAddr & minAlignMask & UInt64(IOTLB.size - 1))
        var index = Int(tlbAddr - PhysAddr(offset) - start) >> IOTLB.shift
        let area = index / areaNslabs
        return self.area(area).pointee.withLock { area in
            index -= Int(slots[index].padSlots)
            let nslots = IOTLB.slots(slots[index].allocSize + offset)
            var count: UInt16 =
                index + nslots < (index + 1 + IOTLB.segmentSize - 1) / IOTLB.segmentSize * IOTLB.segmentSize
                ? lists[index + nslots] : 0
            for i in stride(from: index + nslots - 1, through: index, by: -1) {
                count &+= 1
                lists[i] = count
                slots[i] = IOTLBSlot(origAddr: IOTLB.invalidPhysAddr, allocSize: 0, padSlots: 0)
            }
            renumberFreeBefore(index, from: count)
            area.used -= nslots
            return nslots
        }
    }

    /// Records the original address of each slot after the padding; returns the slot
    /// index the mapping starts in.
    func recordOriginal(_ first: Int, padSlots: Int, nslots: Int, origAddr: PhysAddr) -> Int {
        let index = first + padSlots
        slots[index].padSlots = UInt16(padSlots)
        for i in 0..<(nslots - padSlots) {
            slots[index + i].origAddr = origAddr + PhysAddr(i << IOTLB.shift)
        }
        return index
    }

    enum Copy { case toBounce, fromBounce }

    /// The corresponding kernel function is `swiotlb_bounce()`: copies between the bounce
    /// slot holding `tlbAddr` and the original, from any offset into the mapping. Returns
    /// the bytes copied, or nil when the slot holds no original (padding, or free).
    func bounce(
        _ tlbAddr: PhysAddr, size: Int, _ copy: Copy, minAlignMask: UInt64, ram: PhysicalMemory, moveData: Bool = true
    ) -> (copied: Int, overflow: Int?)? {
        let index = Int(tlbAddr - start) >> IOTLB.shift
        var origAddr = slots[index].origAddr
        guard origAddr != IOTLB.invalidPhysAddr else { return nil }
        // May be negative in slots after the first; see the kernel's comment on it.
        let tlbOffset = Int(tlbAddr & UInt64(IOTLB.size - 1)) - Int(origAddr & minAlignMask & UInt64(IOTLB.size - 1))
        origAddr = PhysAddr(Int64(bitPattern: origAddr) + Int64(tlbOffset))
        let allocSize = slots[index].allocSize - tlbOffset
        let length = min(size, allocSize)
        let bounce = vaddr + Int(tlbAddr - start)
        let original = ram.virt(origAddr)
        guard moveData else { return (length, size > allocSize ? allocSize : nil) }
        switch copy {
        case .toBounce: bounce.copyMemory(from: original, byteCount: length)
        case .fromBounce: original.copyMemory(from: bounce, byteCount: length)
        }
        return (length, size > allocSize ? allocSize : nil)
    }
}

/// get_max_slots(): the slots between two multiples of boundary_mask + 1.
@inline(__always)
func maxSlotCount(_ mask: UInt64) -> Int { Int(mask >> UInt64(IOTLB.shift)) + 1 }

/// iommu_is_span_boundary(): whether nr slots from index cross a multiple of boundary slots.
@inline(__always)
func crossesBoundary(_ index: Int, _ nr: Int, shift: Int, _ boundary: Int) -> Bool {
    ((shift + index) & (boundary - 1)) + nr > boundary
}
