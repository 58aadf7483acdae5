// /mnt/metrics: every counter of the machine in Prometheus text exposition, rendered by
// swift-prometheus from a registry built at each read, so that devices and pools that are
// gone are gone from the output too.
import DMA
import DMAPool
import PhysicalMemory
import Prometheus

extension Machine {
    func metricsText() -> String {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int) {
            registry.makeGauge(name: name, labels: labels, help: help).set(Int64(value))
        }
        for kind in ram.zoneKinds {
            gauge("dmaemu_zone_free_pages", "Free 4 KiB pages in the zone", [("zone", kind.description)], ram.freePages(in: kind))
        }
        if let swiotlb {
            gauge("dmaemu_io_tlb_nslabs", "swiotlb slots in non-transient pools", [], swiotlb.nslabs)
            gauge("dmaemu_io_tlb_used", "swiotlb slots in use", [], swiotlb.used)
            gauge("dmaemu_io_tlb_used_hiwater", "High-water mark of swiotlb slots in use", [], swiotlb.usedHiwater)
            gauge("dmaemu_io_tlb_transient_nslabs", "swiotlb slots in transient pools", [], swiotlb.transientNslabs)
            gauge("dmaemu_io_tlb_pools", "swiotlb pools, the boot pool and added ones", [], swiotlb.pools.count)
        }
        for device in allDevices {
            let labels = [("device", device.name), ("driver", device.driver)]
            gauge("dmaemu_device_bound", "1 while the driver is bound", labels, device.isBound ? 1 : 0)
            gauge("dmaemu_coherent_allocations", "dma_alloc_coherent blocks not yet freed", labels, device.device.coherentAllocationCount)
            for case let pool as DMAPool in device.device.dmaPools.all {
                let poolLabels = labels + [("pool", pool.name), ("algorithm", pool.algorithm.rawValue)]
                let (active, blocks, pages) = pool.counters
                gauge("dmaemu_dmapool_nr_active", "Blocks handed out", poolLabels, active)
                gauge("dmaemu_dmapool_nr_blocks", "The pools file's blocks column", poolLabels, blocks)
                gauge("dmaemu_dmapool_nr_pages", "Coherent allocations backing the pool", poolLabels, pages)
            }
        }
        return registry.emitToString()
    }
}
