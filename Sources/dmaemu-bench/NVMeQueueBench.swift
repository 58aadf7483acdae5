// `dmaemu-bench nvme-queues`: what the NVMe queue's controller thread costs and gives. 4 KiB
// direct reads from an NVMe RAM disk through the `io` file, with `completion=inline` (the
// ringing thread runs the controller and takes the interrupt: dmaemu's synchronous path)
// and `completion=thread` (a controller thread per queue, the interrupt handled there):
// time per request at iodepth 1 on one thread, and throughput at iodepth 32 on one thread
// beside iodepth 1 on every core. tools/limits/handoff_limit.c, run in the same run, gives
// the floor of one request handed to another thread and back, sleeping and polling.
import ArgumentParser
import Daemon
import Foundation

struct NVMeQueueBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvme-queues", abstract: "NVMe completion inline and in a thread per queue: depth 1 cost, depth 32 throughput.")

    @Option(help: "4 KiB requests per measurement, on a 256 MiB disk (1000...65536).") var requests = 50_000
    @Option(help: "Runs, interleaved with the limit's; the medians are reported (1...20).") var runs = 3
    @Option(help: "A compiled tools/limits/handoff_limit.c to run beside.") var limit: String?
    @Option(help: "iodepth_batch of the depth-32 run: transfers per plug (fio's iodepth_batch_submit, default 1).") var batch = 1
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1000...65536).contains(requests) else { throw ValidationError("--requests: 1000...65536") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs: 1...20") }
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(Report.nvmeQueues(result), terminator: "")
    }

    struct LimitRun: Decodable {
        var impl: String
        var nsPerRoundTrip: Double
    }

    /// `count` reads of 4 KiB as the job says; seconds.
    func time(_ machine: Machine, _ job: String) throws -> Double {
        let start = ContinuousClock.now
        try machine.benchWrite("devices/nvme0/io", job)
        return milliseconds(since: start) / 1000
    }

    func measure() throws -> NVMeQueueResult {
        Progress.shared.begin("nvme-queues")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var cells: [String: [Double]] = [:]
        var sleep: [Double] = [], poll: [Double] = []
        for run in 0..<runs {
            for completion in NVMeQueueResult.modes {
                var config = MachineConfig.defaultMachine()
                config.devices = []
                let machine = try Machine(config)
                try machine.benchWrite("control/add_device", "nvme nvme0 capacity=256M completion=\(completion)")
                _ = try time(machine, "read 4K count=1000")  // the disk's pages and the pools, once
                let depth1 = try time(machine, "read 4K count=\(requests)")
                let depth32 = try time(machine, "read 4K count=\(requests) iodepth=32 iodepth_batch=\(batch)")
                let perCore = requests / cores
                let cores1 = try time(machine, "read 4K count=\(perCore) threads=\(cores)")
                let mib = Double(requests * 4096) / Double(1 << 20)
                cells[completion + " us", default: []].append(depth1 * 1e6 / Double(requests))
                cells[completion + " depth1", default: []].append(mib / depth1)
                cells[completion + " depth32", default: []].append(mib / depth32)
                cells[completion + " cores", default: []].append(Double(perCore * cores * 4096) / Double(1 << 20) / cores1)
            }
            if let limit {
                let lines = try runLimit(limit, ["20000"], as: LimitRun.self)
                sleep += lines.filter { $0.impl == "c-handoff-sleep" }.map(\.nsPerRoundTrip)
                poll += lines.filter { $0.impl == "c-handoff-poll" }.map(\.nsPerRoundTrip)
            }
            Progress.shared.step(run + 1, of: runs)
        }
        let modes = NVMeQueueResult.modes.map { completion in
            NVMeQueueResult.Mode(completion: completion, depth1UsPerRequest: medianOf(cells[completion + " us"]!),
                                 depth1MibPerS: medianOf(cells[completion + " depth1"]!),
                                 depth32MibPerS: medianOf(cells[completion + " depth32"]!),
                                 depth1AllCoresMibPerS: medianOf(cells[completion + " cores"]!))
        }
        return NVMeQueueResult(requests: requests, runs: runs, cores: cores, modes: modes,
                               limitSleepNs: sleep.isEmpty ? nil : medianOf(sleep), limitPollNs: poll.isEmpty ? nil : medianOf(poll))
    }
}
