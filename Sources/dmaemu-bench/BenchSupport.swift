import DMA
import DMAPool
import Lib
import Foundation
import PhysicalMemory

extension AlgorithmChoice {
    var algorithms: [DMAPoolAlgorithm] {
        switch self {
        case .all: DMAPoolAlgorithm.allCases
        case .stack: [.stack]
        case .rbtree: [.rbtree]
        case .legacy: [.legacy]
        }
    }
}

/// A fresh default machine (8 GiB) with one PCI function that has 64-bit masks, as an
/// HBA after dma_set_mask_and_coherent(DMA_BIT_MASK(64)).
func benchDevice(_ name: String) throws -> Device {
    let device = Device(name: name, ram: try PhysicalMemory())
    device.dmaMask = dmaBitMask(64)
    device.coherentDMAMask = dmaBitMask(64)
    return device
}

/// Milliseconds since `start`, from the monotonic clock.
func milliseconds(since start: ContinuousClock.Instant) -> Double {
    (ContinuousClock.now - start).seconds * 1e3
}

func fixed(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// The median (for an even count, the mean of the middle two).
func medianOf(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// The seed's chain loop: create a pool, allocate `count` blocks, free them in allocation
/// order, destroy. Only the pool work is timed. `device` defaults to a fresh machine.
func poolLoop(_ algorithm: DMAPoolAlgorithm, count: Int, size: Int, device: Device? = nil) throws -> PoolLoop {
    let device = try device ?? benchDevice("0000:85:00.0")
    let cpus = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: count)
    let dmas = UnsafeMutablePointer<DMAAddr>.allocate(capacity: count)
    defer {
        cpus.deallocate()
        dmas.deallocate()
    }
    // Fault the arrays in first: above glibc's mmap threshold they are fresh pages each
    // call, and their faults (about 4 ns per block at 10^6) are the harness's, not the pool's.
    cpus.initialize(repeating: UnsafeMutableRawPointer(bitPattern: 1)!, count: count)
    dmas.initialize(repeating: 0, count: count)
    let start = ContinuousClock.now
    let pool = try DMAPool(name: "chain pool", device: device, size: size, align: 16, algorithm: algorithm)
    for i in 0..<count {
        guard let block = pool.alloc() else { throw BenchError(description: "dma_pool_alloc failed at block \(i)") }
        cpus[i] = block.cpu
        dmas[i] = block.dma
    }
    let allocMs = milliseconds(since: start)
    let (_, blocks, pages) = pool.counters
    let freeStart = ContinuousClock.now
    for i in 0..<count { pool.free(cpus[i], dma: dmas[i]) }
    pool.destroy()
    return PoolLoop(algorithm: algorithm.rawValue, allocMs: allocMs, freeMs: milliseconds(since: freeStart), pages: pages, blocks: blocks)
}
