import ControlFS
@testable import FUSE
import Foundation
import Glibc
import Locking
import SystemPackage
import Testing

struct PollWindowTests {
    @Test func growsAfterShortSleepsAndShrinksAfterLongOnes() {
        var window = PollWindow()
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

    @Test func backToBackRequestsFindTheReaderAwake() throws {
        let (root, _, _) = gateTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        let before = mount.server.loopStatistics
        for _ in 0..<200 { _ = mount.read("gate/pools") }
        let after = mount.server.loopStatistics
        let served = after.requests - before.requests, polled = after.polled - before.polled
        // Each cat is open, read, read (the 0 at the end) and release; the first lookup too.
        #expect(served >= 800)
        // Most of them come within microseconds of the last reply, inside the poll window;
        // a reader that never polled would count none. How many depends on the load: alone
        // on this VM 790 of 805, beside the other suites on two cores as few as 39.
        #expect(polled > 0, "\(after)")
    }
}
