// How the cost of one dma_pool_alloc and one dma_pool_free grows with the number of
// blocks in the pool: the chain loop at counts from 1e3 to 1e7, half a decade apart, per
// algorithm. stack is O(1) per operation, rbtree O(log pages) on free, legacy O(pages) on
// free (a quadratic total), so legacy stops where its next point would outrun a budget.
import ArgumentParser
import DMA
import DMAPool
import Foundation

struct ScalingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling", abstract: "Time per alloc and per free against the number of blocks, per dmapool algorithm.")

    @Option(help: "stack | rbtree | legacy | all") var algorithm: AlgorithmChoice = .all
    @Option(help: "Block size in bytes.") var size = 128
    @Option(help: "Smallest block count.") var minBlocks = 1000
    @Option(help: "Largest block count.") var maxBlocks = 10_000_000
    @Option(help: "Blocks allocated per point at least: small counts repeat the loop more than 3 times (medians).") var work = 1_000_000
    @Option(help: "Seconds legacy's next point may be predicted to take before it stops.") var legacyBudget = 15.0
    @Option(help: "A compiled tools/limits/pool_limit.c, run at each count of 1e4 and above.") var limit: String?
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard size > 0 && size <= 4096 else { throw ValidationError("--size must be 1...4096") }
        guard minBlocks >= 10 && minBlocks <= maxBlocks && maxBlocks <= 50_000_000 else {
            throw ValidationError("--min-blocks and --max-blocks must satisfy 10 <= min <= max <= 50000000")
        }
        guard (1...100_000_000).contains(work) else { throw ValidationError("--work must be 1...100000000") }
        guard legacyBudget > 0 && legacyBudget <= 3600 else { throw ValidationError("--legacy-budget must be in (0, 3600]") }
    }

    /// 1, 3, 10, 30, ... times minBlocks (10^k and 10^k * sqrt(10), rounded), up to maxBlocks.
    var counts: [Int] {
        var counts: [Int] = []
        var exponent = log10(Double(minBlocks))
        while true {
            let count = Int(pow(10, exponent).rounded())
            guard count <= maxBlocks else { break }
            counts.append(count)
            exponent += 0.5
        }
        if counts.last != maxBlocks { counts.append(maxBlocks) }
        return counts
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print("scaling: chain loop of \(size) B blocks; ns per operation (alloc includes create, free includes destroy)")
        print(padded("blocks", 11) + algorithm.algorithms.map { padded($0.rawValue + " alloc/free", 22) }.joined()
            + (limit == nil ? "" : "c-stack alloc/free"))
        for count in counts {
            var line = padded(String(count), 11)
            for algorithm in algorithm.algorithms {
                let point = result.points.first { $0.algorithm == algorithm.rawValue && $0.blocks == count }
                line += padded(point.map { fixed($0.allocNsPerOp) + " / " + fixed($0.freeNsPerOp) } ?? "-", 22)
            }
            if let c = result.limits.first(where: { $0.count == count }) {
                line += fixed(c.allocMs * 1e6 / Double(count)) + " / " + fixed(c.freeMs * 1e6 / Double(count))
            }
            print(line)
        }
    }

    func measure() throws -> ScalingResult {
        Progress.shared.begin("scaling")
        // One machine for every point; an untimed loop at the largest count first faults
        // in the RAM the pools will use, so no point pays first-touch faults the others
        // do not.
        let device = try benchDevice("0000:85:00.0")
        _ = try poolLoop(.stack, count: maxBlocks, size: size, device: device)
        let counts = self.counts, algorithms = algorithm.algorithms
        var points: [ScalingResult.Point] = []
        for (a, algorithm) in algorithms.enumerated() {
            var previous: (count: Int, seconds: Double)?
            for (c, count) in counts.enumerated() {
                defer { Progress.shared.step(a * counts.count + c + 1, of: algorithms.count * counts.count) }
                if algorithm == .legacy, let previous {
                    let ratio = Double(count) / Double(previous.count)
                    if previous.seconds * ratio * ratio > legacyBudget { continue }
                }
                // Three at least: one sample of a large count is as noisy as this VM.
                let repeats = max(3, work / count)
                var loops: [PoolLoop] = []
                for _ in 0..<repeats { loops.append(try poolLoop(algorithm, count: count, size: size, device: device)) }
                let allocMs = medianOf(loops.map(\.allocMs)), freeMs = medianOf(loops.map(\.freeMs))
                previous = (count, (allocMs + freeMs) / 1000)
                points.append(.init(
                    algorithm: algorithm.rawValue, blocks: count, repeats: repeats,
                    allocNsPerOp: allocMs * 1e6 / Double(count), freeNsPerOp: freeMs * 1e6 / Double(count)))
            }
        }
        var limits: [CPoolRun] = []
        if let limit {
            for count in counts where count >= 10_000 {
                limits += try runLimit(limit, [String(count), "stack", String(size)], as: CPoolRun.self)
            }
        }
        return ScalingResult(size: size, points: points, limits: limits)
    }
}
