// The engines' hot paths one operation at a time: dma_pool_alloc + dma_pool_free in each
// generation of mm/dmapool.c, dma_map_single + dma_unmap_single direct and bounced
// through swiotlb, mempool_alloc + mempool_free and the 256-page bulk allocation, and the
// buddy allocator's alloc_pages + __free_pages. Each setup warms the path first (the
// pool has its pages, swiotlb its pool), so mallocCountTotal is the steady state's: 0 on
// every one of them, which Thresholds/ holds and `benchmark thresholds check` verifies.
// The `.traced` variants run with every dma, swiotlb and dmapool event enabled: an event
// is words copied into the CPU's ring, so they too allocate nothing.
// Names have no spaces: the harness writes threshold files with spaces turned to '_'
// but looks them up by the raw name.
import Benchmark
import DMA
import DMAPool
import Mempool
import PhysicalMemory
import SWIOTLB
import Trace

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000
    )
    dmaPoolBenchmarks()
    streamingBenchmarks()
    mempoolBenchmarks()
    pageAllocatorBenchmarks()
}

/// A 64-bit device on an 8 GiB machine (pages above 4 GiB exist, for the bounce cases),
/// with every event of a 6.12 machine enabled when `traced`.
func benchDevice(swiotlb: Bool = false, traced: Bool = false) throws -> Device {
    let ram = try PhysicalMemory()
    let mem = swiotlb ? IOTLBMem(ram: ram, config: SWIOTLBConfig()) : nil
    let tracer = traced ? Tracer(kernel: .v6_12) : nil
    tracer?.enable(tracer!.events, true)
    let device = Device(name: "0000:01:00.0", ram: ram, swiotlb: mem, tracer: tracer)
    device.dmaMask = dmaBitMask(64)
    device.coherentDMAMask = dmaBitMask(64)
    return device
}

/// A pool holding 1024 blocks of 128 B (32 pages), as a driver's chain pool would between
/// I/Os: the legacy free walks its page list, so its cost depends on the pages held.
final class BusyPool {
    let pool: DMAPool
    init(_ algorithm: DMAPoolAlgorithm, traced: Bool = false) throws {
        pool = try DMAPool(name: "bench", device: try benchDevice(traced: traced), size: 128, align: 16, algorithm: algorithm)
        for _ in 0..<1024 { _ = pool.alloc() }
        // One more page's worth, freed again: the measured alloc never adds a page.
        var spare: [(cpu: UnsafeMutableRawPointer, dma: DMAAddr)] = []
        for _ in 0..<32 { spare.append(pool.alloc()!) }
        for block in spare { pool.free(block.cpu, dma: block.dma) }
    }
}

func dmaPoolBenchmarks() {
    for (algorithm, traced) in [(DMAPoolAlgorithm.stack, false), (.rbtree, false), (.legacy, false), (.stack, true)] {
        Benchmark("dma_pool_alloc+free.\(algorithm.rawValue).128B.1024-held\(traced ? ".traced" : "")") { benchmark, held in
            let pool = held.pool
            for _ in benchmark.scaledIterations {
                let block = pool.alloc()!
                pool.free(block.cpu, dma: block.dma)
            }
        } setup: {
            try BusyPool(algorithm, traced: traced)
        }
    }
}

/// One buffer of `pages` pages, mapped with a 32-bit mask (bounced: the buffer is above
/// 4 GiB) or a 64-bit one (direct).
final class MappedBuffer {
    let device: Device
    let phys: PhysAddr
    let size: Int
    init(pages: Int, bounced: Bool, traced: Bool = false) throws {
        device = try benchDevice(swiotlb: true, traced: traced)
        var order = 0
        while 1 << order < pages { order += 1 }
        phys = device.ram.allocPages(order: order)!
        size = pages * PhysicalMemory.pageSize
        device.dmaMask = dmaBitMask(bounced ? 32 : 64)
        precondition(device.wouldBounce(phys, size: size) == bounced)
        // The first bounce creates swiotlb's per-area state; steady state starts after.
        device.unmapSingle(device.mapSingle(phys, size: size, .toDevice)!, size: size, .toDevice)
    }
}

func streamingBenchmarks() {
    for (pages, bounced, traced) in [(1, false, false), (16, false, false), (1, true, false), (16, true, false), (1, true, true)] {
        let name = "dma_map_single+unmap.\(pages * 4)KiB.TO_DEVICE.\(bounced ? "bounced" : "direct")\(traced ? ".traced" : "")"
        // A bounced 64 KiB map copies 64 KiB: a thousand of them per iteration is too coarse.
        let configuration = Benchmark.Configuration(scalingFactor: bounced && pages > 1 ? .one : .kilo)
        Benchmark(name, configuration: configuration) { benchmark, buffer in
            let (device, phys, size) = (buffer.device, buffer.phys, buffer.size)
            for _ in benchmark.scaledIterations {
                let dma = device.mapSingle(phys, size: size, .toDevice)!
                device.unmapSingle(dma, size: size, .toDevice)
            }
        } setup: {
            try MappedBuffer(pages: pages, bounced: bounced, traced: traced)
        }
    }
}

/// A page mempool (mempool_create_page_pool(16, 0)) and a bulk one with a 256-page reserve,
/// each on its own 1 GiB machine; `pages` is the bulk call's array.
final class Pools {
    let single: Mempool
    let bulk: Mempool
    let pages = UnsafeMutableBufferPointer<PhysAddr>.allocate(capacity: 256)
    init() throws {
        let ram = try PhysicalMemory(size: 1 << 30)
        single = try Mempool.pagePool(ram: ram, minNr: 16, order: 0)
        bulk = try Mempool.pagesBulkPool(ram: try PhysicalMemory(size: 1 << 30), minNr: 256)
    }
    deinit { pages.deallocate() }
}

func mempoolBenchmarks() {
    Benchmark("mempool_alloc+free.page-pool") { benchmark, pools in
        let pool = pools.single
        for _ in benchmark.scaledIterations {
            pool.free(pool.alloc(.noIO)!)
        }
    } setup: {
        try Pools()
    }
    Benchmark("mempool_alloc_pages_bulk_array.256+mempool_free.256", configuration: .init(scalingFactor: .one)) {
        benchmark, pools in
        let (pool, pages) = (pools.bulk, pools.pages)
        for _ in benchmark.scaledIterations {
            pages.update(repeating: 0)  // the array's empty slots are the ones to fill
            precondition(pool.allocPagesBulk(.noIO, array: pages))
            for page in pages { pool.free(page) }
        }
    } setup: {
        try Pools()
    }
}

func pageAllocatorBenchmarks() {
    for order in [0, 4] {
        Benchmark("alloc_pages+__free_pages.order\(order)") { benchmark, ram in
            for _ in benchmark.scaledIterations {
                ram.freePages(ram.allocPages(order: order)!, order: order)
            }
        } setup: {
            try PhysicalMemory(size: 1 << 30)
        }
    }
}
