// /mnt/metrics: every counter of the machine in Prometheus text exposition, rendered by
// swift-prometheus from a registry built at each read, so that devices and pools that are
// gone are gone from the output too. Counters from outside the machine (the FUSE loop's)
// come in as MetricCounters.
import DMA
import DMAPool
import Drivers
import Prometheus

/// A counter `metrics` shows under dmaemu_<subsystem>_<name>_total.
public struct MetricCounter: Sendable {
    public let subsystem: String
    public let name: String
    public let help: String
    public let value: UInt64

    public init(subsystem: String, name: String, help: String, value: UInt64) {
        self.subsystem = subsystem
        self.name = name
        self.help = help
        self.value = value
    }
}

enum Metrics {
    static func text(_ devices: Devices, extra: [MetricCounter]) -> String {
        let registry = PrometheusCollectorRegistry()
        // dmaemu_<name>_<unit>: the unit is the name's last word, as Prometheus names end.
        func gauge(_ name: String, _ unit: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int) {
            let descriptor = MetricNameDescriptor(namespace: "dmaemu", metricName: name, unitName: unit, helpText: help)
            registry.makeGauge(descriptor: descriptor, labels: labels).set(Int64(value))
        }
        let ram = devices.platform.ram
        for kind in ram.zoneKinds {
            gauge("zone_free", "pages", "Free 4 KiB pages in the zone", [("zone", kind.description)], ram.freePages(in: kind))
            let onLists = (0..<ram.cpus).reduce(0) { $0 + (ram.pageSet(in: kind, cpu: $1)?.count ?? 0) }
            gauge("zone_pcp", "pages", "Pages on the zone's per-CPU lists (not free, not in buddyinfo)", [("zone", kind.description)], onLists)
        }
        if let swiotlb = devices.platform.swiotlb {
            gauge("io_tlb", "nslabs", "swiotlb slots in non-transient pools", [], swiotlb.nslabs)
            gauge("io_tlb", "used", "swiotlb slots in use", [], swiotlb.used)
            gauge("io_tlb_used", "hiwater", "High-water mark of swiotlb slots in use", [], swiotlb.usedHiwater)
            gauge("io_tlb_transient", "nslabs", "swiotlb slots in transient pools", [], swiotlb.transientNslabs)
            gauge("io_tlb", "pools", "swiotlb pools, the boot pool and added ones", [], swiotlb.pools.count)
        }
        for device in devices.all {
            let labels = [("device", device.name), ("driver", device.driverName)]
            gauge("device", "bound", "1 while the driver is bound", labels, device.isBound ? 1 : 0)
            gauge("coherent", "allocations", "dma_alloc_coherent blocks not yet freed", labels, device.device.coherentAllocationCount)
            for case let pool as DMAPool in device.device.dmaPools.all {
                let poolLabels = labels + [("pool", pool.name), ("algorithm", pool.algorithm.rawValue)]
                let (active, blocks, pages) = pool.counters
                gauge("dmapool_nr", "active", "Blocks handed out", poolLabels, active)
                gauge("dmapool_nr", "blocks", "The pools file's blocks column", poolLabels, blocks)
                gauge("dmapool_nr", "pages", "Coherent allocations backing the pool", poolLabels, pages)
            }
        }
        for counter in extra {
            registry.makeCounter(descriptor: MetricNameDescriptor(
                namespace: "dmaemu", subsystem: counter.subsystem, metricName: counter.name, unitName: "total", helpText: counter.help)
            ).increment(by: Int64(counter.value))
        }
        return registry.emitToString()
    }
}
