// gfp_t: how an allocation may behave. The emulated page allocator honours the zone
// modifiers (a GFP_DMA or GFP_DMA32 request stays below 16 MiB or 4 GiB); it has no page
// cache to reclaim, so the reclaim and retry bits change nothing there. They matter to
// the layers above: mempool weakens the caller's mask for its first try and sleeps only
// when __GFP_DIRECT_RECLAIM is set, and dm-crypt's page allocator reads __GFP_NORETRY.

public struct GFP: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    // The modifier bits, with the kernel's names.
    public static let dma = GFP(rawValue: 1 << 0)
    public static let highmem = GFP(rawValue: 1 << 1)
    public static let dma32 = GFP(rawValue: 1 << 2)
    public static let high = GFP(rawValue: 1 << 5)
    public static let io = GFP(rawValue: 1 << 6)
    public static let fs = GFP(rawValue: 1 << 7)
    public static let zero = GFP(rawValue: 1 << 8)
    public static let directReclaim = GFP(rawValue: 1 << 10)
    public static let kswapdReclaim = GFP(rawValue: 1 << 11)
    public static let noWarn = GFP(rawValue: 1 << 13)
    public static let noRetry = GFP(rawValue: 1 << 16)
    public static let comp = GFP(rawValue: 1 << 18)
    public static let noMemalloc = GFP(rawValue: 1 << 19)

    // The masks callers use.
    /// GFP_KERNEL: may sleep, reclaim, start I/O and call into filesystems.
    public static let kernel: GFP = [.directReclaim, .kswapdReclaim, .io, .fs]
    /// GFP_NOIO: may sleep and reclaim, but not start I/O (block drivers).
    public static let noIO: GFP = [.directReclaim, .kswapdReclaim]
    /// GFP_NOWAIT: never sleeps.
    public static let noWait: GFP = [.kswapdReclaim]
    /// GFP_ATOMIC: never sleeps, may use the high reserves.
    public static let atomic: GFP = [.high, .kswapdReclaim]

    /// Whether the caller may block (gfpflags_allow_blocking()).
    public var allowsBlocking: Bool { contains(.directReclaim) }

    /// The highest physical address (exclusive) the zone modifiers allow.
    public var zoneLimit: PhysAddr {
        if contains(.dma) { return ZoneKind.dma.limit }
        if contains(.dma32) { return ZoneKind.dma32.limit }
        return .max
    }
}

extension PhysicalMemory {
    /// The corresponding kernel function is `alloc_pages(gfp, order)`.
    @inline(__always)
    public func allocPages(_ gfp: GFP, order: Int) -> PhysAddr? {
        allocPages(order: order, limit: gfp.zoneLimit)
    }
}
