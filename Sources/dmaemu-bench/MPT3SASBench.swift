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
    @Option(help: "A compiled ../shared/bench/pool_limit.c to run beside, in the same run.")
    var limit: String?
    @Option(help: "Runs, interleaved with the limit's; the medians are reported.") var runs = 3
    @Flag(help: "One JSON object per result line.") var json = false

    struct Result {
        let algorithm: DMAPoolAlgorithm
        let allocMs: Double
        let freeMs: Double
        let pages: Int
        let blocks: Int
    }

    func validate() throws {
        guard count > 0 && count <= 50_000_000 else { throw ValidationError("--count must be 1...50000000") }
        guard size > 0 && size <= 4096 else { throw ValidationError("--size must be 1...4096") }
        guard runs > 0 && runs <= 100 else { throw ValidationError("--runs must be 1...100") }
    }

    func run() throws {
        // This machine is noisy: each run measures every algorithm and then the C limit,
        // so both see the same conditions, and medians are reported.
        var samples: [DMAPoolAlgorithm: [Result]] = [:]
        var limitSamples: [String: [[String: Any]]] = [:]
        for _ in 0..<runs {
            for algorithm in self.algorithm.algorithms { samples[algorithm, default: []].append(try measure(algorithm)) }
            if let limit {
                for shape in ["stack", "legacy"] {
                    if let line = try runLimit(limit, [String(count), shape, String(size)]).first {
                        limitSamples[shape, default: []].append(line)
                    }
                }
            }
        }
        let results = self.algorithm.algorithms.map { median(samples[$0]!) }
        var limits: [String: [String: Any]] = [:]
        for (shape, lines) in limitSamples {
            var line = lines[0]
            for key in ["alloc_ms", "free_ms"] { line[key] = medianOf(lines.compactMap { $0[key] as? Double }) }
            limits[shape] = line
        }
        if json {
            for result in results {
                print(jsonLine([
                    ("algorithm", result.algorithm.rawValue), ("count", count), ("size", size),
                    ("alloc_ms", result.allocMs), ("free_ms", result.freeMs),
                    ("pages", result.pages), ("blocks", result.blocks),
                ]))
            }
            for shape in ["stack", "legacy"] {
                if let line = limits[shape] { print(jsonLine(line.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })) }
            }
        } else {
            printTable(results, limits)
        }
    }

    func median(_ results: [Result]) -> Result {
        Result(
            algorithm: results[0].algorithm, allocMs: medianOf(results.map(\.allocMs)),
            freeMs: medianOf(results.map(\.freeMs)), pages: results[0].pages, blocks: results[0].blocks)
    }

    /// One pass of the loop on a fresh machine; only the pool work is timed.
    func measure(_ algorithm: DMAPoolAlgorithm) throws -> Result {
        let device = try benchDevice("0000:85:00.0")
        let cpus = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: count)
        let dmas = UnsafeMutablePointer<DMAAddr>.allocate(capacity: count)
        defer {
            cpus.deallocate()
            dmas.deallocate()
        }
        let start = ContinuousClock.now
        let pool = try DMAPool(name: "chain pool", device: device, size: size, align: 16, algorithm: algorithm)
        for i in 0..<count {
            guard let block = pool.alloc() else { throw ValidationError("dma_pool_alloc failed at block \(i)") }
            cpus[i] = block.cpu
            dmas[i] = block.dma
        }
        let allocMs = milliseconds(since: start)
        let (_, blocks, pages) = pool.counters
        let freeStart = ContinuousClock.now
        for i in 0..<count { pool.free(cpus[i], dma: dmas[i]) }
        pool.destroy()
        let freeMs = milliseconds(since: freeStart)
        return Result(algorithm: algorithm, allocMs: allocMs, freeMs: freeMs, pages: pages, blocks: blocks)
    }

    func printTable(_ results: [Result], _ limits: [String: [String: Any]]) {
        print("mpt3sas chain pool: \(count) x \(size) B; create+alloc, then free in allocation order + destroy")
        print("(medians of \(runs) runs\(limit == nil ? "" : ", each beside a run of the C limit"))")
        print("")
        print(padded("algorithm", 10) + padded("create+alloc", 14) + padded("free+destroy", 14)
            + padded("pages", 8) + padded("blocks", 9) + padded("seed alloc/free", 17) + "C limit alloc/free (ratio)")
        for result in results {
            // The seed measured the pre-6.4 pool and Tony's series, on its own machine.
            let seed =
                switch result.algorithm {
                case .legacy: "350 / 8901 ms"
                case .rbtree: "18 / 19 ms"
                case .stack: "-"
                }
            var limitText = "-"
            let shape = result.algorithm == .legacy ? "legacy" : "stack"
            if let line = limits[shape], let alloc = line["alloc_ms"] as? Double, let free = line["free_ms"] as? Double {
                limitText = "c-\(shape) \(fixed(alloc)) / \(fixed(free)) ms "
                    + "(\(fixed(result.allocMs / alloc, 2))x / \(fixed(result.freeMs / free, 2))x)"
            }
            print(padded(result.algorithm.rawValue, 10) + padded(fixed(result.allocMs) + " ms", 14)
                + padded(fixed(result.freeMs) + " ms", 14) + padded(String(result.pages), 8)
                + padded(String(result.blocks), 9) + padded(seed, 17) + limitText)
        }
        if let stack = results.first(where: { $0.algorithm == .stack }),
            let legacy = results.first(where: { $0.algorithm == .legacy })
        {
            print("")
            print("legacy free+destroy is \(fixed(legacy.freeMs / stack.freeMs, 0))x stack's (seed: 8901 / 19 = 468x)")
        }
    }
}
