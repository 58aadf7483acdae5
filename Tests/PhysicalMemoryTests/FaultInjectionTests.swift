import Dispatch
import PhysicalMemory
import Testing

@Suite struct FaultInjectionTests {
    @Test func timesBelowMinusOneCountsOnAndWrapsAsTheKernelsAtomic() {
        // debugfs takes any int for times; should_fail() decrements whatever is not -1
        // (atomic_dec_not_zero()), so INT_MIN + 1 fails, then INT_MIN wraps to INT_MAX.
        let fault = FaultInjection(name: "fail_test")
        var attributes = fault.attributes
        attributes.probability = 100
        attributes.times = Int32.min + 1
        fault.attributes = attributes
        #expect(fault.shouldFail(size: 1, noWarn: true))
        #expect(fault.attributes.times == Int32.min)
        #expect(fault.shouldFail(size: 1, noWarn: true))
        #expect(fault.attributes.times == Int32.max)
    }

    @Test func failTheNthAllocation() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        ram.faults.mode = .failNth(2)
        #expect(ram.allocPages(order: 0) != nil)
        #expect(ram.allocPages(order: 0) == nil)
        #expect(ram.allocPages(order: 0) != nil)
        #expect(ram.faults.injected == 1)
    }

    @Test func failAFraction() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        ram.faults.mode = .fraction(1, seed: 7)
        #expect((0..<10).allSatisfy { _ in ram.allocPages(order: 0) == nil })
        ram.faults.mode = .fraction(0, seed: 7)
        #expect((0..<10).allSatisfy { _ in ram.allocPages(order: 0) != nil })
        ram.faults.mode = .fraction(0.5, seed: 42)
        let failures = (0..<1000).filter { _ in ram.allocPages(order: 0) == nil }.count
        #expect(failures > 400 && failures < 600)
        // Failed allocations take nothing: 10 + (1000 - failures) pages are out.
        #expect(ram.unusedPages == 4095 + 12288 - 10 - (1000 - failures))
    }

    @Test func concurrentAllocAndFreeKeepTheCountsExact() throws {
        let ram = try PhysicalMemory(size: 256 << 20)
        let boot = ram.buddyInfo
        let threads = 4
        let rounds = 2000
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var held: [(PhysAddr, Int)] = []
            for i in 0..<rounds {
                let order = (i + thread) % 4
                if let phys = ram.allocPages(order: order) { held.append((phys, order)) }
                if i % 3 == 2, let (phys, order) = held.popLast() { ram.freePages(phys, order: order) }
            }
            for (phys, order) in held { ram.freePages(phys, order: order) }
        }
        ram.drainAllPages()
        #expect(ram.buddyInfo == boot)
        #expect(ram.log.texts().isEmpty)
    }
}
