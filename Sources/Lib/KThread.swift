// A thread that lives as long as what owns it, as kthread_run() starts one and
// kthread_stop() waits for it: an emulated device's engine, an interrupt's handler.
import Glibc
import Synchronization

public final class KThread: @unchecked Sendable {  // the handle is only joined once, by its owner
    private var thread = pthread_t()
    private var joined = false
    private let ended = Atomic(false)

    /// Whether the body has returned.
    public var finished: Bool { ended.load(ordering: .acquiring) }

    /// Starts `body` on a thread of its own; nil when none could be created.
    public init?(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box({ [self] in
            body()
            self.ended.store(true, ordering: .releasing)
        })).toOpaque()
        let created = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        guard created == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            return nil
        }
    }

    /// Until the body has returned (the owner has told it to).
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }
}
