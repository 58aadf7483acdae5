// mm/dmapool_test.c, the kernel's dmapool timing module (v6.4): for each size/align/
// boundary of its table, 100 iterations of "allocate every block, then free them all in
// the same order", timed as one total in microseconds, printed in the module's format.
import ArgumentParser
import DMA
import DMAPool
import Foundation

struct DMAPoolTestBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmapool-test",
        abstract: "The kernel's dmapool_test module table, 100 iterations per entry."
    )

    @Option(help: "stack | rbtree | legacy | all") var algorithm: AlgorithmChoice = .all
    @Option(help: "Iterations per entry (the module's NR_TESTS).") var iterations = 100
    @Flag(help: "One JSON object per result line.") var json = false

    /// The module's parameter table: size, align, boundary.
    static let table: [(size: Int, align: Int, boundary: Int)] = [
        (16, 16, 0), (64, 64, 0), (256, 256, 0), (1024, 1024, 0), (4096, 4096, 0), (68, 32, 4096),
    ]

    /// Keith Busch's figures for the 6.4 rewrite, in us: before (legacy) and after (stack).
    static let seed: [Int: (before: Int, after: Int)] = [
        16: (57282, 24997), 64: (172_562, 26584), 256: (789_247, 33542), 1024: (371_823, 9022), 4096: (362_237, 6045),
    ]

    func validate() throws {
        guard iterations > 0 && iterations <= 100_000 else { throw ValidationError("--iterations must be 1...100000") }
    }

    func run() throws {
        var times: [DMAPoolAlgorithm: [Int: Int]] = [:]
        for algorithm in self.algorithm.algorithms {
            if !json { print("# \(algorithm)") }
            for entry in Self.table {
                // (PAGE_SIZE / size) * 512 blocks, clamped to [1024, 8192].
                let blocks = min(8192, max(1024, (4096 / entry.size) * 512))
                let timeUs = try measure(algorithm, entry, blocks: blocks)
                times[algorithm, default: [:]][entry.size] = timeUs
                if json {
                    print(jsonLine([
                        ("algorithm", algorithm.rawValue), ("size", entry.size), ("align", entry.align),
                        ("boundary", entry.boundary), ("blocks", blocks), ("time_us", timeUs),
                    ]))
                } else {
                    print("dmapool test: size:\(padded(String(entry.size), 4)) align:\(padded(String(entry.align), 4)) "
                        + "blocks:\(padded(String(blocks), 4)) time:\(timeUs)")
                }
            }
        }
        if !json { printSeed(times) }
    }

    func measure(_ algorithm: DMAPoolAlgorithm, _ entry: (size: Int, align: Int, boundary: Int), blocks: Int) throws -> Int {
        let device = try benchDevice("dmapool-test")
        let pool = try DMAPool(
            name: "test pool", device: device, size: entry.size, align: entry.align, boundary: entry.boundary,
            algorithm: algorithm)
        let cpus = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: blocks)
        let dmas = UnsafeMutablePointer<DMAAddr>.allocate(capacity: blocks)
        defer {
            cpus.deallocate()
            dmas.deallocate()
            pool.destroy()
        }
        let start = ContinuousClock.now
        for _ in 0..<iterations {
            for i in 0..<blocks {
                guard let block = pool.alloc() else { throw ValidationError("dma_pool_alloc failed") }
                cpus[i] = block.cpu
                dmas[i] = block.dma
            }
            for i in 0..<blocks { pool.free(cpus[i], dma: dmas[i]) }
        }
        return Int(milliseconds(since: start) * 1000)
    }

    func printSeed(_ times: [DMAPoolAlgorithm: [Int: Int]]) {
        print("")
        print("seed (Keith Busch, \"dmapool: link blocks across pages\"), us: before (<= v6.3) -> after (v6.4)")
        print(padded("size", 6) + padded("seed legacy", 13) + padded("seed stack", 12)
            + DMAPoolAlgorithm.allCases.filter { times[$0] != nil }.map { padded("ours " + $0.rawValue, 14) }.joined())
        for entry in Self.table {
            let seed = Self.seed[entry.size]
            var line = padded(String(entry.size), 6) + padded(seed.map { String($0.before) } ?? "-", 13)
                + padded(seed.map { String($0.after) } ?? "-", 12)
            for algorithm in DMAPoolAlgorithm.allCases {
                if let time = times[algorithm]?[entry.size] { line += padded(String(time), 14) }
            }
            print(line)
        }
    }
}
