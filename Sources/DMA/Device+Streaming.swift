// The streaming DMA API as dma-direct implements it with no IOMMU: a buffer the device
// can reach by its mask is used in place; one it cannot, or any buffer when bouncing is
// forced (swiotlb=force, a restricted pool, a confidential VM), goes through the
// software IO TLB. Unmap and the syncs copy between bounce and original by direction.
import PhysicalMemory
import SWIOTLB
import Trace

extension Device {
    /// dma_capable(): the whole range lies at or below the streaming mask.
    @inline(__always)
    func dmaCapable(_ dma: DMAAddr, _ size: Int) -> Bool {
        let end = dma &+ UInt64(max(size, 1)) &- 1
        return end >= dma && end <= dmaMask
    }

    /// The corresponding kernel function is `dma_map_page()` (`dma_map_single()` for a CPU
    /// address): the dma address the device uses for [phys, phys + size), or nil for
    /// DMA_MAPPING_ERROR. May be called where sleeping is not allowed.
    public func mapSingle(_ phys: PhysAddr, size: Int, _ direction: DMADirection, attributes: DMAAttributes = []) -> DMAAddr? {
        let dma = map(phys, size, direction, attributes)
        if traced(.dmaMapPage) { traceMap(.dmaMapPage, phys: phys, dma: dma, size: size, direction, attributes) }
        guard let dma else { return nil }
        debug?.add(DebugEntry(dma: dma, size: size, direction: direction, type: .single))
        return dma
    }

    /// dma_map_single() on a CPU address in this machine's RAM.
    public func mapSingle(_ cpu: UnsafeRawPointer, size: Int, _ direction: DMADirection, attributes: DMAAttributes = []) -> DMAAddr? {
        guard ram.contains(cpu) else {
            apiError("device driver maps memory outside RAM [size=\(size) bytes]")
            return nil
        }
        return mapSingle(ram.phys(cpu), size: size, direction, attributes: attributes)
    }

    /// The corresponding kernel function is `dma_unmap_page()`: for FROM_DEVICE and
    /// BIDIRECTIONAL the bounce buffer is copied back first (unless SKIP_CPU_SYNC).
    public func unmapSingle(_ dma: DMAAddr, size: Int, _ direction: DMADirection, attributes: DMAAttributes = []) {
        defer { if traced(.dmaUnmapPage) { traceUnmap(.dmaUnmapPage, dma: dma, size: size, direction, attributes) } }
        if let debug, !debug.checkUnmap(self, dma: dma, size: size, direction: direction, type: .single) { return }
        unmap(dma, size, direction, attributes)
    }

    /// The corresponding kernel function is `dma_map_resource()`: an MMIO range (another
    /// device's BAR) mapped for this one; dma-direct uses it in place, never bouncing, or
    /// refuses what the mask does not reach.
    public func mapResource(_ phys: PhysAddr, size: Int, _ direction: DMADirection, attributes: DMAAttributes = []) -> DMAAddr? {
        var dma: DMAAddr? = phys
        if !dmaCapable(phys, size) {
            printk(.warning, "DMA addr \(dmaAddrText(phys))+\(size) overflow (mask \(hex(dmaMask, 1)), bus limit 0).")
            dma = nil
        }
        if traced(.dmaMapResource) { traceMap(.dmaMapResource, phys: phys, dma: dma, size: size, direction, attributes) }
        return dma
    }

    /// The corresponding kernel function is `dma_unmap_resource()`: nothing to undo.
    public func unmapResource(_ dma: DMAAddr, size: Int, _ direction: DMADirection, attributes: DMAAttributes = []) {
        if traced(.dmaUnmapResource) { traceUnmap(.dmaUnmapResource, dma: dma, size: size, direction, attributes) }
    }

    /// The corresponding kernel function is `dma_sync_single_for_cpu()`: bounce -> original
    /// for FROM_DEVICE and BIDIRECTIONAL. `dma` may point anywhere inside a mapping.
    public func syncSingleForCPU(_ dma: DMAAddr, size: Int, _ direction: DMADirection) {
        guard needsSync else { return }
        defer { if traced(.dmaSyncSingleForCPU) { traceSync(.dmaSyncSingleForCPU, dma: dma, size: size, direction) } }
        if let debug, !debug.checkSync(self, dma: dma, size: size, direction: direction) { return }
        guard direction.deviceWrites else { return }
        withSWIOTLB { client, mem in mem.sync(client, dma, size: size, toDevice: false, limits: iotlbLimits) }
    }

    /// The corresponding kernel function is `dma_sync_single_for_device()`: original ->
    /// bounce for TO_DEVICE and BIDIRECTIONAL.
    public func syncSingleForDevice(_ dma: DMAAddr, size: Int, _ direction: DMADirection) {
        guard needsSync else { return }
        defer { if traced(.dmaSyncSingleForDevice) { traceSync(.dmaSyncSingleForDevice, dma: dma, size: size, direction) } }
        if let debug, !debug.checkSync(self, dma: dma, size: size, direction: direction) { return }
        guard direction.deviceReads else { return }
        withSWIOTLB { client, mem in mem.sync(client, dma, size: size, toDevice: true, limits: iotlbLimits) }
    }

    /// The corresponding kernel functions are `dma_sync_sg_for_cpu()` and `_for_device()`:
    /// each entry as its single sync would.
    public func syncSG(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, forDevice: Bool) {
        guard needsSync else { return }
        for entry in list {
            if let debug, !debug.checkSync(self, dma: entry.dmaAddress, size: entry.dmaLength, direction: direction) { continue }
            guard forDevice ? direction.deviceReads : direction.deviceWrites else { continue }
            withSWIOTLB { client, mem in mem.sync(client, entry.dmaAddress, size: entry.dmaLength, toDevice: forDevice, limits: iotlbLimits) }
        }
        let event: TraceEvent = forDevice ? .dmaSyncSGForDevice : .dmaSyncSGForCPU
        if traced(event) { traceSyncSG(event, list, direction) }
    }

    /// The corresponding kernel function is `dma_map_sg()`: each entry mapped on its own
    /// (no IOMMU merges them). Returns the entry count, or 0 after undoing the entries
    /// already mapped when one fails.
    public func mapSG(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, attributes: DMAAttributes = []) -> Int {
        for i in list.indices {
            guard let dma = map(list[i].phys, list[i].length, direction, attributes) else {
                for j in 0..<i { unmap(list[j].dmaAddress, list[j].dmaLength, direction, attributes.union(.skipCPUSync)) }
                return 0
            }
            list[i].dmaAddress = dma
            list[i].dmaLength = list[i].length
        }
        if traced(.dmaMapSG) { traceMapSG(list, direction, attributes) }
        if let debug {
            for entry in list { debug.add(DebugEntry(dma: entry.dmaAddress, size: entry.dmaLength, direction: direction, type: .scatterGather)) }
        }
        return list.count
    }

    /// The corresponding kernel function is `dma_unmap_sg()`.
    public func unmapSG(_ list: UnsafeMutableBufferPointer<ScatterEntry>, _ direction: DMADirection, attributes: DMAAttributes = []) {
        if traced(.dmaUnmapSG) { traceUnmapSG(list, direction, attributes) }
        for entry in list {
            if let debug, !debug.checkUnmap(self, dma: entry.dmaAddress, size: entry.dmaLength, direction: direction, type: .scatterGather) {
                continue
            }
            unmap(entry.dmaAddress, entry.dmaLength, direction, attributes)
        }
    }

    /// The corresponding kernel function is `dma_max_mapping_size()`: swiotlb's limit when
    /// the device's maps may bounce (its mask does not reach the top of RAM, or bouncing
    /// is forced), otherwise no limit. Block drivers cap their transfers with it.
    public var maxMappingSize: Int {
        let addressingLimited = dmaMask < ram.size - 1
        return withSWIOTLB { _, mem in
            mem.forceBounce || addressingLimited ? IOTLB.maxMappingSize(minAlignMask: minAlignMask) : Int.max
        } ?? Int.max
    }

    /// Whether a map of this buffer would bounce (for the benchmark's report).
    public func wouldBounce(_ phys: PhysAddr, size: Int) -> Bool {
        withSWIOTLB { _, mem in mem.forceBounce || !dmaCapable(phys, size) } ?? false
    }

    /// Runs `body` with this device's swiotlb client and mem, if it has one, without the
    /// retain/release pairs that loading them would cost on every map and unmap (atomic
    /// writes to lines every CPU mapping for the device would share).
    @inline(__always) @discardableResult
    func withSWIOTLB<R>(_ body: (IOTLBClient, IOTLBMem) -> R) -> R? {
        guard let swiotlbRef else { return nil }
        return swiotlbRef._withUnsafeGuaranteedRef { client in client.withMem { mem in body(client, mem) } }
    }

    // MARK: - dma-direct

    /// dma_direct_map_page().
    private func map(_ phys: PhysAddr, _ size: Int, _ direction: DMADirection, _ attributes: DMAAttributes) -> DMAAddr? {
        guard direction != .none else {
            apiError("device driver maps memory with invalid direction [size=\(size) bytes] [direction=\(direction)]")
            return nil
        }
        guard phys < ram.size, size >= 0, UInt64(size) <= ram.size - phys else {
            apiError("device driver maps memory outside RAM [size=\(size) bytes]")
            return nil
        }
        if let force = withSWIOTLB({ _, mem in mem.forceBounce }), force || !dmaCapable(phys, size) {
            if traced(.swiotlbBounced) { traceBounced(phys, size: size, force: force) }
            return withSWIOTLB { client, mem in swiotlbMap(client, mem, phys, size, attributes) } ?? nil
        }
        guard dmaCapable(phys, size) else {
            printk(.warning, "DMA addr \(dmaAddrText(phys))+\(size) overflow (mask \(hex(dmaMask, 1)), bus limit 0).")
            return nil
        }
        return phys
    }

    /// swiotlb_map(): bounce, and refuse a bounce buffer the device still cannot reach.
    private func swiotlbMap(_ client: IOTLBClient, _ mem: IOTLBMem, _ phys: PhysAddr, _ size: Int, _ attributes: DMAAttributes) -> DMAAddr? {
        let limits = iotlbLimits
        guard let tlb = mem.mapSingle(client, origAddr: phys, size: size, limits: limits, warn: !attributes.contains(.noWarn))
        else { return nil }
        // dma_reset_need_sync(): from the first bounce on, the syncs are called.
        if skipSync.load(ordering: .relaxed) { skipSync.store(false, ordering: .relaxed) }
        guard dmaCapable(tlb, size) else {
            mem.unmapSingle(client, tlb, size: size, copyBack: false, limits: limits)
            printk(.warning, "swiotlb addr \(dmaAddrText(tlb))+\(size) overflow (mask \(hex(dmaMask, 1)), bus limit 0).")
            return nil
        }
        return tlb
    }

    /// dma_direct_unmap_page(): sync for the CPU, then give the slots back.
    private func unmap(_ dma: DMAAddr, _ size: Int, _ direction: DMADirection, _ attributes: DMAAttributes) {
        let copyBack = !attributes.contains(.skipCPUSync) && direction.deviceWrites
        _ = withSWIOTLB { client, mem in mem.unmapSingle(client, dma, size: size, copyBack: copyBack, limits: iotlbLimits) }
    }
}
