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
    @Flag(help: "One JSON object per result line.") var json = false

    func validate() throws {
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1...50") }
    }

    /// The seed's chain-pool loops: pre-6.4 and Tony's rbtree series (ms).
    static let seed: [DMAPoolAlgorithm: (alloc: Double, free: Double)] = [.legacy: (350, 8901), .rbtree: (18, 19)]

    func run() throws {
        var config = MachineConfig.defaultMachine()
        config.devices = []
        let machine = try Machine(config)
        if !json {
            print("mpt3sas probe/remove, \(runs) runs, medians (ms); the seed timed the chain pool's loops only")
            print("algorithm  probe     remove    seed alloc/free")
        }
        for algorithm in self.algorithm.algorithms {
            var probes: [Double] = [], removes: [Double] = []
            for _ in 0..<runs {
                try machine.benchWrite("control/add_device", "mpt3sas 0000:85:00.0 dmapool_algorithm=\(algorithm.rawValue)")
                try machine.benchWrite("devices/0000:85:00.0/state", "remove")
                probes.append(try machine.stat("devices/0000:85:00.0/stats", "probe_us") / 1000)
                removes.append(try machine.stat("devices/0000:85:00.0/stats", "remove_us") / 1000)
                try machine.benchWrite("control/remove_device", "0000:85:00.0")
            }
            let probe = medianOf(probes), remove = medianOf(removes)
            let seed = Self.seed[algorithm].map { "\(fixed($0.alloc, 0)) / \(fixed($0.free, 0))" } ?? "-"
            if json {
                print(jsonLine([("bench", "probe"), ("algorithm", algorithm.rawValue), ("probe_ms", probe), ("remove_ms", remove)]))
            } else {
                print(algorithm.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
                      + fixed(probe).padding(toLength: 10, withPad: " ", startingAt: 0)
                      + fixed(remove).padding(toLength: 10, withPad: " ", startingAt: 0) + seed)
            }
        }
    }
}
