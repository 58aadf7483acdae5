import Locking
import Mempool
import PhysicalMemory
import Synchronization
import Testing

@Suite struct MempoolBulkTests {
    @Test func theArrayFormFillsFromTheAllocatorFirst() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagesBulkPool(ram: ram, minNr: 4)
        var array = [PhysAddr](repeating: 0, count: 10)
        #expect(array.withUnsafeMutableBufferPointer { pool.allocPagesBulk(.noIO, array: $0) })
        #expect(array == (5...14).map(page))
        #expect(pool.current == 4)
        #expect(pool.statistics.allocated == 10)
    }

    @Test func theCallbackFormHandsOverEachPage() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagesBulkPool(ram: ram, minNr: 4)
        var pages: [PhysAddr] = []
        #expect(pool.allocPagesBulk(.noIO, count: 3) { pages.append($0) })
        #expect(pages == [page(5), page(6), page(7)])
    }

    @Test func theReserveMakesUpWhatTheAllocatorLacks() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagesBulkPool(ram: ram, minNr: 4)
        let held = drain(ram)
        for p in held.suffix(5) { ram.freePages(p, order: 0) }  // pfns 27...31 free again
        var pages: [PhysAddr] = []
        #expect(pool.allocPagesBulk(.noIO, count: 7) { pages.append($0) })
        #expect(pages == [page(27), page(28), page(29), page(30), page(31), page(4), page(3)])
        #expect(pool.current == 2)
        #expect(pool.statistics.fromReserve == 2)
    }

    /// 31 pages: 4 in the reserve, 20 held elsewhere, 7 left in the allocator. A request
    /// for 16 gets 7 + 4 = 11; an atomic caller then gets false and owns the 11.
    @Test(arguments: [GFP.atomic, GFP.noWait])
    func moreThanAllocatorAndReserveHoldFailsForAtomicCallers(gfp: GFP) throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagesBulkPool(ram: ram, minNr: 4)
        let held = (0..<20).compactMap { _ in ram.allocPages(order: 0) }
        #expect(held == (5...24).map(page))
        var pages: [PhysAddr] = []
        #expect(!pool.allocPagesBulk(gfp, count: 16) { pages.append($0) })
        #expect(pages == (25...31).map(page) + [page(4), page(3), page(2), page(1)])
        #expect(pool.current == 0)
        #expect(pool.statistics.failed == 1)
        #expect(pool.statistics.allocated == 11)

        // The array form leaves the same pages in the array for its caller.
        for p in pages { pool.free(p) }  // 4 refill the reserve, 7 go back to the allocator
        #expect(pool.current == 4 && ram.freePages == 7)
        var array = [PhysAddr](repeating: 0, count: 16)
        #expect(!array.withUnsafeMutableBufferPointer { pool.allocPagesBulk(gfp, array: $0) })
        #expect(array.filter { $0 != 0 }.count == 11)
        #expect(array.suffix(5).allSatisfy { $0 == 0 })
        #expect(Set(array.prefix(11)) == Set(pages))
    }

    @Test func aSleepingBulkCallerWaitsForFreesAndGetsEverything() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagesBulkPool(ram: ram, minNr: 4)
        let held = (0..<20).compactMap { _ in ram.allocPages(order: 0) }
        let worker = Worker { () -> [PhysAddr] in
            var pages: [PhysAddr] = []
            let done = pool.allocPagesBulk(.noIO, count: 16) { pages.append($0) }
            return done ? pages : []
        }
        #expect(eventually { pool.statistics.sleeping == 1 })
        for p in held.prefix(5) { pool.free(p) }
        let pages = worker.join()
        #expect(pages.count == 16)
        #expect(Set(pages) == Set((25...31).map(page) + (1...4).map(page) + held.prefix(5)))
        #expect(pool.statistics.failed == 0)
        #expect(pool.statistics.waits >= 1)
    }

    @Test func theBulkFunctionSeesTheWeakenedMaskThenTheFullOne() throws {
        let calls = PthreadMutex<[(GFP, Int)]>([])
        let ram = try tinyRAM()
        let pool = try Mempool(
            minNr: 2, ram: ram,
            pagesBulk: { gfp, nr, _, _ in
                calls.withLock { $0.append((gfp, nr)) }
                return 0
            },
            free: { ram.freePages($0, order: 0) })
        var pages: [PhysAddr] = []
        #expect(!pool.allocPagesBulk(.noWait, count: 5) { pages.append($0) })
        #expect(pages == [page(2), page(1)])
        // The callback form asks only for what is still missing.
        let added: GFP = [.noMemalloc, .noRetry, .noWarn]
        #expect(calls.withLock { $0.map(\.0) } == [GFP.noWait.union(added)])
        #expect(calls.withLock { $0.map(\.1) } == [5])
        calls.withLock { $0 = [] }
        for p in pages { pool.free(p) }
        let worker = Worker { pool.allocPagesBulk(.noIO, count: 5) { _ in } }
        #expect(eventually { pool.statistics.sleeping == 1 })
        let full = GFP.noIO.union(added)
        #expect(calls.withLock { $0.map(\.0) } == [full.subtracting(.directReclaim), full])
        #expect(calls.withLock { $0.map(\.1) } == [5, 3])
        // One page at a time: the bulk function never produces, so only the reserve can
        // feed the sleeper, and a free into a full reserve would go back to the allocator.
        for _ in 0..<3 {
            #expect(eventually { pool.current == 0 && pool.statistics.sleeping == 1 })
            pool.free(try #require(ram.allocPages(order: 0)))
        }
        #expect(worker.join())
    }
}
