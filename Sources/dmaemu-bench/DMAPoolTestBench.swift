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
    @Flag(help: "The result as one line of JSON.") var json = false

    /// The module's parameter table: size, align, boundary.
    static let table: [(size: Int, align: Int, boundary: Int)] = [
        (16, 16, 0), (64, 64, 0), (256, 256, 0), (1024, 1024, 0), (4096, 4096, 0), (68, 32, 4096),
    ]

    func validate() throws {
        guard iterations > 0 && iterations <= 100_000 else { throw ValidationError("--iterations must be 1...100000") }
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        for algorithm in algorithm.algorithms {
            print("# \(algorithm)")
            for entry in result.entries where entry.algorithm == algorithm.rawValue {
                print("dmapool test: size:\(padded(String(entry.size), 4)) align:\(padded(String(entry.align), 4)) "
                    + "blocks:\(padded(String(entry.blocks), 4)) time:\(entry.timeUs)")
            }
        }
        printSeed(result)
    }

    func measure() throws -> DMAPoolTestResult {
        Progress.shared.begin("dmapool-test")
        var entries: [DMAPoolTestResult.Entry] = []
        let algorithms = algorithm.algorithms
        for (a, algorithm) in algorithms.enumerated() {
            for (e, entry) in Self.table.enumerated() {
                // (PAGE_SIZE / size) * 512 blocks, clamped to [1024, 8192].
                let blocks = min(8192, max(1024, (4096 / entry.size) * 512))
                entries.append(.init(
                    algorithm: algorithm.rawValue, size: entry.size, align: entry.align, boundary: entry.boundary,
                    blocks: blocks, timeUs: try measure(algorithm, entry, blocks: blocks)))
                Progress.shared.step(a * Self.table.count + e + 1, of: algorithms.count * Self.table.count)
            }
        }
        return DMAPoolTestResult(iterations: iterations, entries: entries)
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

    func printSeed(_ result: DMAPoolTestResult) {
        print("")
        print("seed (Keith Busch, \"dmapool: link blocks across pages\"), us: before (<= v6.3) -> after (v6.4)")
        let algorithms = algorithm.algorithms
        print(padded("size", 6) + padded("seed legacy", 13) + padded("seed stack", 12)
            + algorithms.map { padded("ours " + $0.rawValue, 14) }.joined())
        for entry in Self.table {
            let seed = Seeds.dmapoolTest[entry.size]
            var line = padded(String(entry.size), 6) + padded(seed.map { String($0.before) } ?? "-", 13)
                + padded(seed.map { String($0.after) } ?? "-", 12)
            for algorithm in algorithms {
                let time = result.entries.first { $0.algorithm == algorithm.rawValue && $0.size == entry.size }?.timeUs
                line += padded(time.map(String.init) ?? "-", 14)
            }
            print(line)
        }
    }
}
