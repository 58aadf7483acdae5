import Locking
import Mempool
import PhysicalMemory
import Synchronization
import Testing

@Suite struct MempoolAllocTests {
    @Test func createFillsTheReserveFromTheAllocator() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 4, order: 0)
        #expect(pool.minimum == 4)
        #expect(pool.current == 4)
        #expect(ram.freePages == 31 - 4)
    }

    @Test func createFailsCleanlyWhenTheReserveCannotBeFilled() throws {
        let ram = try tinyRAM()
        #expect(throws: MempoolError.noMemory) { try Mempool.pagePool(ram: ram, minNr: 32, order: 0) }
        #expect(ram.freePages == 31)
    }

    @Test func theAllocatorIsTriedBeforeTheReserve() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 4, order: 0)
        // pfns 1...4 are the reserve; the next page from the allocator is pfn 5.
        #expect(pool.alloc(.kernel) == page(5))
        #expect(pool.current == 4)
        #expect(pool.statistics.fromReserve == 0)
    }

    @Test func theReserveIsALastInFirstOutStack() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 4, order: 0)
        let held = drain(ram)
        #expect(held.count == 27)
        #expect(pool.alloc(.noIO) == page(4))
        #expect(pool.alloc(.noIO) == page(3))
        #expect(pool.current == 2)
        #expect(pool.statistics.fromReserve == 2)
        #expect(pool.statistics.allocated == 2)
    }

    @Test func theMasksTriedAreWeakenedFirstThenTheCallers() throws {
        let masks = PthreadMutex<[GFP]>([])
        let failing = Atomic(false)
        let ram = try tinyRAM()
        let pool = try Mempool(
            minNr: 1,
            alloc: { gfp in
                masks.withLock { $0.append(gfp) }
                return failing.load(ordering: .relaxed) ? nil : ram.allocPages(gfp, order: 0)
            },
            free: { ram.freePages($0, order: 0) })
        #expect(masks.withLock { $0 } == [.kernel])
        masks.withLock { $0 = [] }
        failing.store(true, ordering: .relaxed)
        let added: GFP = [.noMemalloc, .noRetry, .noWarn]
        // First call: the weakened try fails, the reserve answers.
        #expect(pool.alloc(.noIO) == page(1))
        #expect(masks.withLock { $0 } == [[.kswapdReclaim, .noMemalloc, .noRetry, .noWarn]])
        masks.withLock { $0 = [] }
        // Second: weakened, reserve empty, then the caller's full mask, then nothing for
        // an atomic caller (its mask had nothing to weaken, so there is no second try).
        #expect(pool.alloc(.atomic) == nil)
        #expect(masks.withLock { $0 } == [GFP.atomic.union(added)])
        masks.withLock { $0 = [] }
        #expect(pool.alloc(.noWait) == nil)
        #expect(masks.withLock { $0 } == [GFP.noWait.union(added)])
        #expect(pool.statistics.failed == 2)
    }

    @Test func aSleepingCallerTriesTheFullMaskBeforeItSleeps() throws {
        let masks = PthreadMutex<[GFP]>([])
        let ram = try tinyRAM()
        let pool = try Mempool(
            minNr: 0,
            alloc: { gfp in
                masks.withLock { $0.append(gfp) }
                return masks.withLock { $0.count } >= 3 ? ram.allocPages(gfp, order: 0) : nil
            },
            free: { ram.freePages($0, order: 0) })
        // Third call succeeds: weakened, full, and after the re-check the full mask again.
        let worker = Worker { pool.alloc(.kernel) }
        #expect(worker.join() == page(1))
        let added: GFP = [.noMemalloc, .noRetry, .noWarn]
        let full = GFP.kernel.union(added)
        #expect(masks.withLock { $0 } == [full.subtracting([.directReclaim, .io]), full, full])
        #expect(pool.statistics.waits == 1)
    }

    @Test func freeRefillsAShortReserveAndReleasesTheRest() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 2, order: 0)
        _ = drain(ram)
        let a = try #require(pool.alloc(.noIO))
        let b = try #require(pool.alloc(.noIO))
        #expect(pool.current == 0)
        pool.free(a)
        #expect(pool.current == 1)
        #expect(ram.freePages == 0)
        pool.free(b)
        #expect(pool.current == 2)
        // Reserve full: this one goes back to the page allocator.
        let c = page(10)
        pool.free(c)
        #expect(pool.current == 2)
        #expect(ram.freePages == 1)
        #expect(pool.statistics.refilled == 2)
        pool.free(0)  // NULL is ignored
        #expect(pool.current == 2)
    }

    @Test func anAtomicCallerNeverSleeps() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 1, order: 0)
        _ = drain(ram)
        #expect(pool.alloc(.atomic) == page(1))
        #expect(pool.alloc(.atomic) == nil)
        #expect(pool.alloc(.noWait) == nil)
        #expect(pool.statistics.waits == 0)
        #expect(pool.statistics.failed == 2)
    }

    @Test func aSleeperIsWokenByTheFreeThatRefillsTheReserve() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 1, order: 0)
        let held = drain(ram)
        #expect(pool.alloc(.kernel) == page(1))
        let worker = Worker { pool.alloc(.kernel) }
        #expect(eventually { pool.statistics.sleeping == 1 })
        pool.free(held[3])  // pfn 5 (held are pfns 2...31)
        #expect(worker.join() == page(5))
        #expect(pool.statistics.waits == 1)
        #expect(pool.current == 0)
    }

    @Test func aSleeperRechecksTheAllocatorEveryFiveSeconds() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 1, order: 0)
        let held = drain(ram)
        _ = pool.alloc(.kernel)
        let start = ContinuousClock.now
        let worker = Worker { pool.alloc(.kernel) }
        #expect(eventually { pool.statistics.sleeping == 1 })
        // Memory comes back to the page allocator, not to the pool: nobody wakes the
        // sleeper, which finds the page at its next re-check.
        ram.freePages(held[0], order: 0)
        #expect(worker.join() == held[0])
        #expect(ContinuousClock.now - start >= .milliseconds(4900))
        #expect(pool.statistics.waits == 1)
    }

    @Test func destroyGivesTheReserveBack() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 8, order: 1)
        #expect(ram.freePages == 31 - 16)
        pool.destroy()
        #expect(ram.freePages == 31)
        #expect(pool.current == 0)
    }
}
