// Yang Shi's dm-crypt figure ("Introduce mempool pages bulk allocator and use it in
// dm-crypt", v2, Feb 2023): 1 MiB writes to dm-crypt over a RAM disk, before (one
// mempool_alloc() per page) and after (the mempool bulk allocator), and the page
// allocation time of one 256-page bio, beside the compound pages upstream merged instead.
// Here dm-0 sits on an emulated NVMe whose disk is RAM; the queue depth is the number of
// threads submitting at once (our I/O is synchronous per submitter).
import ArgumentParser
import Daemon
import Foundation

struct DMCryptBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmcrypt", abstract: "dm-crypt 1 MiB writes: out-bio pages by single, bulk and compound allocation.")

    @Option(help: "Writes in flight (submitting threads; the seed's fio ran depth 256 on 80 CPUs).") var iodepth = 2
    @Option(help: "MiB written per run.") var mib = 256
    @Option(help: "Runs per mode, after a warm-up.") var runs = 5
    @Option(help: "aes-xts-plain64, or cipher_null-ecb to leave allocation and I/O alone.") var cipher = "aes-xts-plain64"
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...64).contains(iodepth) else { throw ValidationError("--iodepth must be 1...64") }
        guard (16...4096).contains(mib) else { throw ValidationError("--mib must be 16...4096") }
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1...50") }
        guard ["aes-xts-plain64", "cipher_null-ecb"].contains(cipher) else { throw ValidationError("--cipher: aes-xts-plain64 or cipher_null-ecb") }
    }

    static let modes = ["single", "bulk", "compound"]

    func machine(_ mode: String) throws -> Machine {
        var config = MachineConfig.defaultMachine()
        config.devices = []
        let machine = try Machine(config)
        try machine.benchWrite("control/add_device", "nvme nvme0 capacity=\(mib)M")
        let key = cipher == "cipher_null-ecb" ? "-" : String(repeating: "0123456789abcdef", count: 8)
        try machine.benchWrite("control/add_device", "dm-crypt dm-0 lower=nvme0 cipher=\(cipher) key=\(key) page_alloc=\(mode)")
        return machine
    }

    /// One run: `mib` MiB of 1 MiB writes from `iodepth` threads; MiB/s.
    func measure(_ machine: Machine) throws -> Double {
        let count = mib / iodepth
        let start = ContinuousClock.now
        try machine.benchWrite("devices/dm-0/io", "write 1M count=\(count) threads=\(iodepth)")
        return Double(count * iodepth) / (milliseconds(since: start) / 1000)
    }

    func stat(_ machine: Machine, _ key: String) throws -> Double {
        let stats = try machine.benchRead("devices/dm-0/stats")
        let line = stats.split(separator: "\n").first { $0.hasPrefix(key + " ") } ?? ""
        return Double(line.split(separator: " ").last ?? "") ?? 0
    }

    func run() throws {
        let results = try measure()
        if json { return try BenchJSON.print(results) }
        print("dmcrypt: 1 MiB writes to dm-0 (\(cipher)) over an NVMe RAM disk, depth \(iodepth), \(mib) MiB per run, mean of \(runs) runs")
        print("mode       MiB/s   alloc us/bio   seed MiB/s   seed alloc us/bio")
        for result in results {
            let seed = Seeds.dmcrypt[result.pageAlloc]
            print(padded(result.pageAlloc, 11) + padded(fixed(result.mibPerS, 0), 8) + padded(fixed(result.allocUsPerBio, 1), 15)
                + padded(seed.map { fixed($0.mibPerS, 0) } ?? "-", 13) + (seed.map { "~" + fixed($0.allocUs, 0) } ?? "-"))
        }
        let single = results[0], bulk = results[1], compound = results[2]
        let gain = (bulk.mibPerS - single.mibPerS) / single.mibPerS * 100
        print("bulk vs single: \(gain >= 0 ? "+" : "")\(fixed(gain))% MiB/s (seed +7.8%), allocation "
            + "\(fixed(single.allocUsPerBio / max(bulk.allocUsPerBio, 0.001)))x faster (seed ~20x)")
        print("compound vs single: \(fixed((compound.mibPerS - single.mibPerS) / single.mibPerS * 100))% MiB/s, allocation "
            + "\(fixed(single.allocUsPerBio / max(compound.allocUsPerBio, 0.001)))x faster")
    }

    func measure() throws -> [DMCryptResult] {
        Progress.shared.begin("dmcrypt " + cipher)
        let machines = try Self.modes.map { try machine($0) }
        // The warm-up faults in the RAM disk and the page cache's pages; then the modes
        // take turns, so that drift on this shared machine falls on all of them.
        for machine in machines { _ = try measure(machine) }
        var results = [[Double]](repeating: [], count: Self.modes.count)
        for run in 0..<runs {
            for (i, machine) in machines.enumerated() { results[i].append(try measure(machine)) }
            Progress.shared.step(run + 1, of: runs)
        }
        return try zip(Self.modes, zip(results, machines)).map { mode, run in
            DMCryptResult(
                pageAlloc: mode, cipher: cipher, iodepth: iodepth, mib: mib, runs: runs,
                mibPerS: run.0.reduce(0, +) / Double(run.0.count), allocUsPerBio: try stat(run.1, "alloc_us_per_bio"))
        }
    }
}
