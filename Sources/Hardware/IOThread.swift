// An emulated device's engine thread, as QEMU runs a device's work in an iothread: the
// driver rings it (a doorbell write, a request descriptor posted) and it runs `body`, which
// takes everything queued since it last ran. It polls for a ring before it sleeps, as
// QEMU's iothreads poll their event sources (poll-max-ns, 32 us by default): on this
// machine waking a sleeping thread on the other CPU costs about 60 us, so a request at
// depth 1 would otherwise pay that once on the way in and once on the way back.
import Glibc
import Lib
import Locking
import Synchronization

public final class IOThread: @unchecked Sendable {  // `stopping` is guarded by `doorbell`
    /// How long either end polls before it sleeps (QEMU's default poll-max-ns).
    public static let pollWindow = Duration.microseconds(32)

    /// Rings, and whether the thread sleeps (and must be woken to see them).
    private let rings = Atomic<Int>(0)
    private let asleep = Atomic<Bool>(false)
    private let doorbell = ConditionLock()
    private var stopping = false
    private var thread: KThread?

    /// Starts the thread; nil when none could be created.
    public init?(_ body: @escaping @Sendable () -> Void) {
        guard let thread = KThread({ [self] in run(body) }) else { return nil }
        self.thread = thread
    }

    /// Whether the thread has ended (stop()).
    public var finished: Bool { thread?.finished ?? true }

    /// Something was queued: the thread runs its body again, at least once more.
    public func ring() {
        rings.add(1, ordering: .sequentiallyConsistent)
        guard asleep.load(ordering: .sequentiallyConsistent) else { return }
        doorbell.lock()
        doorbell.signal()
        doorbell.unlock()
    }

    /// Remove: the thread runs what was rung and ends; returns once it has.
    public func stop() {
        doorbell.lock()
        stopping = true
        doorbell.signal()
        doorbell.unlock()
        thread?.join()
    }

    private func run(_ body: () -> Void) {
        var seen = 0
        while true {
            let deadline = ContinuousClock.now + Self.pollWindow
            while rings.load(ordering: .sequentiallyConsistent) == seen && ContinuousClock.now < deadline { sched_yield() }
            if rings.load(ordering: .sequentiallyConsistent) == seen {
                doorbell.lock()
                // Asleep before looking again: a ring after this look sees `asleep` and signals.
                asleep.store(true, ordering: .sequentiallyConsistent)
                while rings.load(ordering: .sequentiallyConsistent) == seen && !stopping { doorbell.wait() }
                asleep.store(false, ordering: .sequentiallyConsistent)
                let stop = stopping && rings.load(ordering: .sequentiallyConsistent) == seen
                doorbell.unlock()
                if stop { return }
            }
            seen = rings.load(ordering: .sequentiallyConsistent)
            body()
        }
    }
}
