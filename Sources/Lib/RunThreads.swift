// Threads of their own, as kthread_run() gives the kernel's benchmarks and fio's numjobs
// gives its jobs: a pool capped at the CPU count (Dispatch's concurrentPerform) would run
// "16 threads" two at a time on this machine, and never hold 16 mappings at once.
import Glibc

/// Runs `body(i)` for i in 0..<count on that many threads of their own and waits for all.
public func runThreads(_ count: Int, _ body: @escaping (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let body: (Int) -> Void
        let index: Int
        init(_ body: @escaping (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    if count == 1 {
        body(0)
        return
    }
    var threads: [pthread_t] = []
    for i in 0..<count {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        let created = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body(box.index)
            return nil
        }, box)
        if created == 0 {
            threads.append(thread)
        } else {
            Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body(i)
        }
    }
    for thread in threads { pthread_join(thread, nil) }
}
