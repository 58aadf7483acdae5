// The coherent atomic pool (kernel/dma/pool.c, sized by coherent_pool=): memory set aside
// and already decrypted, so that a confidential VM can hand out bounce memory to a map
// that may not sleep. Page-granular first fit; it only serves transient swiotlb pools here.
import Locking
import PhysicalMemory
import Synchronization

final class AtomicPool: Sendable {
    let start: PhysAddr
    let pages: Int
    private let used: PthreadMutex<[Bool]>

    init?(ram: PhysicalMemory, bytes: Int) {
        let pages = (bytes + PhysicalMemory.pageSize - 1) / PhysicalMemory.pageSize
        guard pages > 0, let start = ram.reserveContiguous(bytes: pages * PhysicalMemory.pageSize) else { return nil }
        self.start = start
        self.pages = pages
        used = PthreadMutex(Array(repeating: false, count: pages))
    }

    /// dma_alloc_from_pool(): `count` contiguous pages, or nil.
    func alloc(pages count: Int) -> PhysAddr? {
        used.withLock { used in
            var run = 0
            for i in used.indices {
                run = used[i] ? 0 : run + 1
                if run == count {
                    for j in (i - count + 1)...i { used[j] = true }
                    return start + PhysAddr((i - count + 1) * PhysicalMemory.pageSize)
                }
            }
            return nil
        }
    }

    func free(_ phys: PhysAddr, pages count: Int) {
        let first = Int(phys - start) / PhysicalMemory.pageSize
        used.withLock { used in for j in first..<(first + count) { used[j] = false } }
    }
}
