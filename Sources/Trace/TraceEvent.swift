// The events dmaemu traces: the kernel's `dma` system (include/trace/events/dma.h) and
// `swiotlb:swiotlb_bounced`, named and present as the emulated kernel has them, and a
// `dmapool` system of dmaemu's own (the kernel has no dmapool tracepoints; these print
// what tools/dmaemu-record's kprobes on a real host print).
import Lib

public enum TraceEvent: Int, CaseIterable, Sendable {
    case dmaMapPage, dmaUnmapPage, dmaMapResource, dmaUnmapResource, dmaMapSG, dmaUnmapSG
    case dmaAlloc, dmaFree, dmaSyncSingleForCPU, dmaSyncSingleForDevice, dmaSyncSGForCPU, dmaSyncSGForDevice
    case swiotlbBounced
    case dmaPoolCreate, dmaPoolAlloc, dmaPoolFree, dmaPoolDestroy

    public var system: String {
        switch self {
        case .swiotlbBounced: "swiotlb"
        case .dmaPoolCreate, .dmaPoolAlloc, .dmaPoolFree, .dmaPoolDestroy: "dmapool"
        default: "dma"
        }
    }

    /// The name in `kernel`, or nil where that kernel has no such event: 6.1 has only
    /// swiotlb_bounced of these; 6.18 maps and unmaps by physical address (dma_map_phys,
    /// which also takes what dma_map_resource did).
    public func name(in kernel: KernelVersion) -> String? {
        if system == "dma" && kernel == .v6_1 { return nil }
        switch self {
        case .dmaMapPage: return kernel >= .v6_18 ? "dma_map_phys" : "dma_map_page"
        case .dmaUnmapPage: return kernel >= .v6_18 ? "dma_unmap_phys" : "dma_unmap_page"
        case .dmaMapResource: return kernel >= .v6_18 ? nil : "dma_map_resource"
        case .dmaUnmapResource: return kernel >= .v6_18 ? nil : "dma_unmap_resource"
        case .dmaMapSG: return "dma_map_sg"
        case .dmaUnmapSG: return "dma_unmap_sg"
        case .dmaAlloc: return "dma_alloc"
        case .dmaFree: return "dma_free"
        case .dmaSyncSingleForCPU: return "dma_sync_single_for_cpu"
        case .dmaSyncSingleForDevice: return "dma_sync_single_for_device"
        case .dmaSyncSGForCPU: return "dma_sync_sg_for_cpu"
        case .dmaSyncSGForDevice: return "dma_sync_sg_for_device"
        case .swiotlbBounced: return "swiotlb_bounced"
        case .dmaPoolCreate: return "dma_pool_create"
        case .dmaPoolAlloc: return "dma_pool_alloc"
        case .dmaPoolFree: return "dma_pool_free"
        case .dmaPoolDestroy: return "dma_pool_destroy"
        }
    }

    /// The events `kernel` has, in the order tracefs lists them.
    public static func all(in kernel: KernelVersion) -> [TraceEvent] { allCases.filter { $0.name(in: kernel) != nil } }

    /// The number the format file's ID line shows (the kernel numbers its events at boot).
    public var id: Int { 1200 + rawValue }

    /// The bit of the tracer's enable mask.
    @inlinable var bit: UInt64 { 1 << UInt64(rawValue) }
}

/// DMA_MAPPING_ERROR: what a failed map returns (and its event shows).
public let dmaMappingError: UInt64 = ~0

/// DMA_TRACE_MAX_ENTRIES: the most entries dma_map_sg's event records of each array.
public let dmaTraceMaxEntries = 128
