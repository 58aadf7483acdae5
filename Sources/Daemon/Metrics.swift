// /mnt/metrics: every counter of the machine in Prometheus text exposition, rendered by
// swift-prometheus from a registry built at each read, so that devices and pools that are
// gone are gone from the output too.
import DMA
import DMAPool
import FUSE
import Locking
import PhysicalMemory
import Prometheus

/// A reference that does not keep its object alive (the server holds the tree, which
/// holds the machine).
struct Weak<Object: AnyObject> {
    weak var object: Object?
}

extension Machine {
    /// The metrics also count the requests `server` serves.
    public func attach(_ server: FUSEServer) { self.server.withLock { $0.object = server } }

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
        if let loop = server.withLock({ $0.object })?.loopStatistics {
            func counter(_ name: String, _ help: String, _ value: UInt64) {
                registry.makeCounter(descriptor: MetricNameDescriptor(
                    namespace: "dmaemu", subsystem: "fuse", metricName: name, unitName: "total", helpText: help)
                ).increment(by: Int64(value))
            }
            counter("requests", "Requests read from /dev/fuse", loop.requests)
            counter("requests_polled", "Requests that came while the reader polled /dev/fuse", loop.polled)
            counter("reader_wakeups", "Requests the sleeping reader was woken for", loop.wakeups)
            counter("handoffs", "Slow requests that had the reader's place handed to another worker", loop.handoffs)
        }
        return registry.emitToString()
    }
}
