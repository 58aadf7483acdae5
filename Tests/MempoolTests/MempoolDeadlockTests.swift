import Glibc
import Locking
import Mempool
import PhysicalMemory
import Synchronization
import Testing

/// The pitfall dm-crypt's bio_alloc_lock exists for: two tasks each gathering more than
/// half of the reserve one mempool_alloc() at a time, with the page allocator dry.
@Suite struct MempoolDeadlockTests {
    /// Each thread takes two of the four reserved pages, then both want a third: the
    /// reserve is empty, neither frees until it has three, so both sleep for good.
    @Test func twoGatherersEachWantingMoreThanHalfDeadlock() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 4, order: 0)
        let held = drain(ram)
        let arrived = Atomic(0)
        let gather = { () -> [PhysAddr] in
            var pages = [pool.alloc(.noIO)!, pool.alloc(.noIO)!]
            arrived.add(1, ordering: .relaxed)
            while arrived.load(ordering: .relaxed) < 2 { usleep(100) }
            pages.append(pool.alloc(.noIO)!)
            for p in pages { pool.free(p) }
            return pages
        }
        let a = Worker(gather), b = Worker(gather)
        #expect(eventually { pool.statistics.sleeping == 2 })
        // Stuck: a second later both still sleep and the reserve is still empty.
        usleep(1_000_000)
        #expect(pool.statistics.sleeping == 2 && pool.current == 0)
        #expect(!a.finished && !b.finished)
        // Only memory from outside ends it.
        pool.free(held[0])
        pool.free(held[1])
        #expect(a.join().count == 3 && b.join().count == 3)
    }

    /// The same two gatherers under one mutex for the whole gather-use-free, as
    /// crypt_alloc_buffer() takes bio_alloc_lock for blocking allocations: both finish.
    @Test func theAllocationMutexPreventsIt() throws {
        let ram = try tinyRAM()
        let pool = try Mempool.pagePool(ram: ram, minNr: 4, order: 0)
        _ = drain(ram)
        let mutex = PthreadMutex(())
        let gather = { () -> Int in
            mutex.withLock { _ in
                let pages = (0..<3).map { _ in pool.alloc(.noIO)! }
                for p in pages { pool.free(p) }
                return pages.count
            }
        }
        let a = Worker(gather), b = Worker(gather)
        #expect(a.join() == 3 && b.join() == 3)
        #expect(pool.statistics.waits == 0)
        #expect(pool.current == 4)
    }
}
