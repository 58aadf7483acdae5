// The kernel's dma_map_benchmark (kernel/dma/map_benchmark.c and its selftest tool): each
// thread maps and unmaps one buffer of `granule` pages in a loop, timing each call, with
// an optional delay standing in for the transfer. With -b 32 the buffers, which come from
// above 4 GiB, all bounce through swiotlb; --force bounces everything.
import ArgumentParser
import Dispatch
import DMA
import Foundation
import Lib
import PhysicalMemory
import SWIOTLB
import Synchronization

struct MapBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "dma_map_benchmark: map/unmap latency per thread, bounced through swiotlb when needed."
    )

    @Option(name: .customShort("t"), help: "Threads (1...1024).") var threads = 1
    @Option(name: .customShort("s"), help: "Seconds (1...300).") var seconds = 20
    @Option(name: .customShort("b"), help: "DMA mask bits (20...64).") var bits = 32
    @Option(name: .customShort("d"), help: "0 = BIDIRECTIONAL, 1 = TO_DEVICE, 2 = FROM_DEVICE.") var dir = 0
    @Option(name: .customShort("x"), help: "Transfer delay in ns (0...10000000).") var delay = 0
    @Option(name: .customShort("g"), help: "Granule: pages per buffer (1...1024).") var granule = 1
    @Flag(help: "swiotlb=force: every map bounces.") var force = false
    @Flag(help: "As a kernel without CONFIG_DEBUG_FS: no shared used/hiwater counters.") var noDebugfs = false
    @Option(help: "A compiled tools/limits/memcpy_limit.c to run beside.") var limit: String?
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...1024).contains(threads) else { throw ValidationError("invalid thread number") }
        guard (1...300).contains(seconds) else { throw ValidationError("invalid duration seconds") }
        guard (20...64).contains(bits) else { throw ValidationError("invalid dma mask bit") }
        guard (0...2).contains(dir) else { throw ValidationError("invalid dma direction") }
        guard (0...10_000_000).contains(delay) else { throw ValidationError("invalid transmit delay") }
        guard (1...1024).contains(granule) else { throw ValidationError("invalid granule size") }
    }

    var direction: DMADirection { [DMADirection.bidirectional, .toDevice, .fromDevice][dir] }
    var directionName: String { ["BIDIRECTIONAL", "TO_DEVICE", "FROM_DEVICE"][dir] }

    var parameters: MapBenchmark.Parameters {
        var parameters = MapBenchmark.Parameters()
        parameters.threads = UInt32(threads)
        parameters.seconds = UInt32(seconds)
        parameters.bits = UInt32(bits)
        parameters.dir = UInt32(dir)
        parameters.delayNs = UInt32(delay)
        parameters.granule = UInt32(granule)
        return parameters
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(result.toolOutput, terminator: "")
        printLimit(result)
    }

    func measure() throws -> MapResult {
        Progress.shared.begin("map")
        let ram = try PhysicalMemory()
        var config = SWIOTLBConfig()
        config.force = force
        config.debugfsCounters = !noDebugfs
        guard let mem = IOTLBMem(ram: ram, config: config) else { throw ValidationError("no swiotlb") }
        let device = Device(name: "dma_map_benchmark", ram: ram, swiotlb: mem)
        device.dmaMask = dmaBitMask(64)  // MapBenchmark sets -b for the run
        // The kernel's threads run for `seconds` with no way to report progress: the bar
        // moves by the clock meanwhile.
        let ticker = Ticker(seconds: seconds)
        let stats = try? MapBenchmark(device: device).run(parameters)
        ticker.stop()
        guard let stats else { throw ValidationError("the run failed: \(device.ram.log.texts().last ?? "")") }
        var result = MapResult(
            threads: threads, seconds: seconds, bits: bits, dir: directionName, granule: granule, force: force,
            debugfs: !noDebugfs, loops: Int(stats.loops), avgMapNs: stats.avgMapNs, mapStddevNs: stats.mapStddevNs,
            avgUnmapNs: stats.avgUnmapNs, unmapStddevNs: stats.unmapStddevNs, bounced: stats.bounced,
            toolOutput: stats.report(parameters))
        if let limit {
            let size = granule * PhysicalMemory.pageSize
            result.memcpy = try runLimit(limit, [], as: MemcpyRun.self).first { $0.bytes == size }
            result.loopPairNs = pairCost(device)
        }
        return result
    }

    /// Map+unmap pairs in a loop with no clock read between them, for one second on one
    /// thread: what a pair costs without the tool's per-call timing, comparable with the
    /// memcpy limit, which times a whole loop too.
    func pairCost(_ device: Device) -> Double {
        device.dmaMask = dmaBitMask(bits)
        defer { device.dmaMask = dmaBitMask(64) }
        let size = granule * PhysicalMemory.pageSize
        guard let buffer = device.ram.allocPages(order: 6) else { return .nan }
        device.ram.virt(buffer).initializeMemory(as: UInt8.self, repeating: 0x66, count: size)
        let direction = self.direction  // an @Option read is far too slow for the loop
        let start = monotonicNs()
        var pairs = 0
        while monotonicNs() - start < 1_000_000_000 {
            for _ in 0..<1000 {
                guard let dma = device.mapSingle(buffer, size: size, direction) else { return .nan }
                device.unmapSingle(dma, size: size, direction)
            }
            pairs += 1000
        }
        return Double(monotonicNs() - start) / Double(pairs)
    }

    /// With --limit: one bounce against one memcpy of the same size, measured now.
    func printLimit(_ result: MapResult) {
        guard limit != nil else { return }
        let size = granule * PhysicalMemory.pageSize
        guard let copy = result.memcpy, let pair = result.loopPairNs else {
            print("(the memcpy limit measures 4 KiB and 64 KiB granules only)")
            return
        }
        print("")
        print("memcpy of \(size / 1024) KiB (limit): \(fixed(copy.nsPerCopy)) ns, \(fixed(copy.gbPerS, 2)) GB/s")
        for (label, ns) in [("map+unmap, per-call timed", result.avgMapNs + result.avgUnmapNs), ("map+unmap, loop timed", pair)] {
            print("\(label)\(result.bounced ? " (bounced)" : ""): \(fixed(ns)) ns = \(fixed(ns / copy.nsPerCopy, 2))x the memcpy, "
                + "\(fixed(Double(size) / ns, 2)) GB/s = \(fixed(Double(size) / ns / copy.gbPerS * 100, 0))% of its bandwidth")
        }
    }
}
