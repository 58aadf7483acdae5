import ControlFS
@testable import FUSE
import Foundation
import Glibc
import Locking
import SystemPackage
import Testing

struct PollWindowTests {
    @Test func growsAfterShortSleepsAndShrinksAfterLongOnes() {
        var window = PollWindow(maximum: 50_000)
        #expect(window.nanoseconds == 0)
        // (ns the request came after the reader began waiting, whether it slept for it,
        // the window after): worked out from halt-polling's rule, grow x2 from 10 us to the
        // 50 us cap after a sleep shorter than the cap, halve after a longer one.
        let steps: [(waited: UInt64, slept: Bool, window: UInt64)] = [
            (30_000, true, 10_000), (30_000, true, 20_000), (30_000, true, 40_000),
            (45_000, true, 50_000),  // 80 us, capped
            (20_000, false, 50_000),  // found while polling: the window was right
            (1_000_000_000, true, 25_000), (1_000_000_000, true, 12_500),
            (1_000_000_000, true, 0),  // 6.25 us is below the 10 us start: stop polling
            (50_000, true, 10_000),  // exactly the cap counts as short: a 50 us poll would have caught it
        ]
        for step in steps {
            window.arrived(after: step.waited, slept: step.slept)
            #expect(window.nanoseconds == step.window, "after \(step)")
        }
    }
}

/// `wait` blocks its store until `open` is written (10 s at most, then ETIMEDOUT);
/// `entered` is signalled when a store starts waiting.
private func gateTree() -> (root: ControlDirectory, gate: DispatchSemaphore, entered: DispatchSemaphore) {
    let root = ControlDirectory()
    let gate = DispatchSemaphore(value: 0), entered = DispatchSemaphore(value: 0)
    let device = root.directory("gate")
    device.add("wait", ControlAttribute(store: { _ throws(Errno) in
        entered.signal()
        guard gate.wait(timeout: .now() + 10) == .success else { throw .timedOut }
    }))
    device.add("open", ControlAttribute(store: { _ in gate.signal() }))
    device.add("pools", ControlAttribute(show: { "poolinfo - 0.1\nchain pool       373959 373984  128 11687\n" }))
    return (root, gate, entered)
}

@Suite(.serialized, .enabled(if: MountedTree.available, "needs /dev/fuse (CI has it, as root)"))
struct FUSELoopTests {
    @Test func aStoreThatSleepsDoesNotHoldUpTheTree() throws {
        let (root, _, entered) = gateTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        // Quiet for more than 100 ticks first: the watchdog sleeps until a request wakes it.
        usleep(300_000)
        let waiter = PthreadMutex<Int32?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let result = mount.write("gate/wait", "1")
            waiter.withLock { $0 = result }
            done.signal()
        }
        #expect(entered.wait(timeout: .now() + 10) == .success)
        // The reader is inside `wait`'s store: this write is read only if the watchdog has
        // given the reader's place to another worker; otherwise it queues behind the
        // sleeper until that times out, and both fail.
        #expect(mount.write("gate/open", "1") == 0)
        #expect(done.wait(timeout: .now() + 15) == .success)
        #expect(waiter.withLock { $0 } == 0)
        #expect(mount.server.loopStatistics.handoffs >= 1)
    }

    @Test func aRequestInFlightWhenTheLoopStopsIsStillAnswered() throws {
        let (root, gate, entered) = gateTree()
        let mount = try MountedTree(root)
        let waiter = PthreadMutex<Int32?>(nil)
        let written = DispatchSemaphore(value: 0), stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let result = mount.write("gate/wait", "1")
            waiter.withLock { $0 = result }
            written.signal()
        }
        #expect(entered.wait(timeout: .now() + 10) == .success)
        Thread.detachNewThread {
            mount.stop()
            stopped.signal()
        }
        // The loop waits for the store before it unmounts: not stopped yet, not answered.
        #expect(stopped.wait(timeout: .now() + 0.3) == .timedOut)
        #expect(waiter.withLock { $0 } == nil)
        gate.signal()
        #expect(written.wait(timeout: .now() + 10) == .success)
        #expect(waiter.withLock { $0 } == 0)
        #expect(stopped.wait(timeout: .now() + 10) == .success)
    }

    @Test func aPollingReaderIsNotWokenForTheNextRequest() throws {
        // A 10 ms cap and a cat every millisecond: each time the reader sleeps for a request
        // its window doubles from 10 us, so after 8 sleeps (1.28 ms) the next cat comes while
        // it polls, and it stops being woken.
        let (root, _, _) = gateTree()
        let mount = try MountedTree(root, pollMicroseconds: 10_000)
        defer { mount.stop() }
        func cats(_ count: Int) {
            for _ in 0..<count {
                _ = mount.read("gate/pools")
                usleep(1_000)
            }
        }
        cats(20)
        let before = mount.server.loopStatistics
        cats(20)
        let after = mount.server.loopStatistics
        let served = after.requests - before.requests
        let wakeups = after.wakeups - before.wakeups, polled = after.polled - before.polled
        // Each cat is open, read, read (the 0 at the end) and release: 80 requests. A reader
        // that never polls is woken at least for each open, a millisecond after the last
        // release (21 wake-ups, tried); a gap stretched past the window by a loaded machine
        // costs one wake-up and doubles the window.
        #expect(served >= 80)
        #expect(wakeups < 10, "\(after)")
        #expect(polled > 0, "\(after)")
    }
}
