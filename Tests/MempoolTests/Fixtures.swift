import Glibc
import Locking
import Mempool
import PhysicalMemory

/// A 32-page machine: zone DMA manages pfns 1...31, and order-0 allocations come from
/// the bottom up (1, 2, 3, ...), so every page a test sees is known in advance: the
/// boot pageset (no pcp lists) keeps the buddy allocator's own order.
func tinyRAM() throws -> PhysicalMemory { try PhysicalMemory(size: 32 * 4096, pcpLists: false) }

func page(_ pfn: Int) -> PhysAddr { PhysAddr(pfn) << 12 }

/// Takes every page left in the allocator, lowest first.
func drain(_ ram: PhysicalMemory) -> [PhysAddr] {
    var pages: [PhysAddr] = []
    while let p = ram.allocPages(order: 0) { pages.append(p) }
    return pages
}

/// A thread of its own (mempool sleepers block a real thread, not a task).
final class Worker<Result: Sendable>: @unchecked Sendable {  // `slot` is the shared state
    private final class Slot: Sendable { let value = PthreadMutex<Result?>(nil) }
    private let slot = Slot()
    private let thread: Thread

    init(_ body: @escaping () -> Result) {
        let slot = self.slot
        thread = Thread {
            let value = body()
            slot.value.withLock { $0 = value }
        }
    }

    var finished: Bool { slot.value.withLock { $0 != nil } }

    func join() -> Result {
        thread.join()
        return slot.value.withLock { $0! }
    }
}

/// A pthread running `body` (not generic: a C function pointer cannot carry a generic).
final class Thread: @unchecked Sendable {
    private let body: () -> Void
    private var thread = pthread_t()

    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { raw in
            Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
    }

    func join() { pthread_join(thread, nil) }
}

/// Polls `condition` every millisecond for up to `seconds`; whether it became true.
func eventually(within seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}
