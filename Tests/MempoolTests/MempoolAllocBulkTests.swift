import Mempool
import PhysicalMemory
import Testing

/// mempool_alloc_bulk() and mempool_free_bulk() as mm/mempool.c (v6.19) has them, on the
/// 32-page machine of Fixtures.swift: a page pool of min_nr 4 holds pfns 1...4 (the
/// reserve pops from the top: 4, 3, 2, 1) and the allocator hands out 5, 6, 7, ...
@Suite struct MempoolAllocBulkTests {
    func pool(_ ram: PhysicalMemory, minNr: Int = 4) throws -> Mempool { try Mempool.pagePool(ram: ram, minNr: minNr, order: 0) }

    /// "Allocate elements for each slot in @elem that is NULL", through alloc_fn first.
    @Test func onlyTheEmptySlotsAreFilledFromTheAllocator() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram)
        var array: [PhysAddr] = [0, page(31), 0, 0]
        array.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 1) }
        #expect(array == [page(5), page(31), page(6), page(7)])
        #expect(pool.current == 4 && pool.statistics.fromReserve == 0 && pool.statistics.allocated == 3)
    }

    /// The allocator has pfns 5 and 6 (freed in that order, so 6 comes back first) and
    /// fails at slot 2: mempool_alloc_from_pool() needs count - allocated = 1 element and
    /// the reserve has 4, so slot 2 gets the reserve's top (pfn 4).
    @Test func theReserveGivesWhatTheAllocatorCouldNot() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram)
        let held = drain(ram)
        ram.freePages(held[0], order: 0)
        ram.freePages(held[1], order: 0)
        var array = [PhysAddr](repeating: 0, count: 3)
        array.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
        #expect(array == [page(6), page(5), page(4)])
        #expect(pool.current == 3 && pool.statistics.fromReserve == 1)
    }

    /// All missing or none: with 2 in reserve and 3 missing the caller sleeps (after the
    /// first round, which may not reclaim and so does not), until a free refills the
    /// reserve to 3; then all three come from it.
    @Test func aShortReserveGivesNothingAndTheCallerSleeps() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram)
        let held = drain(ram)
        var two = [PhysAddr](repeating: 0, count: 2)
        two.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
        #expect(two == [page(4), page(3)] && pool.current == 2)
        let worker = Worker { () -> [PhysAddr] in
            var array = [PhysAddr](repeating: 0, count: 3)
            array.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
            return array
        }
        #expect(eventually { pool.statistics.sleeping == 1 })
        #expect(pool.current == 2 && !worker.finished)
        pool.free(two[0])  // mempool_free() refills the reserve and wakes the sleeper
        #expect(worker.join() == [page(4), page(2), page(1)])
        #expect(pool.current == 0 && pool.statistics.waits == 1)
        for p in held { ram.freePages(p, order: 0) }
    }

    /// should_fail_ex(&fail_mempool_alloc_bulk, 1, FAULT_NOWARN): the first round goes to
    /// the reserve, with the pr_info line and no fail_dump; times 1 makes it once.
    @Test func failMempoolAllocBulkForcesTheReserve() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram)
        var attributes = ram.failMempoolAllocBulk.attributes
        #expect(attributes.minOrder == 0 && attributes.times == 1)
        attributes.probability = 100
        ram.failMempoolAllocBulk.attributes = attributes
        var first = [PhysAddr](repeating: 0, count: 2)
        first.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
        #expect(first == [page(4), page(3)])
        let log = ram.log.texts()
        #expect(log.contains { $0.hasPrefix("forcing mempool usage for ") })
        #expect(!log.contains { $0.hasPrefix("FAULT_INJECTION") })
        var second = [PhysAddr](repeating: 0, count: 2)
        second.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
        #expect(second == [page(5), page(6)])
        #expect(ram.failMempoolAllocBulk.attributes.times == 0)
        // fail_page_alloc is a separate attribute: untouched.
        #expect(ram.faults.injected == 0)
    }

    /// VM_WARN_ON_ONCE(count > pool->min_nr): once, and the call still succeeds while the
    /// allocator has pages.
    @Test func moreThanMinNrWarnsOnce() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram)
        for _ in 0..<2 {
            var array = [PhysAddr](repeating: 0, count: 5)
            array.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
            #expect(array.allSatisfy { $0 != 0 })
        }
        #expect(ram.log.texts().filter { $0.hasPrefix("WARNING: mm/mempool.c: mempool_alloc_bulk of 5 elements") }.count == 1)
    }

    /// "Returns a number of elements from the start of @elem to @pool if @pool needs
    /// replenishing": 3 missing from the reserve, 5 given, 3 taken from the front.
    @Test func freeBulkRefillsFromTheFront() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram)
        _ = drain(ram)
        var taken = [PhysAddr](repeating: 0, count: 3)
        taken.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
        #expect(pool.current == 1)
        let given: [PhysAddr] = [page(10), page(11), page(12), page(13), page(14)]
        #expect(given.withUnsafeBufferPointer { pool.freeBulk($0) } == 3)
        #expect(pool.current == 4)
        // A full reserve takes nothing.
        #expect(given.withUnsafeBufferPointer { pool.freeBulk(UnsafeBufferPointer(rebasing: $0[3...])) } == 0)
        // The reserve now pops what it took last first: 12, 11, 10.
        var again = [PhysAddr](repeating: 0, count: 3)
        again.withUnsafeMutableBufferPointer { pool.allocBulk($0, allocated: 0) }
        #expect(again == [page(12), page(11), page(10)])
    }

    /// The min_nr 0 edge case: an empty pool keeps one element, and only one.
    @Test func freeBulkKeepsOneForAZeroMinimumPool() throws {
        let ram = try tinyRAM()
        let pool = try pool(ram, minNr: 0)
        let given: [PhysAddr] = [page(10), page(11)]
        #expect(given.withUnsafeBufferPointer { pool.freeBulk($0) } == 1)
        #expect(pool.current == 1)
        #expect(given.withUnsafeBufferPointer { pool.freeBulk(UnsafeBufferPointer(rebasing: $0[1...])) } == 0)
    }
}
