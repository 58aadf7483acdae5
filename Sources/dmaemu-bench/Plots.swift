// The report's figures, drawn from results.json's data.

enum Plots {
    static let colors = ["stack": "#1b7837", "rbtree": "#2166ac", "legacy": "#b2182b", "c-stack": "#555555"]

    /// Per-operation time against block count, log-log: O(1), O(log n) and O(n) apart.
    static func scaling(_ scaling: ScalingResult, width: Double) -> Figure {
        func panel(_ title: String, _ value: (ScalingResult.Point) -> Double, _ cValue: (CPoolRun) -> Double) -> LineChart {
            var series = ["stack", "rbtree", "legacy"].compactMap { algorithm -> Series? in
                let points = scaling.points.filter { $0.algorithm == algorithm }.map { (x: Double($0.blocks), y: value($0)) }
                return points.isEmpty ? nil : Series(name: algorithm, points: points, color: colors[algorithm]!)
            }
            if !scaling.limits.isEmpty {
                series.append(Series(
                    name: "pool_limit.c stack", points: scaling.limits.map { (x: Double($0.count), y: cValue($0) * 1e6 / Double($0.count)) },
                    color: colors["c-stack"]!, dashed: true))
            }
            return LineChart(title: title, x: Axis(label: "blocks in the pool (\(scaling.size) B each)", log: true),
                             y: Axis(label: "ns per operation", log: true), series: series)
        }
        return Figure(width: width, panels: [
            panel("dma_pool_alloc (with dma_pool_create)", \.allocNsPerOp, \.allocMs),
            panel("dma_pool_free in allocation order (with dma_pool_destroy)", \.freeNsPerOp, \.freeMs),
        ])
    }

    /// The growing swiotlb's counters over time: slots used (coloured by workload) and
    /// slots in all, then pools.
    static func swiotlbGrowth(_ io: SWIOTLBIOResult, width: Double) -> Figure {
        // Only the ends of each run of identical samples: the lines are the same, the file a
        // tenth of the size (a sample a millisecond, most of them repeats).
        let all = io.timeline
        func same(_ a: SWIOTLBIOResult.Sample, _ b: SWIOTLBIOResult.Sample) -> Bool {
            (a.workload, a.used, a.nslabs, a.transientNslabs, a.pools) == (b.workload, b.used, b.nslabs, b.transientNslabs, b.pools)
        }
        let timeline = all.indices.filter { i in
            i == 0 || i == all.count - 1 || !same(all[i], all[i - 1]) || !same(all[i], all[i + 1])
        }.map { all[$0] }
        let palette = ["small": "#1b7837", "big": "#2166ac", "4way": "#b2182b", "burst": "#e08214"]
        var used = (SWIOTLBIOBench.workloads.map(\.name) + ["burst"]).map { workload in
            Series(name: "slots used, " + (workload == "burst" ? "burst of 16 x 256 KiB" : workload), points: timeline.filter { $0.workload == workload }.map { (x: $0.ms, y: Double($0.used)) },
                   color: palette[workload] ?? "#444")
        }
        used.append(Series(name: "io_tlb_nslabs", points: timeline.map { (x: $0.ms, y: Double($0.nslabs)) }, color: "#555555", dashed: true, steps: true))
        used.append(Series(name: "slots in transient pools", points: timeline.map { (x: $0.ms, y: Double($0.transientNslabs)) }, color: "#999999", steps: true))
        let pools = Series(name: "pools", points: timeline.map { (x: $0.ms, y: Double($0.pools)) }, color: "#762a83", steps: true)
        return Figure(width: width, panels: [
            LineChart(title: "growing swiotlb (1 MiB at boot): slots used and slots in all",
                      x: Axis(label: "ms since boot"), y: Axis(label: "2 KiB slots"), series: used),
            LineChart(title: "pools in the io_tlb_mem (the boot pool and those added)",
                      x: Axis(label: "ms since boot"), y: Axis(label: "pools"), series: [pools]),
        ])
    }

    /// dm-crypt MiB/s and page allocation time per bio, per page_alloc mode.
    static func dmcrypt(_ results: [DMCryptResult], width: Double) -> Figure {
        let modes = DMCryptBench.modes
        let ciphers = [("aes-xts-plain64", "#2166ac"), ("cipher_null-ecb", "#1b7837")]
        func bars(_ value: @escaping (DMCryptResult) -> Double, _ seed: (Seeds.DMCryptFigure) -> Double) -> [(name: String, color: String, values: [Double?])] {
            ciphers.compactMap { cipher, color in
                let values = modes.map { mode in results.first { $0.cipher == cipher && $0.pageAlloc == mode }.map(value) }
                return values.allSatisfy { $0 == nil } ? nil : (name: cipher, color: color, values: values)
            } + [(name: "seed (Yang Shi)", color: "#999999", values: modes.map { Seeds.dmcrypt[$0].map(seed) })]
        }
        return Figure(width: width, panels: [
            BarChart(title: "dm-crypt 1 MiB writes", yLabel: "MiB/s", categories: modes, series: bars(\.mibPerS, \.mibPerS)),
            BarChart(title: "page allocation per 256-page bio", yLabel: "us", categories: modes, series: bars(\.allocUsPerBio, \.allocUs)),
        ])
    }
}
