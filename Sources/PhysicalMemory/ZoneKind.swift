/// The kernel's memory zones on x86-64: what a device with a narrow DMA mask can reach.
public enum ZoneKind: Int, Sendable, CaseIterable, CustomStringConvertible {
    case dma = 0, dma32, normal

    /// The name /proc/buddyinfo prints.
    public var description: String {
        switch self {
        case .dma: "DMA"
        case .dma32: "DMA32"
        case .normal: "Normal"
        }
    }

    /// The first physical address above the zone (ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB).
    public var limit: PhysAddr {
        switch self {
        case .dma: 16 << 20
        case .dma32: 4 << 30
        case .normal: .max
        }
    }

    /// The highest zone an allocation below `limit` is asked for, as a DMA mask picks its
    /// GFP zone (dma_direct_optimal_gfp_mask(): GFP_DMA to 16 MiB, GFP_DMA32 to 4 GiB).
    static func highest(below limit: PhysAddr) -> ZoneKind {
        limit <= ZoneKind.dma.limit ? .dma : limit <= ZoneKind.dma32.limit ? .dma32 : .normal
    }
}
