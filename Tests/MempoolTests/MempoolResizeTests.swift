import Mempool
import PhysicalMemory
import Testing

@Suite struct MempoolResizeTests {
    @Test func shrinkingFreesTheSurplusAtOnce() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 6, order: 0)
        try pool.resize(2)
        #expect(pool.minimum == 2)
        #expect(pool.current == 2)
        #expect(ram.freePages == 31 - 2)
        // The survivors are the bottom of the stack.
        _ = drain(ram)
        #expect(pool.alloc(.noIO) == page(2))
        #expect(pool.alloc(.noIO) == page(1))
    }

    @Test func growingTopsTheReserveUp() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 2, order: 0)
        try pool.resize(5)
        #expect(pool.minimum == 5)
        #expect(pool.current == 5)
        #expect(ram.freePages == 31 - 5)
    }

    @Test func growingWithoutMemoryStopsShortAndFreesRefillLater() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 2, order: 0)
        let held = drain(ram)
        try pool.resize(4)
        #expect(pool.minimum == 4)
        #expect(pool.current == 2)
        pool.free(held[0])
        pool.free(held[1])
        #expect(pool.current == 4)
        pool.free(held[2])
        #expect(pool.current == 4)
        #expect(ram.freePages == 1)
    }

    @Test func aMinimumBelowOneIsRefused() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 2, order: 0)
        #expect(throws: MempoolError.invalidMinimum(0)) { try pool.resize(0) }
        #expect(pool.minimum == 2 && pool.current == 2)
    }
}
