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
    @Flag(help: "One JSON object per result line.") var json = false

    func validate() throws {
        guard (2...50).contains(runs) else { throw ValidationError("--runs must be 2...50") }
        guard (1...4096).contains(mib) else { throw ValidationError("--mib must be 1...4096") }
    }

    struct Workload {
        let name: String, bytes: Int, threads: Int
        /// The seed's x86 VM diffs (default, growing), in percent.
        let seed: (String, String)
    }

    static let workloads = [
        Workload(name: "small", bytes: 4096, threads: 1, seed: ("-1.5%", "-2.2%")),
        Workload(name: "big", bytes: 65536, threads: 1, seed: ("+0.9%", "+2.9%")),
        Workload(name: "4way", bytes: 4096, threads: 4, seed: ("-0.7%", "<0.1%")),
    ]
    /// The seed's worst growing diff, on any of its machines (CoCo VM, 24way).
    static let seedWorstGrowing = -5.9

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
        var cells: [String: [Kernel: [Double]]] = [:]
        let machines = try Kernel.allCases.map { try machine($0) }
        // Runs follow each other without a reboot, as the seed's did, and the three
        // kernels take turns, so that this noisy machine's drift falls on all of them. One
        // untimed run first faults in the emulated RAM the workload touches (a booted
        // kernel's RAM is resident; ours is mapped MAP_NORESERVE), swiotlb included.
        for workload in Self.workloads {
            for machine in machines { _ = try measure(machine, workload) }
            for _ in 0..<runs {
                for (kernel, machine) in zip(Kernel.allCases, machines) {
                    cells[workload.name, default: [:]][kernel, default: []].append(try measure(machine, workload))
                }
            }
        }
        let grownSlabs = try machines[2].benchRead("kernel/debug/swiotlb/io_tlb_nslabs").trimmingCharacters(in: .whitespacesAndNewlines)
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        func variance(_ v: [Double]) -> Double {
            let m = mean(v)
            return (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot() / m * 100
        }
        func signed(_ value: Double) -> String { (value >= 0 ? "+" : "") + fixed(value) + "%" }
        if !json {
            print("swiotlb-io: always-bouncing HBA, \(mib) MiB written + read per run, \(runs) runs after a warm-up; MiB/s is the mean")
            print("       base              default                    growing (1 MiB start)      seed diff (x86 VM)")
            print("       MiB/s    var      MiB/s    var    diff       MiB/s    var    diff       default  growing")
        }
        var worst = Double.infinity
        for workload in Self.workloads {
            let row = cells[workload.name]!
            let base = mean(row[.base]!)
            let diff = { (k: Kernel) in (mean(row[k]!) - base) / base * 100 }
            worst = min(worst, diff(.growing))
            if json {
                print(jsonLine([
                    ("bench", "swiotlb-io"), ("workload", workload.name),
                    ("base_mib_s", base), ("base_var_pct", variance(row[.base]!)),
                    ("default_mib_s", mean(row[.default]!)), ("default_var_pct", variance(row[.default]!)), ("default_diff_pct", diff(.default)),
                    ("growing_mib_s", mean(row[.growing]!)), ("growing_var_pct", variance(row[.growing]!)), ("growing_diff_pct", diff(.growing)),
                ]))
                continue
            }
            func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: n, withPad: " ", startingAt: 0) }
            print(pad(workload.name, 7) + pad(fixed(base, 0), 9) + pad(fixed(variance(row[.base]!), 2) + "%", 9)
                  + pad(fixed(mean(row[.default]!), 0), 9) + pad(fixed(variance(row[.default]!), 2) + "%", 7) + pad(signed(diff(.default)), 11)
                  + pad(fixed(mean(row[.growing]!), 0), 9) + pad(fixed(variance(row[.growing]!), 2) + "%", 7) + pad(signed(diff(.growing)), 11)
                  + pad(workload.seed.0, 9) + workload.seed.1)
        }
        if !json {
            print("growing swiotlb ended at \(grownSlabs) slabs (started at 512)")
            print("worst growing diff \(signed(worst)) vs the seed's worst \(signed(Self.seedWorstGrowing)): "
                  + (worst >= Self.seedWorstGrowing ? "met" : "NOT met"))
        }
    }
}
