// The dma and swiotlb tracepoints of a device (include/trace/events/dma.h, swiotlb.h),
// fired where the kernel fires them: a map's event after the map (with the address it
// got, DMA_MAPPING_ERROR too), swiotlb_bounced before the bounce with the original
// buffer's address, dma_unmap_sg before the unmap, the syncs only once the device needs
// them (dma_skip_sync: a coherent device needs none until its first bounce). A disabled
// event costs the caller one load of the tracer's mask; an enabled one is recorded by
// the functions below, out of line.
import Lib
import PhysicalMemory
import Trace

extension Device {
    /// Whether `event` is being recorded for this device: inlinable, so that a pool or a
    /// driver in another module pays one load, not a call.
    @inlinable
    public func traced(_ event: TraceEvent) -> Bool {
        guard let tracerRef else { return false }
        return tracerRef._withUnsafeGuaranteedRef { $0.isEnabled(event) }
    }

    /// dma_dev_need_sync(): the sync calls reach dma-direct (and their events fire).
    var needsSync: Bool { !skipSync.load(ordering: .relaxed) || debug != nil }

    @inline(never)
    func traceMap(_ event: TraceEvent, phys: PhysAddr, dma: DMAAddr?, size: Int, _ direction: DMADirection, _ attributes: DMAAttributes) {
        tracer?.record(event, traceName, payload: 5) { p in
            (p[0], p[1], p[2], p[3], p[4]) = (phys, dma ?? dmaMappingError, UInt64(size), UInt64(direction.rawValue), UInt64(attributes.rawValue))
        }
    }

    @inline(never)
    func traceUnmap(_ event: TraceEvent, dma: DMAAddr, size: Int, _ direction: DMADirection, _ attributes: DMAAttributes) {
        tracer?.record(event, traceName, payload: 4) { p in
            (p[0], p[1], p[2], p[3]) = (dma, UInt64(size), UInt64(direction.rawValue), UInt64(attributes.rawValue))
        }
    }

    @inline(never)
    func traceSync(_ event: TraceEvent, dma: DMAAddr, size: Int, _ direction: DMADirection) {
        tracer?.record(event, traceName, payload: 3) { p in (p[0], p[1], p[2]) = (dma, UInt64(size), UInt64(direction.rawValue)) }
    }

    /// swiotlb_bounced: the original buffer's dma address (phys_to_dma(paddr)).
    @inline(never)
    func traceBounced(_ phys: PhysAddr, size: Int, force: Bool) {
        tracer?.record(.swiotlbBounced, traceName, payload: 4) { p in (p[0], p[1], p[2], p[3]) = (dmaMask, phys, UInt64(size), force ? 1 : 0) }
    }

    @inline(never)
    func traceAlloc(virt: UnsafeMutableRawPointer?, dma: DMAAddr, size: Int, gfp: GFP) {
        let address = virt.map { ram.kernelAddress($0) } ?? 0
        tracer?.record(.dmaAlloc, traceName, payload: 6) { p in
            (p[0], p[1], p[2], p[3], p[4], p[5]) = (address, dma, UInt64(size), UInt64(DMADirection.bidirectional.rawValue), UInt64(gfp.rawValue), 0)
        }
    }

    @inline(never)
    func traceFree(virt: UnsafeMutableRawPointer, dma: DMAAddr, size: Int) {
        let address = ram.kernelAddress(virt)
        tracer?.record(.dmaFree, traceName, payload: 5) { p in
            (p[0], p[1], p[2], p[3], p[4]) = (address, dma, UInt64(size), UInt64(DMADirection.bidirectional.rawValue), 0)
        }
    }

    /// dma_map_sg: the entries up to DMA_TRACE_MAX_ENTRIES of each array.
    @inline(never)
    func traceMapSG(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, _ attributes: DMAAttributes) {
        let n = min(list.count, dmaTraceMaxEntries)
        tracer?.record(.dmaMapSG, traceName, payload: 4 + 3 * n) { p in
            (p[0], p[1], p[2], p[3]) = (UInt64(direction.rawValue), UInt64(attributes.rawValue), UInt64(list.count), UInt64(list.count))
            for i in 0..<n {
                p[4 + i] = list[i].phys
                p[4 + n + i] = list[i].dmaAddress
                p[4 + 2 * n + i] = UInt64(list[i].dmaLength)
            }
        }
    }

    /// dma_unmap_sg: every entry's original address.
    @inline(never)
    func traceUnmapSG(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, _ attributes: DMAAttributes) {
        tracer?.record(.dmaUnmapSG, traceName, payload: 3 + list.count) { p in
            (p[0], p[1], p[2]) = (UInt64(direction.rawValue), UInt64(attributes.rawValue), UInt64(list.count))
            for i in list.indices { p[3 + i] = list[i].phys }
        }
    }

    @inline(never)
    func traceSyncSG(_ event: TraceEvent, _ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection) {
        tracer?.record(event, traceName, payload: 2 + 2 * list.count) { p in
            (p[0], p[1]) = (UInt64(direction.rawValue), UInt64(list.count))
            for i in list.indices {
                p[2 + i] = list[i].dmaAddress
                p[2 + list.count + i] = UInt64(list[i].dmaLength)
            }
        }
    }
}
