// kernel/dma/map_benchmark.c: threads that each map and unmap one buffer in a loop for a
// number of seconds, timing both calls, with an optional delay standing in for the
// transfer. The device's streaming mask is set to `bits` for the run and restored after.
import Lib
import Locking
import PhysicalMemory
import SWIOTLB

public struct MapBenchmark: Sendable {
    /// struct map_benchmark's inputs, with the kernel's limits.
    public struct Parameters: Sendable, Equatable {
        public var threads = 1
        public var seconds = 20
        public var bits = 32
        public var direction = DMADirection.bidirectional
        public var delayNs = 0
        public var granule = 1

        public init() {}

        /// The ioctl's checks: threads 1...1024, seconds 1...300, bits 20...64, a real
        /// direction, delay up to 10 ms, granule 1...1024 pages.
        public var isValid: Bool {
            (1...1024).contains(threads) && (1...300).contains(seconds) && (20...64).contains(bits)
                && direction != .none && (0...10_000_000).contains(delayNs) && (1...1024).contains(granule)
        }

        /// The tool's name for the direction.
        public var directionName: String {
            switch direction {
            case .toDevice: "TO_DEVICE"
            case .fromDevice: "FROM_DEVICE"
            default: "BIDIRECTIONAL"
            }
        }
    }

    public struct Result: Sendable {
        public var loops = 0
        public var mapSum = 0.0, mapSquares = 0.0, unmapSum = 0.0, unmapSquares = 0.0
        /// Whether the buffers went through swiotlb.
        public var bounced = false
        /// Set when a map failed ("dma_map_single failed on ...").
        public var failed = false

        mutating func add(map: Double, unmap: Double) {
            loops += 1
            mapSum += map
            mapSquares += map * map
            unmapSum += unmap
            unmapSquares += unmap * unmap
        }

        mutating func merge(_ other: Result) {
            loops += other.loops
            mapSum += other.mapSum
            mapSquares += other.mapSquares
            unmapSum += other.unmapSum
            unmapSquares += other.unmapSquares
            failed = failed || other.failed
        }

        public var avgMapNs: Double { mapSum / Double(max(loops, 1)) }
        public var avgUnmapNs: Double { unmapSum / Double(max(loops, 1)) }
        public var mapStddevNs: Double { (max(mapSquares / Double(max(loops, 1)) - avgMapNs * avgMapNs, 0)).squareRoot() }
        public var unmapStddevNs: Double { (max(unmapSquares / Double(max(loops, 1)) - avgUnmapNs * avgUnmapNs, 0)).squareRoot() }

        /// The tool's three lines, values in us with one decimal.
        public func report(_ parameters: Parameters) -> String {
            func us(_ ns: Double) -> String {
                let tenths = Int((ns / 100).rounded())
                return "\(tenths / 10).\(tenths % 10)"
            }
            return "dma mapping benchmark: threads:\(parameters.threads) seconds:\(parameters.seconds) node:-1 "
                + "dir:\(parameters.directionName) granule: \(parameters.granule)\n"
                + "average map latency(us):\(us(avgMapNs)) standard deviation:\(us(mapStddevNs))\n"
                + "average unmap latency(us):\(us(avgUnmapNs)) standard deviation:\(us(unmapStddevNs))\n"
        }
    }

    public let device: Device
    public init(device: Device) { self.device = device }

    /// Runs the benchmark; nil when no buffer could be allocated.
    public func run(_ parameters: Parameters) -> Result? {
        var order = 0
        while 1 << order < parameters.granule { order += 1 }
        let size = parameters.granule * PhysicalMemory.pageSize
        var buffers: [PhysAddr] = []
        for _ in 0..<parameters.threads {
            guard let phys = device.ram.allocPages(order: order) else {
                for buffer in buffers { device.ram.freePages(buffer, order: order) }
                return nil
            }
            buffers.append(phys)
        }
        defer { for buffer in buffers { device.ram.freePages(buffer, order: order) } }
        let savedMask = device.dmaMask
        device.dmaMask = dmaBitMask(parameters.bits)
        defer { device.dmaMask = savedMask }
        let results = PthreadMutex(Result())
        let deadline = monotonicNs() + UInt64(parameters.seconds) * 1_000_000_000
        let direction = parameters.direction
        let delay = parameters.delayNs
        let device = self.device
        let frozenBuffers = buffers
        runThreads(parameters.threads) { thread in
            let buffer = frozenBuffers[thread]
            var result = Result()
            while monotonicNs() < deadline {
                if direction != .fromDevice {
                    device.ram.virt(buffer).initializeMemory(as: UInt8.self, repeating: 0x66, count: size)
                }
                let t0 = monotonicNs()
                guard let dma = device.mapSingle(buffer, size: size, direction) else {
                    device.err("dma_map_single failed on \(device.name)")
                    result.failed = true
                    break
                }
                let t1 = monotonicNs()
                ndelay(delay)
                let t2 = monotonicNs()
                device.unmapSingle(dma, size: size, direction)
                result.add(map: Double(t1 - t0), unmap: Double(monotonicNs() - t2))
            }
            results.withLock { $0.merge(result) }
        }
        var total = results.withLock { $0 }
        total.bounced = device.wouldBounce(buffers[0], size: size)
        return total
    }
}
