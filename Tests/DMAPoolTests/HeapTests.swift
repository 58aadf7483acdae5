import DMA
import DMAPool
import CHeapStats
import PhysicalMemory
import Testing

/// The stack engine's alloc and free once the pool has pages: no heap allocation, counted
/// on this thread by the test binary's interposed allocator across 10000 of each.
@Suite(.enabled(if: heap_stats_available() != 0, "a sanitizer owns malloc: nothing is counted"))
struct HeapTests {
    @Test func stackAllocAndFreeDoNotTouchTheHeap() throws {
        let pool = try DMAPool(name: "hot", device: try testDevice(), size: 128)
        let cpus = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 1000)
        let dmas = UnsafeMutablePointer<UInt64>.allocate(capacity: 1000)
        defer {
            cpus.deallocate()
            dmas.deallocate()
        }
        func cycle() {
            for i in 0..<1000 {
                let block = pool.alloc()!
                cpus[i] = block.cpu
                dmas[i] = block.dma
            }
            for i in 0..<1000 { pool.free(cpus[i], dma: dmas[i]) }
        }
        cycle()  // adds the pages: 1000 / 32 = 32 of them
        let before = thread_heap_allocations()
        for _ in 0..<10 { cycle() }
        #expect(thread_heap_allocations() == before)
        #expect(pool.counters == (0, 32 * 32, 32))
    }

    @Test func theCounterSeesAnAllocation() {
        // The check above could not fail if the interposer counted nothing.
        let before = thread_heap_allocations()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        buffer.deallocate()
        #expect(thread_heap_allocations() == before + 1)
    }
}
