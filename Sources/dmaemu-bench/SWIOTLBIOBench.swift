// The dynamic swiotlb series' I/O table (Petr Tesarik, "Allow dynamic allocation of
// software IO TLB bounce buffers"): read-write bandwidth of "small" (4 KiB, one thread),
// "big" (64 KiB, one thread) and "4way" (4 KiB, four threads) I/O that always bounces, for
// three kernels: base (a fixed 64 MiB swiotlb), default (the series, 64 MiB) and growing
// (the series, booted with 1 MiB). Each cell is the mean of `runs` runs, with the
// coefficient of variance; diff is the bandwidth change from base. Here the I/O goes
// through the seed's HBA with a 32-bit mask on an 8 GiB machine, so every byte bounces.
import ArgumentParser
import Daemon
import Foundation

struct SWIOTLBIOBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiotlb-io", abstract: "The swiotlb seed's small/big/4way table: fixed, dynamic and growing swiotlb.")

    @Option(help: "Runs per cell (the seed: 5).") var runs = 5
    @Option(help: "MiB each workload moves per run (written, then read).") var mib = 64
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (2...50).contains(runs) else { throw ValidationError("--runs must be 2...50") }
        guard (1...4096).contains(mib) else { throw ValidationError("--mib must be 1...4096") }
    }

    struct Workload {
        let name: String, bytes: Int, threads: Int
    }

    static let workloads = [
        Workload(name: "small", bytes: 4096, threads: 1),
        Workload(name: "big", bytes: 65536, threads: 1),
        Workload(name: "4way", bytes: 4096, threads: 4),
    ]
    /// Not in the seed's table, and only on the timeline: the kernel's dma_map_benchmark
    /// with 16 threads mapping 256 KiB each and holding it 100 us, up to 4 MiB mapped at
    /// once on a machine booted with 1 MiB of swiotlb, so that the pools grow.
    static let burst = "threads=16 seconds=1 bits=32 dir=1 granule=64 delay=100000"

    enum Kernel: String, CaseIterable { case base, `default`, growing }

    /// One run: write then read `mib` MiB; read-write MiB/s.
    func measure(_ machine: Machine, _ workload: Workload) throws -> Double {
        let count = max(1, (mib << 20) / workload.bytes / workload.threads)
        let start = ContinuousClock.now
        for op in ["write", "read"] {
            try machine.benchWrite("devices/hba/io", "\(op) \(workload.bytes) count=\(count) threads=\(workload.threads)")
        }
        let seconds = milliseconds(since: start) / 1000
        return Double(2 * count * workload.threads * workload.bytes) / seconds / 1_048_576
    }

    func machine(_ kernel: Kernel) throws -> Machine {
        var config = MachineConfig.defaultMachine()
        config.devices = []
        config.swiotlb.dynamic = kernel != .base
        config.swiotlb.nslabs = (kernel == .growing ? 1 << 20 : 64 << 20) >> 11
        let machine = try Machine(config)
        try machine.benchWrite("control/add_device", "mpt3sas hba dma_mask_bits=32")
        return machine
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        printTable(result)
    }

    func measure() throws -> SWIOTLBIOResult {
        Progress.shared.begin("swiotlb-io")
        var cells: [String: [Kernel: [Double]]] = [:]
        // The timeline first, on a growing machine of its own: how its pools fill and grow
        // from boot as the three workloads run back to back.
        let timeline = try sampleGrowth(try machine(.growing))
        let machines = try Kernel.allCases.map { try machine($0) }
        // Runs follow each other without a reboot, as the seed's did, and the three
        // kernels take turns, so that this noisy machine's drift falls on all of them. One
        // untimed run first faults in the emulated RAM the workload touches (a booted
        // kernel's RAM is resident; ours is mapped MAP_NORESERVE), swiotlb included.
        let steps = Self.workloads.count * (runs + 1)
        for (w, workload) in Self.workloads.enumerated() {
            for machine in machines { _ = try measure(machine, workload) }
            for run in 0..<runs {
                for (kernel, machine) in zip(Kernel.allCases, machines) {
                    cells[workload.name, default: [:]][kernel, default: []].append(try measure(machine, workload))
                }
                Progress.shared.step(w * (runs + 1) + run + 2, of: steps)
            }
        }
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        func variance(_ v: [Double]) -> Double {
            let m = mean(v)
            return (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot() / m * 100
        }
        let rows = Self.workloads.map { workload in
            let row = cells[workload.name]!
            let base = mean(row[.base]!)
            let diff = { (k: Kernel) in (mean(row[k]!) - base) / base * 100 }
            return SWIOTLBIOResult.Row(
                workload: workload.name, baseMibS: base, baseVarPct: variance(row[.base]!),
                defaultMibS: mean(row[.default]!), defaultVarPct: variance(row[.default]!), defaultDiffPct: diff(.default),
                growingMibS: mean(row[.growing]!), growingVarPct: variance(row[.growing]!), growingDiffPct: diff(.growing))
        }
        return SWIOTLBIOResult(runs: runs, mib: mib, rows: rows, grownNslabs: machines[2].swiotlb?.nslabs ?? 0, timeline: timeline)
    }

    /// Every workload once on `machine`, then the burst, with its swiotlb read every
    /// millisecond by another thread: used slots, slots, transient slots and pools.
    func sampleGrowth(_ machine: Machine) throws -> [SWIOTLBIOResult.Sample] {
        guard let mem = machine.swiotlb else { return [] }
        let sampler = SWIOTLBSampler(mem)
        for workload in Self.workloads {
            sampler.workload(workload.name)
            _ = try measure(machine, workload)
        }
        sampler.workload("burst")
        try machine.benchWrite("kernel/debug/dma_map_benchmark", Self.burst)
        mem.waitForGrowth()
        return sampler.stop()
    }

    func printTable(_ result: SWIOTLBIOResult) {
        func signed(_ value: Double) -> String { (value >= 0 ? "+" : "") + fixed(value) + "%" }
        print("swiotlb-io: always-bouncing HBA, \(mib) MiB written + read per run, \(runs) runs after a warm-up; MiB/s is the mean")
        print("       base              default                    growing (1 MiB start)      seed diff (x86 VM)")
        print("       MiB/s    var      MiB/s    var    diff       MiB/s    var    diff       default  growing")
        for row in result.rows {
            let seed = Seeds.swiotlbIO[row.workload]!
            print(padded(row.workload, 7) + padded(fixed(row.baseMibS, 0), 9) + padded(fixed(row.baseVarPct, 2) + "%", 9)
                + padded(fixed(row.defaultMibS, 0), 9) + padded(fixed(row.defaultVarPct, 2) + "%", 7) + padded(signed(row.defaultDiffPct), 11)
                + padded(fixed(row.growingMibS, 0), 9) + padded(fixed(row.growingVarPct, 2) + "%", 7) + padded(signed(row.growingDiffPct), 11)
                + padded(seed.default, 9) + seed.growing)
        }
        let worst = result.rows.map(\.growingDiffPct).min() ?? 0
        print("growing swiotlb ended at \(result.grownNslabs) slabs (started at 512)")
        print("worst growing diff \(signed(worst)) vs the seed's worst \(signed(Seeds.swiotlbWorstGrowing)): "
            + (worst >= Seeds.swiotlbWorstGrowing ? "met" : "NOT met"))
        if let last = result.timeline.last {
            print("timeline (a growing machine of its own): \(result.timeline.count) samples over \(fixed(last.ms, 0)) ms, "
                + "peak \(result.timeline.map(\.used).max() ?? 0) slots used, \(result.timeline.map(\.pools).max() ?? 0) pools")
        }
    }
}
