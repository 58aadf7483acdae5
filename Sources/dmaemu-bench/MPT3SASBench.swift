// The seed's mpt3sas loop (Tony Battersby, "mpt3sas and dmapool scalability"): at
// modprobe the driver allocates 373959 chain buffers of 128 bytes from one pool; at
// rmmod it frees them in allocation order and destroys the pool. The legacy pool makes
// that free loop quadratic (8901 ms in the seed); Tony's tree and Keith's stack do not.
import ArgumentParser
import DMA
import DMAPool
import Foundation

struct MPT3SASBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpt3sas",
        abstract: "The chain-pool loop of mpt3sas modprobe/rmmod: create+alloc, free+destroy."
    )

    @Option(help: "stack | rbtree | legacy | all") var algorithm: AlgorithmChoice = .all
    @Option(help: "Blocks to allocate (the seed's HBA: 373959).") var count = 373_959
    @Option(help: "Block size in bytes.") var size = 128
    @Option(help: "A compiled tools/limits/pool_limit.c to run beside, in the same run.")
    var limit: String?
    @Option(help: "Runs, interleaved with the limit's; the medians are reported.") var runs = 3
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard count > 0 && count <= 50_000_000 else { throw ValidationError("--count must be 1...50000000") }
        guard size > 0 && size <= 4096 else { throw ValidationError("--size must be 1...4096") }
        guard runs > 0 && runs <= 100 else { throw ValidationError("--runs must be 1...100") }
    }

    func run() throws {
        let result = try measure()
        if json { try BenchJSON.print(result) } else { printTable(result) }
    }

    /// This machine is noisy: each run measures every algorithm and then the C limit, so
    /// both see the same conditions, and medians are reported.
    func measure() throws -> MPT3SASResult {
        Progress.shared.begin("mpt3sas")
        let algorithms = algorithm.algorithms
        var samples: [DMAPoolAlgorithm: [PoolLoop]] = [:]
        var limitSamples: [String: [CPoolRun]] = [:]
        let shapes = algorithms.contains(.legacy) ? ["stack", "legacy"] : ["stack"]
        for run in 0..<runs {
            for algorithm in algorithms { samples[algorithm, default: []].append(try poolLoop(algorithm, count: count, size: size)) }
            if let limit {
                for shape in shapes {
                    limitSamples[shape, default: []] += try runLimit(limit, [String(count), shape, String(size)], as: CPoolRun.self)
                }
            }
            Progress.shared.step(run + 1, of: runs)
        }
        let loops = algorithms.map { algorithm in
            let runs = samples[algorithm]!
            var loop = runs[0]
            loop.allocMs = medianOf(runs.map(\.allocMs))
            loop.freeMs = medianOf(runs.map(\.freeMs))
            return loop
        }
        let limits = shapes.compactMap { shape -> CPoolRun? in
            guard var line = limitSamples[shape]?.first, let lines = limitSamples[shape] else { return nil }
            line.allocMs = medianOf(lines.map(\.allocMs))
            line.freeMs = medianOf(lines.map(\.freeMs))
            return line
        }
        return MPT3SASResult(count: count, size: size, runs: runs, algorithms: loops, limits: limits)
    }

    func printTable(_ result: MPT3SASResult) {
        print("mpt3sas chain pool: \(count) x \(size) B; create+alloc, then free in allocation order + destroy")
        print("(medians of \(runs) runs\(limit == nil ? "" : ", each beside a run of the C limit"))")
        print("")
        print(padded("algorithm", 10) + padded("create+alloc", 14) + padded("free+destroy", 14)
            + padded("pages", 8) + padded("blocks", 9) + padded("seed alloc/free", 17) + "C limit alloc/free (ratio)")
        for loop in result.algorithms {
            var limitText = "-"
            if let line = result.limit(for: loop.algorithm) {
                limitText = "\(line.impl) \(fixed(line.allocMs)) / \(fixed(line.freeMs)) ms "
                    + "(\(fixed(loop.allocMs / line.allocMs, 2))x / \(fixed(loop.freeMs / line.freeMs, 2))x)"
            }
            print(padded(loop.algorithm, 10) + padded(fixed(loop.allocMs) + " ms", 14)
                + padded(fixed(loop.freeMs) + " ms", 14) + padded(String(loop.pages), 8)
                + padded(String(loop.blocks), 9) + padded(Seeds.chainLoop[loop.algorithm]?.text ?? "-", 17) + limitText)
        }
        if let stack = result.algorithms.first(where: { $0.algorithm == "stack" }),
            let legacy = result.algorithms.first(where: { $0.algorithm == "legacy" })
        {
            print("")
            print("legacy free+destroy is \(fixed(legacy.freeMs / stack.freeMs, 0))x stack's (seed: 8901 / 19 = 468x)")
        }
    }
}

extension MPT3SASResult {
    /// The C shape an algorithm is measured against: legacy's own, else the v6.4 stack.
    func limit(for algorithm: String) -> CPoolRun? {
        limits.first { $0.impl == (algorithm == "legacy" ? "c-legacy" : "c-stack") }
    }
}
