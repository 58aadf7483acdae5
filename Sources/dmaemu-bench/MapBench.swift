// The kernel's dma_map_benchmark (kernel/dma/map_benchmark.c and its selftest tool): each
// thread maps and unmaps one buffer of `granule` pages in a loop, timing each call, with
// an optional delay standing in for the transfer. With -b 32 the buffers, which come from
// above 4 GiB, all bounce through swiotlb; --force bounces everything.
import ArgumentParser
import DMA
import Dispatch
import Foundation
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
    @Option(help: "A compiled ../shared/bench/memcpy_limit.c to run beside.") var limit: String?
    @Flag(help: "One JSON object.") var json = false

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

    struct Stats {
        var loops = 0
        var mapSum = 0.0, mapSquares = 0.0, unmapSum = 0.0, unmapSquares = 0.0

        mutating func add(map: Double, unmap: Double) {
            loops += 1
            mapSum += map
            mapSquares += map * map
            unmapSum += unmap
            unmapSquares += unmap * unmap
        }

        mutating func merge(_ other: Stats) {
            loops += other.loops
            mapSum += other.mapSum
            mapSquares += other.mapSquares
            unmapSum += other.unmapSum
            unmapSquares += other.unmapSquares
        }

        var avgMap: Double { mapSum / Double(max(loops, 1)) }
        var avgUnmap: Double { unmapSum / Double(max(loops, 1)) }
        var mapStddev: Double { (max(mapSquares / Double(max(loops, 1)) - avgMap * avgMap, 0)).squareRoot() }
        var unmapStddev: Double { (max(unmapSquares / Double(max(loops, 1)) - avgUnmap * avgUnmap, 0)).squareRoot() }
    }

    func run() throws {
        let ram = try PhysicalMemory()
        var config = SWIOTLBConfig()
        config.force = force
        config.debugfsCounters = !noDebugfs
        guard let mem = IOTLBMem(ram: ram, config: config) else { throw ValidationError("no swiotlb") }
        let device = Device(name: "dma_map_benchmark", machine: ram, swiotlb: mem)
        device.dmaMask = dmaBitMask(bits)
        let (stats, bounced) = try measure(device)
        if json {
            print(jsonLine([
                ("threads", threads), ("seconds", seconds), ("bits", bits), ("dir", directionName), ("granule", granule),
                ("loops", stats.loops), ("avg_map_ns", stats.avgMap), ("map_stddev_ns", stats.mapStddev),
                ("avg_unmap_ns", stats.avgUnmap), ("unmap_stddev_ns", stats.unmapStddev), ("bounced", bounced),
            ]))
        } else {
            print("dma mapping benchmark: threads:\(threads) seconds:\(seconds) node:-1 dir:\(directionName) granule: \(granule)")
            print("average map latency(us):\(fixed(stats.avgMap / 1000)) standard deviation:\(fixed(stats.mapStddev / 1000))")
            print("average unmap latency(us):\(fixed(stats.avgUnmap / 1000)) standard deviation:\(fixed(stats.unmapStddev / 1000))")
            printLimit(device, stats, bounced: bounced)
        }
    }

    /// Each thread: its own buffer, memset to 0x66 unless FROM_DEVICE, then map, delay,
    /// unmap until the time is up; failures end the thread as the kernel's does.
    func measure(_ device: Device) throws -> (Stats, Bool) {
        var order = 0
        while 1 << order < granule { order += 1 }
        let size = granule * PhysicalMemory.pageSize
        let buffers = try (0..<threads).map { _ in
            guard let phys = device.machine.allocPages(order: order) else { throw ValidationError("no memory for buffers") }
            return phys
        }
        let bounced = device.wouldBounce(buffers[0], size: size)
        let results = Mutex<[Stats]>([])
        let deadline = monotonicNs() + UInt64(seconds) * 1_000_000_000
        let direction = self.direction
        let delay = self.delay
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            let buffer = buffers[thread]
            var stats = Stats()
            while monotonicNs() < deadline {
                if direction != .fromDevice { device.machine.virt(buffer).initializeMemory(as: UInt8.self, repeating: 0x66, count: size) }
                let t0 = monotonicNs()
                guard let dma = device.mapSingle(buffer, size: size, direction) else {
                    device.err("dma_map_single failed on \(device.name)")
                    break
                }
                let t1 = monotonicNs()
                ndelay(delay)
                let t2 = monotonicNs()
                device.unmapSingle(dma, size: size, direction)
                let t3 = monotonicNs()
                stats.add(map: Double(t1 - t0), unmap: Double(t3 - t2))
            }
            results.withLock { $0.append(stats) }
        }
        var total = Stats()
        for stats in results.withLock({ $0 }) { total.merge(stats) }
        return (total, bounced)
    }

    /// Map+unmap pairs in a loop with no clock read between them, for one second on one
    /// thread: what a pair costs without the tool's per-call timing, comparable with the
    /// memcpy limit, which times a whole loop too.
    func pairCost(_ device: Device) -> Double {
        let size = granule * PhysicalMemory.pageSize
        guard let buffer = device.machine.allocPages(order: 6) else { return .nan }
        device.machine.virt(buffer).initializeMemory(as: UInt8.self, repeating: 0x66, count: size)
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
    func printLimit(_ device: Device, _ stats: Stats, bounced: Bool) {
        guard let limit, let lines = try? runLimit(limit, []) else { return }
        let size = granule * PhysicalMemory.pageSize
        guard let line = lines.first(where: { ($0["bytes"] as? Int) == size }),
            let copyNs = line["ns_per_copy"] as? Double, let gbPerS = line["gb_per_s"] as? Double
        else {
            print("(the memcpy limit measures 4 KiB and 64 KiB granules only)")
            return
        }
        let timed = stats.avgMap + stats.avgUnmap
        let pair = pairCost(device)
        print("")
        print("memcpy of \(size / 1024) KiB (limit): \(fixed(copyNs)) ns, \(fixed(gbPerS, 2)) GB/s")
        for (label, ns) in [("map+unmap, per-call timed", timed), ("map+unmap, loop timed", pair)] {
            print("\(label)\(bounced ? " (bounced)" : ""): \(fixed(ns)) ns = \(fixed(ns / copyNs, 2))x the memcpy, "
                + "\(fixed(Double(size) / ns, 2)) GB/s = \(fixed(Double(size) / ns / gbPerS * 100, 0))% of its bandwidth")
        }
    }
}
