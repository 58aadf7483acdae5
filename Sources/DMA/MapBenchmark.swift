// kernel/dma/map_benchmark.c: threads that each map and unmap a buffer in a loop for a
// number of seconds, timing both calls, with an optional delay standing in for the
// transfer. The device's streaming mask is set to `bits` for the run (dma_set_mask(),
// which may refuse it) and restored after. The statistics are the kernel's integer ones:
// each call's time truncated to 100 ns units, sums and sums of squares of those, the
// averages and int_sqrt64() of the variances divided as div64_u64() does.
import Lib
import Locking
import PhysicalMemory
import SWIOTLB

public struct MapBenchmark: Sendable {
    /// struct map_benchmark's inputs, as the ioctl takes them (unchecked until `run`).
    public struct Parameters: Sendable, Equatable {
        public var threads: UInt32 = 1
        public var seconds: UInt32 = 20
        /// NUMA_NO_NODE (-1) or 0, the emulated machine's one node.
        public var node: Int32 = -1
        public var bits: UInt32 = 32
        /// DMA_MAP_BIDIRECTIONAL 0, DMA_MAP_TO_DEVICE 1, DMA_MAP_FROM_DEVICE 2.
        public var dir: UInt32 = 0
        public var delayNs: UInt32 = 0
        /// Pages per map (single mode) or scatterlist entries of a page each (sg mode).
        public var granule: UInt32 = 1
        /// DMA_MAP_BENCH_SINGLE_MODE 0 (dma_map_single) or DMA_MAP_BENCH_SG_MODE 1
        /// (dma_map_sg), the late-2025 struct's map_mode.
        public var mode: UInt8 = 0

        public init() {}

        public static let maxThreads: UInt32 = 1024
        public static let maxSeconds: UInt32 = 300
        public static let maxDelayNs: UInt32 = 10_000_000

        /// The ioctl's checks in its order: the message it pr_err()s for the first that
        /// fails (the ioctl then returns -EINVAL), nil when all pass. The mask is checked
        /// by dma_set_mask() when the run starts.
        public var refusal: String? {
            if mode > 1 { return "invalid map mode" }
            if threads == 0 || threads > Self.maxThreads { return "invalid thread number" }
            if seconds == 0 || seconds > Self.maxSeconds { return "invalid duration seconds" }
            if delayNs > Self.maxDelayNs { return "invalid transmission delay" }
            if node != -1 && node != 0 { return "invalid numa node" }
            if granule < 1 || granule > 1024 { return "invalid granule size" }
            if dir > 2 { return "invalid DMA direction" }
            return nil
        }

        /// The dma_data_direction the tool's number stands for (the same numbers).
        public var direction: DMADirection {
            switch dir {
            case 1: .toDevice
            case 2: .fromDevice
            default: .bidirectional
            }
        }

        /// The tool's name for the direction.
        public var directionName: String {
            switch dir {
            case 1: "TO_DEVICE"
            case 2: "FROM_DEVICE"
            default: "BIDIRECTIONAL"
            }
        }
    }

    public enum Failure: Error, Equatable {
        /// -EINVAL, after the kernel's message.
        case invalid
        /// -ENOMEM: no buffer, or a map failed ("dma_map_single failed on ...").
        case noMemory
    }

    public struct Result: Sendable {
        public var loops: UInt64 = 0
        public var sumMap100ns: UInt64 = 0, sumUnmap100ns: UInt64 = 0
        public var sumSquaresMap: UInt64 = 0, sumSquaresUnmap: UInt64 = 0
        /// The same in nanoseconds, untruncated, for dmaemu-bench's finer figures.
        public var mapNs = 0.0, unmapNs = 0.0
        /// Whether the buffers went through swiotlb.
        public var bounced = false
        var failed = false

        mutating func add(mapNs map: UInt64, unmapNs unmap: UInt64) {
            loops += 1
            let map100 = map / 100, unmap100 = unmap / 100
            sumMap100ns &+= map100
            sumUnmap100ns &+= unmap100
            sumSquaresMap &+= map100 &* map100
            sumSquaresUnmap &+= unmap100 &* unmap100
            mapNs += Double(map)
            unmapNs += Double(unmap)
        }

        mutating func merge(_ other: Result) {
            loops += other.loops
            sumMap100ns &+= other.sumMap100ns
            sumUnmap100ns &+= other.sumUnmap100ns
            sumSquaresMap &+= other.sumSquaresMap
            sumSquaresUnmap &+= other.sumSquaresUnmap
            mapNs += other.mapNs
            unmapNs += other.unmapNs
            failed = failed || other.failed
        }

        /// avg_map_100ns, map_stddev, avg_unmap_100ns, unmap_stddev as the ioctl returns
        /// them; nil with no loop (the kernel then leaves the caller's values).
        public var kernelFigures: (avgMap: UInt64, mapStddev: UInt64, avgUnmap: UInt64, unmapStddev: UInt64)? {
            guard loops > 0 else { return nil }
            let avgMap = sumMap100ns / loops, avgUnmap = sumUnmap100ns / loops
            return (avgMap, intSqrt(sumSquaresMap / loops &- avgMap &* avgMap),
                    avgUnmap, intSqrt(sumSquaresUnmap / loops &- avgUnmap &* avgUnmap))
        }

        public var avgMapNs: Double { mapNs / Double(max(loops, 1)) }
        public var avgUnmapNs: Double { unmapNs / Double(max(loops, 1)) }
        public var mapStddevNs: Double { Double(kernelFigures?.mapStddev ?? 0) * 100 }
        public var unmapStddevNs: Double { Double(kernelFigures?.unmapStddev ?? 0) * 100 }

        /// The selftest's three lines: its %.1f of the 100 ns figures divided by 10.
        public func report(_ parameters: Parameters) -> String {
            func us(_ units: UInt64) -> String { "\(units / 10).\(units % 10)" }
            let figures = kernelFigures ?? (0, 0, 0, 0)
            return "dma mapping benchmark: threads:\(parameters.threads) seconds:\(parameters.seconds) "
                + "node:\(parameters.node) dir:\(parameters.directionName) granule: \(parameters.granule)\n"
                + "average map latency(us):\(us(figures.avgMap)) standard deviation:\(us(figures.mapStddev))\n"
                + "average unmap latency(us):\(us(figures.avgUnmap)) standard deviation:\(us(figures.unmapStddev))\n"
        }
    }

    public let device: Device
    public init(device: Device) { self.device = device }

    private func prErr(_ text: String) { device.ram.log.printk(.err, "dma_map_benchmark: \(text)") }

    /// Runs the benchmark as the ioctl does: the checks, dma_set_mask(), the threads.
    public func run(_ parameters: Parameters) throws(Failure) -> Result {
        if let refusal = parameters.refusal {
            prErr(refusal)
            throw .invalid
        }
        let savedMask = device.dmaMask
        guard parameters.bits <= 64, device.setMask(dmaBitMask(Int(parameters.bits))) else {
            prErr("failed to set dma_mask on device \(device.name)")
            throw .invalid
        }
        defer { device.dmaMask = savedMask }
        let threads = Int(parameters.threads), granule = Int(parameters.granule)
        // Single mode: one buffer of `granule` pages (alloc_pages_exact); sg mode: `granule`
        // pages of their own (__get_free_page), one scatterlist entry each.
        let scatter = parameters.mode == 1
        var order = 0
        while !scatter && 1 << order < granule { order += 1 }
        let buffersPerThread = scatter ? granule : 1
        var buffers: [PhysAddr] = []
        defer { for buffer in buffers { device.ram.freePages(buffer, order: order) } }
        for _ in 0..<threads * buffersPerThread {
            guard let phys = device.ram.allocPages(order: order) else { throw .noMemory }
            buffers.append(phys)
        }
        let results = PthreadMutex(Result())
        let deadline = monotonicNs() + UInt64(parameters.seconds) * 1_000_000_000
        let direction = parameters.direction
        let delay = Int(parameters.delayNs)
        let device = self.device
        let frozenBuffers = buffers
        let size = scatter ? PhysicalMemory.pageSize : granule * PhysicalMemory.pageSize
        runThreads(threads) { thread in
            let mine = frozenBuffers[thread * buffersPerThread..<(thread + 1) * buffersPerThread]
            var list = mine.map { ScatterEntry(phys: $0, length: size) }
            var result = Result()
            while monotonicNs() < deadline {
                if direction != .fromDevice {
                    for buffer in mine { device.ram.virt(buffer).initializeMemory(as: UInt8.self, repeating: 0x66, count: size) }
                }
                let t0 = monotonicNs()
                var dma: DMAAddr = 0
                if scatter {
                    guard list.withUnsafeMutableBufferPointer({ device.mapSG($0, direction) }) > 0 else {
                        device.ram.log.printk(.err, "dma_map_benchmark: dma_map_sg failed on \(device.name)")
                        result.failed = true
                        break
                    }
                } else {
                    guard let mapped = device.mapSingle(mine.first!, size: size, direction) else {
                        device.ram.log.printk(.err, "dma_map_benchmark: dma_map_single failed on \(device.name)")
                        result.failed = true
                        break
                    }
                    dma = mapped
                }
                let t1 = monotonicNs()
                ndelay(delay)
                let t2 = monotonicNs()
                if scatter {
                    list.withUnsafeMutableBufferPointer { device.unmapSG($0, direction) }
                } else {
                    device.unmapSingle(dma, size: size, direction)
                }
                result.add(mapNs: t1 - t0, unmapNs: monotonicNs() - t2)
            }
            results.withLock { $0.merge(result) }
        }
        var total = results.withLock { $0 }
        if total.failed { throw .noMemory }
        total.bounced = device.wouldBounce(buffers[0], size: size)
        return total
    }
}
