import Foundation
import Locking
import Synchronization
import Testing

/// Final classes hold the non-copyable locks so that threads can share them.
final class Shared<Lock: ~Copyable>: @unchecked Sendable {  // the lock inside is the synchronisation
    let lock: Lock
    init(_ lock: consuming Lock) { self.lock = lock }
}

/// `threads` threads of `rounds` increments each, started together.
func hammer(threads: Int, rounds: Int, _ increment: @escaping @Sendable () -> Void) {
    let group = DispatchGroup()
    for _ in 0..<threads {
        group.enter()
        Thread.detachNewThread {
            for _ in 0..<rounds { increment() }
            group.leave()
        }
    }
    group.wait()
}

@Suite struct LockTests {
    /// 4 threads x 100000 increments, each a read and a write that a lost update would
    /// show: exactly 400000.
    @Test func aSpinLockExcludes() {
        let counter = Shared(SpinLock(0))
        hammer(threads: 4, rounds: 100_000) { counter.lock.withLock { $0 += 1 } }
        #expect(counter.lock.withLock { $0 } == 400_000)
    }

    @Test func aPthreadMutexExcludes() {
        let counter = Shared(PthreadMutex(0))
        hammer(threads: 4, rounds: 100_000) { counter.lock.withLock { $0 += 1 } }
        #expect(counter.lock.withLock { $0 } == 400_000)
    }

    struct Refused: Error {}

    /// A body that throws leaves the lock free and the value as it changed it.
    @Test func aThrowingBodyUnlocks() {
        let spin = SpinLock(1), mutex = PthreadMutex(1)
        #expect(throws: Refused.self) { try spin.withLock { (value) throws(Refused) in value = 2; throw Refused() } }
        #expect(throws: Refused.self) { try mutex.withLock { (value) throws(Refused) in value = 2; throw Refused() } }
        #expect(spin.withLock { $0 } == 2 && mutex.withLock { $0 } == 2)
    }

    /// A waiter sleeps until signalled; one that is not signalled returns at its timeout.
    @Test func aConditionLockWakesItsWaiter() {
        let condition = ConditionLock()
        let ready = Shared(Atomic(false))
        let woken = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            condition.lock()
            while !ready.lock.load(ordering: .acquiring) { condition.wait() }
            condition.unlock()
            woken.signal()
        }
        usleep(50_000)
        #expect(woken.wait(timeout: .now()) == .timedOut)
        condition.lock()
        ready.lock.store(true, ordering: .releasing)
        condition.signal()
        condition.unlock()
        #expect(woken.wait(timeout: .now() + 10) == .success)

        let start = ContinuousClock.now
        condition.lock()
        condition.wait(seconds: 1)
        condition.unlock()
        #expect(ContinuousClock.now - start >= .milliseconds(900))
    }

    /// Values start on cache lines of their own: a 24-byte value strides 64 bytes.
    @Test func cacheLinesAreNotShared() {
        let (base, stride) = CacheLine.allocate((Int, Int, Int).self, count: 3)
        defer { base.deallocate() }
        #expect(stride == 64 && Int(bitPattern: base) % 64 == 0)
        #expect(CacheLine.allocate((Int, Int, Int, Int, Int, Int, Int, Int, Int).self, count: 1).stride == 128)
        let counter = PaddedCounter(5)
        counter.raise(to: 3)
        #expect(counter.load() == 5)
        counter.raise(to: 9)
        #expect(counter.add(1) == 10)
    }
}
