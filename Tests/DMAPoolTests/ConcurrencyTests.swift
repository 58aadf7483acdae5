import DMA
import DMAPool
import Dispatch
import Locking
import PhysicalMemory
import Testing

@Suite struct ConcurrencyTests {
    @Test(arguments: DMAPoolAlgorithm.allCases)
    func threadsAllocAndFreeWithExactCounters(_ algorithm: DMAPoolAlgorithm) throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "shared", device: device, size: 96, algorithm: algorithm, debug: true)
        let threads = 4
        let perThread = 3000
        let held = PthreadMutex<[UInt64]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            var mine: [(cpu: UnsafeMutableRawPointer, dma: UInt64)] = []
            for i in 0..<perThread {
                guard let block = pool.alloc() else { continue }
                // Each block is ours alone: write a pattern and check nobody else does.
                block.cpu.storeBytes(of: block.dma, as: UInt64.self)
                mine.append(block)
                if i % 2 == 1 {
                    let old = mine.removeFirst()
                    if old.cpu.load(as: UInt64.self) == old.dma { pool.free(old.cpu, dma: old.dma) }
                }
            }
            held.withLock { $0 += mine.map(\.dma) }
        }
        // Each thread freed one block per two allocations: 1500 each remain.
        let remaining = held.withLock { $0 }
        #expect(remaining.count == threads * perThread / 2)
        #expect(Set(remaining).count == remaining.count)
        #expect(pool.counters.active == threads * perThread / 2)
        #expect(device.ram.log.texts().isEmpty)
    }
}
