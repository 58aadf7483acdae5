// mm/mempool.c: a pool that keeps min_nr elements in reserve so that allocations which
// must make progress (block I/O, dm-crypt's write buffers) cannot fail for lack of
// memory. The underlying allocator is always tried first, with a mask that may not
// reclaim; then the reserve; then the caller's own mask; then a caller that may sleep
// waits for an element to be freed back, re-checking every five seconds as the kernel's
// io_schedule_timeout(5*HZ) does. Atomic callers never sleep and can get nothing.
//
// Elements are addresses in the emulated RAM (a page's physical address for page pools),
// so what a pool hands out is real memory. 0 is never an element.
import PhysicalMemory
import Synchronization

public enum MempoolError: Error, Equatable, CustomStringConvertible {
    /// The reserve could not be filled (mempool_create() returns NULL) or grown.
    case noMemory
    /// A negative min_nr, or 0 or less for mempool_resize(), which the kernel BUG()s on.
    case invalidMinimum(Int)

    public var description: String {
        switch self {
        case .noMemory: "cannot allocate memory for the mempool reserve"
        case .invalidMinimum(let n): "min_nr \(n) is out of range"
        }
    }
}

public final class Mempool: @unchecked Sendable {  // the fields below `wait` are guarded by it
    public typealias Element = PhysAddr
    /// mempool_alloc_t: one element, or nil.
    public typealias AllocFunction = @Sendable (GFP) -> Element?
    /// mempool_free_t.
    public typealias FreeFunction = @Sendable (Element) -> Void
    /// mempool_alloc_pages_bulk_t (Yang Shi): up to `nr` order-0 pages, into the array's
    /// empty slots when there is an array (returning how many slots are populated), else
    /// handed one by one to the callback (returning how many were handed over).
    public typealias PagesBulkFunction = @Sendable (GFP, Int, UnsafeMutableBufferPointer<PhysAddr>?, (PhysAddr) -> Void) -> Int

    /// io_schedule_timeout(5*HZ) between re-checks of a sleeper (the kernel keeps it as a
    /// workaround for device-mapper hangs of the 2.6.18 era).
    public static let recheckSeconds = 5

    public struct Counters: Sendable, Equatable {
        /// Elements handed out, by any path.
        public var allocated = 0
        /// Of those, how many came from the reserve.
        public var fromReserve = 0
        /// Elements mempool_free() put back into the reserve.
        public var refilled = 0
        /// Times a caller went to sleep waiting for a free.
        public var waits = 0
        /// Calls that returned nothing (or, in bulk, fewer pages than asked).
        public var failed = 0
        /// Callers asleep now.
        public var sleeping = 0
    }

    let wait = WaitQueue()
    /// curr_nr and min_nr: changed under the lock, read without it by mempool_free() as
    /// the kernel's READ_ONCE() does.
    let currNr = Atomic<Int>(0)
    let minNr = Atomic<Int>(0)
    var elements: UnsafeMutablePointer<Element>
    var capacity: Int
    var counters = Counters()
    /// Counters.allocated, kept apart: the fast path takes no lock of the pool's.
    let allocatedFast = Atomic<Int>(0)

    let allocFunction: AllocFunction?
    let pagesBulkFunction: PagesBulkFunction?
    let freeFunction: FreeFunction
    /// Where a bulk pool's reserve pages come from (alloc_page(), not the bulk function),
    /// and the machine's log and fail_mempool_alloc_bulk for mempool_alloc_bulk().
    let ram: PhysicalMemory?
    /// VM_WARN_ON_ONCE()'s once.
    let warnedBulkCount = Atomic(false)

    /// mempool_create(): fills the reserve with `minNr` calls of `alloc(GFP_KERNEL)`;
    /// if one fails, what was taken is freed and creation fails. `ram` is the machine the
    /// elements live on, for its log and fault attributes.
    public convenience init(minNr: Int, alloc: @escaping AllocFunction, free: @escaping FreeFunction, ram: PhysicalMemory? = nil) throws(MempoolError) {
        try self.init(minNr: minNr, alloc: alloc, pagesBulk: nil, free: free, ram: ram)
    }

    /// mempool_create_pages_bulk(): a page pool whose allocations go through `pagesBulk`;
    /// the reserve is filled with single pages from `ram`, as the series does.
    public convenience init(minNr: Int, ram: PhysicalMemory, pagesBulk: @escaping PagesBulkFunction, free: @escaping FreeFunction) throws(MempoolError) {
        try self.init(minNr: minNr, alloc: nil, pagesBulk: pagesBulk, free: free, ram: ram)
    }

    private init(minNr: Int, alloc: AllocFunction?, pagesBulk: PagesBulkFunction?, free: @escaping FreeFunction, ram: PhysicalMemory?) throws(MempoolError) {
        guard minNr >= 0 else { throw .invalidMinimum(minNr) }
        allocFunction = alloc
        pagesBulkFunction = pagesBulk
        freeFunction = free
        self.ram = ram
        capacity = max(minNr, 1)
        elements = .allocate(capacity: capacity)
        self.minNr.store(minNr, ordering: .relaxed)
        for n in 0..<minNr {
            guard let element = fill(.kernel) else {
                destroy()
                throw .noMemory
            }
            elements[n] = element
            currNr.store(n + 1, ordering: .relaxed)
        }
    }

    deinit {
        destroy()
        elements.deallocate()
    }

    /// One element for the reserve: alloc_page() for bulk pools, the pool's alloc else.
    func fill(_ gfp: GFP) -> Element? {
        if let allocFunction { return allocFunction(gfp) }
        return ram?.allocPages(gfp, order: 0)
    }

    // MARK: - What the control surface shows

    public var minimum: Int { minNr.load(ordering: .relaxed) }
    public var current: Int { currNr.load(ordering: .relaxed) }

    public var statistics: Counters {
        wait.lock()
        defer { wait.unlock() }
        var snapshot = counters
        snapshot.allocated = allocatedFast.load(ordering: .relaxed)
        return snapshot
    }

    // MARK: - mempool_alloc / mempool_free

    /// The corresponding kernel function is `mempool_alloc()`. Never nil when `gfp` may
    /// sleep (the caller blocks until an element is freed); an atomic caller gets nil once
    /// the allocator and the reserve are both empty.
    public func alloc(_ gfp: GFP) -> Element? {
        allocate(gfp, nr: 1, array: nil, callback: nil)
    }

    /// The corresponding kernel function is `mempool_free()`: the element refills the
    /// reserve if it is short (waking sleepers), else goes back to the pool's free function.
    public func free(_ element: Element) {
        guard element != 0 else { return }
        // The unlocked check is enough: sleepers exist only while the reserve is empty, so
        // some free that finds curr_nr < min_nr is bound to come and wake them.
        if currNr.load(ordering: .acquiring) < minNr.load(ordering: .relaxed) {
            wait.lock()
            let n = currNr.load(ordering: .relaxed)
            if n < minNr.load(ordering: .relaxed) {
                elements[n] = element
                currNr.store(n + 1, ordering: .releasing)
                counters.refilled += 1
                wait.unlock()
                wait.wakeUp()
                return
            }
            wait.unlock()
        }
        freeFunction(element)
    }

    /// The value __mempool_alloc() returns when a bulk request was filled
    /// (MEMPOOL_BULK_SUCCESS_PTR): never a page address.
    static let bulkSuccess: Element = 16

    /// __mempool_alloc() as Yang Shi's series reshaped it: with neither array nor callback,
    /// one element through the pool's alloc (mempool_alloc); else `nr` pages through the
    /// bulk function and the reserve. Returns the element, `bulkSuccess`, or nil.
    func allocate(_ gfpMask: GFP, nr: Int, array: UnsafeMutableBufferPointer<PhysAddr>?,
                  callback: ((PhysAddr) -> Void)?) -> Element? {
        let bulk = array != nil || callback != nil
        // Failure is expected and handled here: no emergency reserves, no looping inside
        // the page allocator, no warning.
        let gfp = gfpMask.union([.noMemalloc, .noRetry, .noWarn])
        var gfpTemp = gfp.subtracting([.directReclaim, .io])
        var nr = nr
        // Pages the caller holds from this call, for the counters.
        let prepopulated = array.map { $0.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } } ?? 0
        var handed = 0
        defer { if bulk { allocatedFast.add(handed, ordering: .relaxed) } }
        while true {
            var ret = 0
            if bulk, let pagesBulkFunction {
                ret = pagesBulkFunction(gfpTemp, nr, array, callback ?? { _ in })
                handed = array == nil ? handed + ret : ret - prepopulated
                if ret == nr { return Self.bulkSuccess }
            } else if !bulk, let element = allocFunction?(gfpTemp) {
                allocatedFast.add(1, ordering: .relaxed)
                return element
            }
            var remaining = nr - ret
            wait.lock()
            var i = 0
            while currNr.load(ordering: .relaxed) > 0 && remaining > 0 {
                let n = currNr.load(ordering: .relaxed) - 1
                let element = elements[n]
                currNr.store(n, ordering: .relaxed)
                counters.fromReserve += 1
                wait.unlock()
                guard bulk else {
                    allocatedFast.add(1, ordering: .relaxed)
                    return element
                }
                if let array { array[ret + i] = element } else { callback?(element) }
                handed += 1
                i += 1
                remaining -= 1
                wait.lock()
            }
            if bulk {
                if remaining == 0 {
                    wait.unlock()
                    return Self.bulkSuccess
                }
                // The array form counts populated slots itself; the callback form asks
                // only for what is still missing.
                if array == nil { nr = remaining }
            }
            // The first round could not reclaim and the reserve is dry: retry at once
            // with the caller's mask.
            if gfpTemp != gfp {
                wait.unlock()
                gfpTemp = gfp
                continue
            }
            guard gfp.allowsBlocking else {
                counters.failed += 1
                wait.unlock()
                return nil
            }
            counters.waits += 1
            counters.sleeping += 1
            wait.sleep(seconds: Self.recheckSeconds)
            counters.sleeping -= 1
            wait.unlock()
        }
    }

    // MARK: - Teardown

    /// The corresponding kernel function is `mempool_destroy()`: every reserved element
    /// goes back through the free function. The pool has no reserve afterwards.
    public func destroy() {
        wait.lock()
        let count = currNr.load(ordering: .relaxed)
        currNr.store(0, ordering: .relaxed)
        minNr.store(0, ordering: .relaxed)
        wait.unlock()
        for n in stride(from: count - 1, through: 0, by: -1) { freeFunction(elements[n]) }
    }
}
