// swiotlb_tbl_map_single() and friends: what dma-direct calls when a buffer must bounce.
// The original is copied into the bounce slots at map for every direction, so that a
// device writing only part of the buffer cannot expose stale bounce data (the info-leak
// fix); sync and unmap copy by direction.
import PhysicalMemory

/// What a device asks of the software IO TLB, read from its masks at each call.
public struct IOTLBDeviceLimits: Sendable {
    public var minAlignMask: UInt64
    public var segmentBoundaryMask: UInt64
    /// The first address above the device's streaming DMA mask (transient pools stay below it).
    public var dmaLimit: PhysAddr

    public init(minAlignMask: UInt64, segmentBoundaryMask: UInt64, dmaLimit: PhysAddr) {
        self.minAlignMask = minAlignMask
        self.segmentBoundaryMask = segmentBoundaryMask
        self.dmaLimit = dmaLimit
    }
}

extension IOTLBMem {
    /// The corresponding kernel function is `swiotlb_tbl_map_single()`: slots for the
    /// mapping, padded in front so that the bounce address keeps the original's bits under
    /// min_align_mask, then the original copied in. Returns the bounce (dma) address, or
    /// nil after reporting that the buffer is full (unless `warn` is false: DMA_ATTR_NO_WARN).
    /// The search starts in the area of `cpu`, by default the calling CPU.
    public func mapSingle(
        _ client: IOTLBClient, origAddr: PhysAddr, size mappingSize: Int, allocAlignMask: UInt64 = 0,
        limits: IOTLBDeviceLimits, mayBlock: Bool = false, warn: Bool = true, cpu: Int? = nil
    ) -> PhysAddr? {
        var offset = Int(origAddr & limits.minAlignMask & (allocAlignMask | UInt64(IOTLB.size - 1)))
        let align = Int(allocAlignMask) + 1
        let size = (mappingSize + offset + align - 1) / align * align
        let request = IOTLBPool.Request(
            origAddr: origAddr, allocSize: size, allocAlignMask: allocAlignMask, minAlignMask: limits.minAlignMask,
            segmentBoundaryMask: limits.segmentBoundaryMask)
        guard let (pool, first) = findSlots(client, request, dmaLimit: limits.dmaLimit, mayBlock: mayBlock, cpu: cpu) else {
            noteFull(size: size)
            // 6.1 printed the mapping's size, 6.12 the padded one.
            if warn { reportFull(client, size: kernel == .v6_1 ? mappingSize : size) }
            return nil
        }
        let padSlots = offset >> IOTLB.shift
        offset &= IOTLB.size - 1
        return pool._withUnsafeGuaranteedRef { pool in
            let index = pool.recordOriginal(first, padSlots: padSlots, nslots: IOTLB.slots(size), origAddr: origAddr)
            let tlbAddr = pool.start + PhysAddr(index << IOTLB.shift + offset)
            bounce(client, pool, tlbAddr, size: mappingSize, .toBounce, limits: limits)
            return tlbAddr
        }
    }

    /// Whether `addr` lies in one of this device's bounce pools (is_swiotlb_buffer()).
    public func isBounceBuffer(_ client: IOTLBClient, _ addr: PhysAddr) -> Bool { findPool(client, addr) != nil }

    /// The pool holding a bounce address, for tests and debugfs.
    public func pool(_ client: IOTLBClient, holding addr: PhysAddr) -> IOTLBPool? { findPool(client, addr)?.takeUnretainedValue() }

    /// swiotlb_sync_single_for_cpu() (`toDevice` false: bounce -> original) or _for_device()
    /// (original -> bounce). Returns false when `tlbAddr` is no bounce address of the device.
    @discardableResult
    public func sync(_ client: IOTLBClient, _ tlbAddr: PhysAddr, size: Int, toDevice: Bool, limits: IOTLBDeviceLimits) -> Bool {
        guard let pool = findPool(client, tlbAddr) else { return false }
        pool._withUnsafeGuaranteedRef { bounce(client, $0, tlbAddr, size: size, toDevice ? .toBounce : .fromBounce, limits: limits) }
        return true
    }

    /// The corresponding kernel function is `swiotlb_tbl_unmap_single()`: the copy back
    /// when asked, then the slots (or the whole transient pool) released. Returns false
    /// when `tlbAddr` is no bounce address of the device.
    @discardableResult
    public func unmapSingle(_ client: IOTLBClient, _ tlbAddr: PhysAddr, size: Int, copyBack: Bool, limits: IOTLBDeviceLimits) -> Bool {
        guard let pool = findPool(client, tlbAddr) else { return false }
        pool._withUnsafeGuaranteedRef { pool in
            if copyBack { bounce(client, pool, tlbAddr, size: size, .fromBounce, limits: limits) }
            release(client, pool, tlbAddr, minAlignMask: limits.minAlignMask)
        }
        return true
    }

    private func bounce(
        _ client: IOTLBClient, _ pool: IOTLBPool, _ tlbAddr: PhysAddr, size: Int, _ copy: IOTLBPool.Copy,
        limits: IOTLBDeviceLimits
    ) {
        guard let (copied, overflow) = pool.bounce(tlbAddr, size: size, copy, minAlignMask: limits.minAlignMask, ram: ram, moveData: movesData)
        else { return }
        if let overflow { reportOverflow(client, allocSize: overflow, size: size) }
        _ = copied
    }

    /// The corresponding kernel function is `swiotlb_alloc()`: coherent memory from a
    /// restricted pool, aligned to its size rounded up to a power-of-two number of pages.
    public func allocCoherent(_ client: IOTLBClient, size: Int, limits: IOTLBDeviceLimits) -> PhysAddr? {
        var pages = 1
        while pages * PhysicalMemory.pageSize < size { pages <<= 1 }
        let request = IOTLBPool.Request(
            origAddr: 0, allocSize: size, allocAlignMask: UInt64(pages * PhysicalMemory.pageSize - 1),
            minAlignMask: limits.minAlignMask, segmentBoundaryMask: limits.segmentBoundaryMask)
        guard let (pool, index) = findSlots(client, request, dmaLimit: limits.dmaLimit, mayBlock: true, cpu: nil) else { return nil }
        return pool._withUnsafeGuaranteedRef { $0.start } + PhysAddr(index << IOTLB.shift)
    }

    /// The corresponding kernel function is `swiotlb_free()`; false when `phys` is not a
    /// block of this device's pool.
    public func freeCoherent(_ client: IOTLBClient, _ phys: PhysAddr, limits: IOTLBDeviceLimits) -> Bool {
        unmapSingle(client, phys, size: 0, copyBack: false, limits: limits)
    }
}
