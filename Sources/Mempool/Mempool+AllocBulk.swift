// Christoph Hellwig's mempool_alloc_bulk() and mempool_free_bulk() (merged for v6.19,
// where blk-crypto-fallback fills its bounce pages with alloc_pages_bulk() and hands
// what is missing to mempool_alloc_bulk(); dm-crypt does not use it). Unlike Yang Shi's
// API it works on any pool, element by element through the pool's own alloc function,
// always with GFP_KERNEL, and never fails: the reserve gives all the missing elements at
// once or none, and a caller that finds too few sleeps until frees bring them.
import PhysicalMemory

extension Mempool {
    /// The corresponding kernel function is `mempool_alloc_bulk(pool, elems, count,
    /// allocated)`: fills every 0 slot of `elements` (`allocated` of them are filled
    /// already). First each missing element through the alloc function with a mask that
    /// may not reclaim; at the first failure, the reserve if it holds every element still
    /// missing; then the alloc function again with GFP_KERNEL, and so on, sleeping on the
    /// pool when the reserve is short. Asking for more than min_nr is a bug the kernel
    /// warns of once (VM_WARN_ON_ONCE): the reserve alone can never satisfy it.
    /// fail_mempool_alloc_bulk sends the first round straight to the reserve.
    public func allocBulk(_ elements: UnsafeMutableBufferPointer<Element>, allocated: Int, caller: String = #function) {
        let gfpMask = GFP.kernel.union([.noMemalloc, .noRetry, .noWarn])
        var gfpTemp = gfpMask.subtracting([.directReclaim, .io])
        var allocated = allocated
        if elements.count > minimum, !warnedBulkCount.exchange(true, ordering: .relaxed) {
            ram?.log.printk(.warning, "WARNING: mm/mempool.c: mempool_alloc_bulk of \(elements.count) elements from a pool of min_nr \(minimum)")
        }
        var useReserve = false
        if let faults = ram?.failMempoolAllocBulk, faults.shouldFail(size: 1, noWarn: true) {
            ram?.log.printk(.info, "forcing mempool usage for \(caller)")
            useReserve = true
        }
        while true {
            if !useReserve {
                var i = 0
                while i < elements.count {
                    if elements[i] == 0 {
                        guard let element = fill(gfpTemp) else { break }
                        elements[i] = element
                        allocatedFast.add(1, ordering: .relaxed)
                        allocated += 1
                    }
                    i += 1
                }
                if i == elements.count { return }
            }
            useReserve = false
            allocated = allocFromReserve(elements, allocated: allocated, gfp: gfpTemp)
            gfpTemp = gfpMask
        }
    }

    /// mempool_alloc_from_pool(): every missing element from the reserve, or none; when
    /// none and `gfp` may sleep, one io_schedule_timeout(5*HZ) on the pool. Returns the
    /// new count of filled slots.
    private func allocFromReserve(_ elements: UnsafeMutableBufferPointer<Element>, allocated: Int, gfp: GFP) -> Int {
        wait.lock()
        defer { wait.unlock() }
        guard currNr.load(ordering: .relaxed) >= elements.count - allocated else {
            if gfp.contains(.directReclaim) {
                counters.waits += 1
                counters.sleeping += 1
                wait.sleep(seconds: Self.recheckSeconds)
                counters.sleeping -= 1
            }
            return allocated
        }
        var allocated = allocated
        for i in elements.indices where elements[i] == 0 {
            let n = currNr.load(ordering: .relaxed) - 1
            elements[i] = self.elements[n]
            currNr.store(n, ordering: .relaxed)
            counters.fromReserve += 1
            allocatedFast.add(1, ordering: .relaxed)
            allocated += 1
        }
        return allocated
    }

    /// The corresponding kernel function is `mempool_free_bulk(pool, elems, count)`:
    /// elements from the front of `elements` refill the reserve while it is short (and,
    /// for a pool of min_nr 0, one element when it is empty), waking sleepers. Returns how
    /// many it took: the caller frees the rest from that offset. The kernel leaves the
    /// taken slots as they were (its comment says it clears them; its code does not).
    public func freeBulk(_ elements: UnsafeBufferPointer<Element>) -> Int {
        var freed = 0
        let minimum = minNr.load(ordering: .relaxed)
        if currNr.load(ordering: .acquiring) < minimum {
            wait.lock()
            while currNr.load(ordering: .relaxed) < minNr.load(ordering: .relaxed), freed < elements.count {
                addElement(elements[freed])
                freed += 1
            }
            wait.unlock()
        } else if minimum == 0, currNr.load(ordering: .acquiring) == 0, !elements.isEmpty {
            wait.lock()
            if currNr.load(ordering: .relaxed) == 0 {
                addElement(elements[0])
                freed = 1
            }
            wait.unlock()
        }
        if freed > 0 { wait.wakeUp() }
        return freed
    }

    /// add_element() under the lock, with room made for a min_nr 0 pool's one element.
    private func addElement(_ element: Element) {
        let n = currNr.load(ordering: .relaxed)
        elements[n] = element
        currNr.store(n + 1, ordering: .releasing)
        counters.refilled += 1
    }
}
