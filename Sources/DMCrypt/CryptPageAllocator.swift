// How dm-crypt gets the pages of a write's "out" bio (crypt_alloc_buffer()), in the three
// ways this tool compares:
//   single   one mempool_alloc() per page (before 6.5, what Yang Shi measured);
//   bulk     Yang Shi's mempool_alloc_pages_bulk_cb() (Feb 2023, not merged);
//   compound high-order pages first, falling back to the mempool (merged for 6.5).
// Every mode first tries without sleeping and without the mutex; on failure it frees what
// it got and retries with __GFP_DIRECT_RECLAIM under bio_alloc_lock, which serialises the
// blocking allocators so two of them cannot each hold half of the reserve (deadlock).
import Lib
import Locking
import Mempool
import PhysicalMemory
import Synchronization

enum CryptPageAlloc: String, CaseIterable, Sendable {
    case single, bulk, compound
}

/// The dm-crypt clients of one machine and their share of memory: 2% of RAM split among
/// them, at least BIO_MAX_VECS * 16 pages each (crypt_calculate_pages_per_client()).
final class DMCryptClients: Sendable {
    static let memoryPercent = 2
    static let minPagesPerClient = CryptPageAllocator.bioMaxVecs * 16
    private let totalPages: Int
    private let state = PthreadMutex(0)
    /// dm_crypt_pages_per_client.
    let pagesPerClient = Atomic(0)

    init(totalPages: Int) { self.totalPages = totalPages }

    func add() { update(+1) }
    func remove() { update(-1) }

    private func update(_ delta: Int) {
        state.withLock { clients in
            clients += delta
            guard clients > 0 else { return }
            let pages = totalPages * Self.memoryPercent / 100 / clients
            pagesPerClient.store(max(pages, Self.minPagesPerClient), ordering: .relaxed)
        }
    }
}

/// The pages of one out bio: blocks of 2^order pages, data from the first page's start.
struct CryptBio {
    let blocks: UnsafeMutableBufferPointer<(phys: PhysAddr, order: Int)>
    var count = 0

    init() { blocks = .allocate(capacity: CryptPageAllocator.bioMaxVecs) }
    func deallocate() { blocks.deallocate() }

    mutating func add(_ phys: PhysAddr, order: Int) {
        blocks[count] = (phys, order)
        count += 1
    }

    var used: UnsafeBufferPointer<(phys: PhysAddr, order: Int)> { UnsafeBufferPointer(rebasing: blocks[0..<count]) }
}

final class CryptPageAllocator: @unchecked Sendable {  // counters are atomics, the pool locks itself
    /// BIO_MAX_VECS: pages in the largest bio, and the page pool's reserve.
    static let bioMaxVecs = 256

    let mode: CryptPageAlloc
    let pool: Mempool
    private let ram: PhysicalMemory
    private let accounting: Accounting
    /// bio_alloc_lock.
    private let allocLock = PthreadMutex(())
    /// Bios given pages, and the time it took, for alloc_us_per_bio.
    let bios = Atomic(0)
    let allocNanoseconds = Atomic(0)
    /// High-order blocks the compound mode got from the page allocator.
    let compoundBlocks = Atomic(0)

    /// n_allocated_pages against dm_crypt_pages_per_client, shared with the pool's callbacks.
    final class Accounting: Sendable {
        let allocated = Atomic(0)
        let clients: DMCryptClients
        init(clients: DMCryptClients) { self.clients = clients }

        /// The per-client cap applies to allocations that may fail (mempool always sets
        /// __GFP_NORETRY); percpu_counter_read_positive() reads a negative count as 0.
        func overLimit(adding pages: Int) -> Bool {
            max(allocated.load(ordering: .relaxed), 0) + pages > clients.pagesPerClient.load(ordering: .relaxed)
        }
    }

    var allocatedPages: Int { accounting.allocated.load(ordering: .relaxed) }

    init(ram: PhysicalMemory, mode: CryptPageAlloc, clients: DMCryptClients) throws(MempoolError) {
        self.ram = ram
        self.mode = mode
        let accounting = Accounting(clients: clients)
        self.accounting = accounting
        let free: Mempool.FreeFunction = { page in  // crypt_page_free()
            ram.freePages(page, order: 0)
            accounting.allocated.subtract(1, ordering: .relaxed)
        }
        switch mode {
        case .single, .compound:
            pool = try Mempool(minNr: Self.bioMaxVecs, alloc: { gfp in  // crypt_page_alloc()
                if gfp.contains(.noRetry) && accounting.overLimit(adding: 1) { return nil }
                guard let page = ram.allocPages(gfp, order: 0) else { return nil }
                accounting.allocated.add(1, ordering: .relaxed)
                return page
            }, free: free)
        case .bulk:
            pool = try Mempool(minNr: Self.bioMaxVecs, ram: ram, pagesBulk: { gfp, nr, array, callback in  // crypt_alloc_pages_bulk()
                if gfp.contains(.noRetry) && accounting.overLimit(adding: 1) { return 0 }
                let produced = array.map { ram.allocPagesBulk($0, limit: gfp.zoneLimit) }
                    ?? ram.allocPagesBulk(count: nr, limit: gfp.zoneLimit, callback)
                accounting.allocated.add(produced, ordering: .relaxed)
                return produced
            }, free: free)
        }
    }

    /// The corresponding kernel function is `crypt_alloc_buffer()`: pages for `size` bytes.
    /// Never fails: the blocking retry waits on the mempool.
    func allocBuffer(_ bio: inout CryptBio, size: Int) {
        let start = ContinuousClock.now
        var gfp: GFP = [.kswapdReclaim, .highmem]  // GFP_NOWAIT | __GFP_HIGHMEM
        var order = PhysicalMemory.maxOrder
        while true {
            let filled = gfp.allowsBlocking
                ? allocLock.withLock { _ in fill(&bio, size: size, gfp: gfp, order: order) }
                : fill(&bio, size: size, gfp: gfp, order: order)
            if filled { break }
            freeBuffer(&bio)
            gfp.insert(.directReclaim)
            order = 0
        }
        bios.add(1, ordering: .relaxed)
        allocNanoseconds.add(Int((ContinuousClock.now - start).nanoseconds), ordering: .relaxed)
    }

    private func fill(_ bio: inout CryptBio, size: Int, gfp: GFP, order: Int) -> Bool {
        let pages = (size + PhysicalMemory.pageSize - 1) / PhysicalMemory.pageSize
        switch mode {
        case .single:
            for _ in 0..<pages {
                guard let page = pool.alloc(gfp) else { return false }
                bio.add(page, order: 0)
            }
            return true
        case .bulk:
            return pool.allocPagesBulk(gfp, count: pages) { bio.add($0, order: 0) }
        case .compound:
            var order = order
            var remaining = pages
            while remaining > 0 {
                order = min(order, Int.bitWidth - 1 - remaining.leadingZeroBitCount)
                var block: PhysAddr?
                while order > 0 && block == nil {
                    if !accounting.overLimit(adding: 1 << order),
                       let pages = ram.allocPages(gfp.union([.noMemalloc, .noRetry, .noWarn, .comp]), order: order) {
                        accounting.allocated.add(1 << order, ordering: .relaxed)
                        compoundBlocks.add(1, ordering: .relaxed)
                        block = pages
                    } else {
                        order -= 1
                    }
                }
                if block == nil {
                    // Order 0 goes to the mempool, which tries alloc_page() first anyway.
                    guard let page = pool.alloc(gfp) else { return false }
                    block = page
                }
                bio.add(block!, order: order)
                remaining -= min(1 << order, remaining)
            }
            return true
        }
    }

    /// The corresponding kernel function is `crypt_free_buffer_pages()`: large folios go
    /// back to the page allocator, single pages to the mempool.
    func freeBuffer(_ bio: inout CryptBio) {
        for (phys, order) in bio.used {
            if order > 0 {
                accounting.allocated.subtract(1 << order, ordering: .relaxed)
                ram.freePages(phys, order: order)
            } else {
                pool.free(phys)
            }
        }
        bio.count = 0
    }

    /// mempool_exit(), after the kernel's check that no page is still counted (which the
    /// bulk series moved before the exit: its reserve pages were never counted).
    func destroy(log: (String) -> Void) {
        if mode == .bulk && allocatedPages != 0 { log("WARNING: n_allocated_pages \(allocatedPages) at exit") }
        pool.destroy()
        if mode != .bulk && allocatedPages != 0 { log("WARNING: n_allocated_pages \(allocatedPages) at exit") }
    }
}
