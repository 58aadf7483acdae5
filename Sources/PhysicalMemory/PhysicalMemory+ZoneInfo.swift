// What /proc/zoneinfo shows of the zones dmaemu models: free pages (the buddy lists'
// only), the watermarks, the zone's extent, its protection (lowmem_reserve[]; no CMA), and
// each CPU's pageset (count, high, batch), in the kernel's format (mm/vmstat.c,
// zoneinfo_show_print()). The per-node and per-zone vmstat counters and stat thresholds
// are not emulated and not printed.
extension PhysicalMemory {
    /// One CPU's pcp lists of a zone: pages on them, the current high (tuned between
    /// highMin and highMax), the batch.
    public struct PageSet: Sendable, Equatable {
        public var count: Int
        public var high: Int
        public var batch: Int
        public var highMin: Int
        public var highMax: Int

        public init(count: Int, high: Int, batch: Int, highMin: Int, highMax: Int) {
            (self.count, self.high, self.batch, self.highMin, self.highMax) = (count, high, batch, highMin, highMax)
        }
    }

    public func pageSet(in kind: ZoneKind, cpu: Int) -> PageSet? {
        guard let zone = zones.first(where: { $0.kind == kind }), zone.pcp.indices.contains(cpu) else { return nil }
        let sizes = zone.pcp[cpu].sizes
        return PageSet(count: sizes.count, high: sizes.high, batch: sizes.batch, highMin: sizes.highMin, highMax: sizes.highMax)
    }

    /// A zone's min, low and high watermarks, in pages.
    public func watermarks(in kind: ZoneKind) -> (min: Int, low: Int, high: Int)? {
        zones.first { $0.kind == kind }.map { ($0.watermarks.min, $0.watermarks.low, $0.watermarks.high) }
    }

    /// What setup_per_zone_wmarks() and zone_pcp_update() make of zones of `managed`
    /// pages (all of lowmem, in zone order) with `minFreeKbytes` and `cpus` CPUs on the
    /// node: each zone's watermarks, pcp batch, high_min and high_max.
    public static func zoneSizes(managed: [Int], minFreeKbytes: Int, cpus: Int)
        -> [(min: Int, low: Int, high: Int, batch: Int, highMin: Int, highMax: Int)] {
        let lowmem = managed.reduce(0, +)
        return managed.map { pages in
            let marks = Watermarks.zone(managed: pages, lowmemPages: lowmem, minFreeKbytes: minFreeKbytes)
            let batch = PCPSizes.batch(managed: pages)
            return (marks.min, marks.low, marks.high, batch, PCPSizes.high(pages: marks.low, batch: batch, cpus: cpus),
                    PCPSizes.high(pages: pages / PCPSizes.highFractionMax, batch: batch, cpus: cpus))
        }
    }

    /// What setup_per_zone_lowmem_reserve() makes of zones DMA, DMA32 and Normal of
    /// `managed` pages: each zone's protection line, lowmem_reserve[0...4].
    public static func lowmemReserve(managed: [Int]) -> [[Int]] {
        LowmemReserve.table(managed: managed).prefix(managed.count).map { reserve in (0..<LowmemReserve.zones).map { reserve[$0] } }
    }

    /// sysctl_lowmem_reserve_ratio, as /proc/sys/vm/lowmem_reserve_ratio prints it.
    public static var lowmemReserveRatio: [Int] { LowmemReserve.ratio }

    public var zoneInfo: String {
        var text = ""
        for zone in zones {
            let marks = zone.watermarks
            let spanned = zone.endPFN - (zone.kind == .dma ? 0 : zone.startPFN)
            text += "Node 0, zone " + pad(zone.kind.description, 8)
            text += "\n  pages free     \(zone.freePages)\n        boost    0\n        min      \(marks.min)"
            text += "\n        low      \(marks.low)\n        high     \(marks.high)"
            text += "\n        promo    \(marks.high + (marks.high - marks.low))"
            text += "\n        spanned  \(spanned)\n        present  \(zone.managedPages)\n        managed  \(zone.managedPages)"
            text += "\n        cma      0\n        protection: ("
            text += (0..<LowmemReserve.zones).map { String(zone.lowmemReserve[$0]) }.joined(separator: ", ") + ")"
            text += "\n  pagesets"
            for (cpu, pcp) in zone.pcp.enumerated() {
                let sizes = pcp.sizes
                text += "\n    cpu: \(cpu)\n              count: \(sizes.count)\n              high:  \(sizes.high)\n              batch: \(sizes.batch)"
            }
            text += "\n  start_pfn:           \(zone.kind == .dma ? 0 : zone.startPFN)\n"
        }
        return text
    }
}
