// modprobe and rmmod of the seed's HBA (SAS 9300-8i, max_sgl_entries=256) under each pool
// generation: the whole probe (six pools, 373959 chain buffers, request frames) and the
// whole remove, as the device's stats time them. The seed timed only the chain pool's
// loops (create+alloc, free+destroy); its figures are printed beside ours for scale.
import ArgumentParser
import DMAPool
import Daemon
import Foundation

struct ProbeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe", abstract: "Probe and remove of the seed's mpt3sas HBA, per dmapool algorithm.")

    @Option(help: "stack | rbtree | legacy | all") var algorithm: AlgorithmChoice = .all
    @Option(help: "Runs; medians are reported.") var runs = 3
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1...50") }
    }

    func run() throws {
        let results = try measure()
        if json { return try BenchJSON.print(results) }
        print("mpt3sas probe/remove, \(runs) runs, medians (ms); the seed timed the chain pool's loops only")
        print("algorithm  probe     remove    seed alloc/free")
        for result in results {
            print(padded(result.algorithm, 11) + padded(fixed(result.probeMs), 10) + padded(fixed(result.removeMs), 10)
                + (Seeds.chainLoop[result.algorithm]?.text ?? "-"))
        }
    }

    func measure() throws -> [ProbeResult] {
        Progress.shared.begin("probe")
        var config = MachineConfig.defaultMachine()
        config.devices = []
        let machine = try Machine(config)
        let algorithms = algorithm.algorithms
        var results: [ProbeResult] = []
        for (a, algorithm) in algorithms.enumerated() {
            var probes: [Double] = [], removes: [Double] = []
            for run in 0..<runs {
                try machine.benchWrite("control/add_device", "mpt3sas 0000:85:00.0 dmapool_algorithm=\(algorithm.rawValue)")
                try machine.benchWrite("devices/0000:85:00.0/state", "remove")
                probes.append(try machine.stat("devices/0000:85:00.0/stats", "probe_us") / 1000)
                removes.append(try machine.stat("devices/0000:85:00.0/stats", "remove_us") / 1000)
                try machine.benchWrite("control/remove_device", "0000:85:00.0")
                Progress.shared.step(a * runs + run + 1, of: algorithms.count * runs)
            }
            results.append(ProbeResult(algorithm: algorithm.rawValue, runs: runs, probeMs: medianOf(probes), removeMs: medianOf(removes)))
        }
        return results
    }
}
