import Lib
import Synchronization
import SystemPackage
import Testing

@Suite struct StoreParsingTests {
    /// kstrtoull(s, 0): base from the prefix, the whole text a number (a leading '+' allowed).
    @Test(arguments: [("42", 42), ("+42", 42), ("0x2a", 42), ("0X2A", 42), ("052", 42), ("0", 0), ("18446744073709551615", UInt64.max)])
    func numbers(_ text: String, _ value: UInt64) throws {
        #expect(try StoreParsing.number(text) == value)
    }

    @Test(arguments: ["", " 1", "1 ", "-1", "0x", "08", "1.5", "18446744073709551616", "1k"])
    func notNumbers(_ text: String) {
        #expect(throws: Errno.invalidArgument) { try StoreParsing.number(text) }
    }

    /// memparse(): K, M and G are binary.
    @Test func sizes() throws {
        #expect(try StoreParsing.size("4K") == 4096)
        #expect(try StoreParsing.size("64m") == 64 << 20)
        #expect(try StoreParsing.size("2G") == 2 << 30)
        #expect(try StoreParsing.size("512") == 512)
        #expect(throws: Errno.invalidArgument) { try StoreParsing.size("2G", max: 1 << 30) }
        #expect(throws: Errno.invalidArgument) { try StoreParsing.size("K") }
    }

    @Test func words() {
        #expect(StoreParsing.words("  chain  128 16 ") == ["chain", "128", "16"])
    }
}

@Suite struct KtimeTests {
    /// 1.5 s and 2 ns: whole units, truncated.
    @Test func durationsInTheKernelsUnits() {
        let d = Duration.seconds(1) + .milliseconds(500) + .nanoseconds(2)
        #expect(d.nanoseconds == 1_500_000_002 && d.microseconds == 1_500_000)
        #expect(Duration.nanoseconds(999).microseconds == 0 && Duration.milliseconds(250).seconds == 0.25)
    }

    @Test func ndelayWaitsAtLeastThatLong() {
        let start = monotonicNs()
        ndelay(2_000_000)
        #expect(monotonicNs() - start >= 2_000_000)
    }

    /// Each index on a thread of its own: all 16 are in the body at once.
    @Test func runThreadsGivesEachItsThread() {
        let arrived = Atomic(0)
        let start = ContinuousClock.now
        runThreads(16) { _ in
            arrived.wrappingAdd(1, ordering: .relaxed)
            // None leaves before all have come: with fewer threads than indices this waits
            // out its 10 s and the count below is short.
            while arrived.load(ordering: .relaxed) < 16 && ContinuousClock.now - start < .seconds(10) {}
        }
        #expect(arrived.load(ordering: .relaxed) == 16 && ContinuousClock.now - start < .seconds(10))
    }
}

@Suite struct IntSqrtTests {
    @Test func intSqrtRoundsDown() {
        for (x, root) in [(0, 0), (1, 1), (2, 1), (3, 1), (4, 2), (15, 3), (16, 4), (UInt64.max, 0xFFFF_FFFF)] as [(UInt64, UInt64)] {
            #expect(intSqrt(x) == root)
        }
    }
}

// sched_setaffinity() and sched_getcpu() are GNU extensions the Glibc module does not
// export; their C signatures are called the same way under Swift's convention.
@_silgen_name("sched_setaffinity") private func sched_setaffinity_(_ pid: Int32, _ size: Int, _ mask: UnsafeRawPointer) -> Int32
@_silgen_name("sched_getaffinity") private func sched_getaffinity_(_ pid: Int32, _ size: Int, _ mask: UnsafeMutableRawPointer) -> Int32
@_silgen_name("sched_getcpu") private func sched_getcpu_() -> Int32

@Suite struct CPUTests {
    /// CPU.current reads cpu_id from the thread's rseq area, found from glibc's
    /// __rseq_offset: pinned to each CPU in turn, the thread must read that CPU, as
    /// sched_getcpu() does.
    @Test func theRSEQCPUIsTheOneTheThreadIsPinnedTo() throws {
        var saved = [UInt8](repeating: 0, count: 128)  // a cpu_set_t
        try #require(sched_getaffinity_(0, saved.count, &saved) == 0)
        defer { _ = sched_setaffinity_(0, saved.count, saved) }
        let allowed = (0..<(saved.count * 8)).filter { saved[$0 / 8] & (1 << ($0 % 8)) != 0 }
        for cpu in allowed.prefix(8) {
            var one = [UInt8](repeating: 0, count: 128)
            one[cpu / 8] = 1 << (cpu % 8)
            try #require(sched_setaffinity_(0, one.count, one) == 0)
            #expect(CPU.current == cpu && Int(sched_getcpu_()) == cpu, "pinned to \(cpu)")
        }
    }
}
