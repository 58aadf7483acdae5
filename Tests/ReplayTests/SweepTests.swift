import Replay
import Testing

/// The question the replay answers: which swiotlb would have held this host's peak. 40
/// writes of 256 KiB in flight hold 40 * 128 = 5120 slots of 2 KiB (10 MiB): 4 MiB (2048
/// slots) overflows from the 17th on, 16 MiB (8192 slots) holds them all.
@Suite struct SweepTests {
    func options() -> ReplayOptions {
        var options = ReplayOptions()
        options.cpus = 1
        options.areas = 1
        options.dynamic = false
        options.ramBytes = 8 << 30
        return options
    }

    @Test func fourMiBOverflowsAndSixteenHoldsIt() throws {
        let recording = try parse(concurrentWrites(count: 40))
        let rows = try ReplaySweep.run(recording, options: options(), base: nil, axes: [SweepAxis("swiotlb=1M,4M,16M,64M")])
        #expect(rows.map(\.swiotlbBytes) == [1 << 20, 4 << 20, 16 << 20, 64 << 20])
        // 1 MiB is 512 slots: 4 maps fit, 36 fail; 4 MiB: 16 fit, 24 fail.
        #expect(rows.map(\.full) == [36, 24, 0, 0])
        #expect(rows.map(\.hiwater) == [512, 2048, 5120, 5120])
        #expect(rows.map(\.smallestThatFits) == [false, false, true, false])
        let marked = ReplaySweep.text(rows).split(separator: "\n").filter { $0.hasSuffix("<- smallest that never overflowed") }
        #expect(marked.count == 1 && marked[0].hasPrefix("16 MiB "))
    }

    @Test func eachOverflowIsNamedWithItsLine() throws {
        let recording = try parse(concurrentWrites(count: 40))
        var options = options()
        options.swiotlbBytes = 4 << 20
        let setup = ReplaySetup(recording: recording, options: options, base: nil)
        let result = try Replayer(recording, setup: setup).run()
        #expect(result.full.count == 24)
        // The 17th write's dma_map_page is line 2 * 17 (each follows its swiotlb_bounced).
        #expect(result.full.first?.line == 34)
        #expect(result.full.first?.message == "0000:00:05.0: swiotlb buffer is full (sz: 262144 bytes), total 2048 (slots), used 2048 (slots)")
        #expect(result.full.last?.line == 80)
        // Their unmaps find nothing to unmap here and are not issued.
        #expect(result.unmatched == 0)
        #expect(result.swiotlb?.used == 0)
        // swiotlb_bounced fires before the slot search (swiotlb_map()), so every one counts.
        #expect(result.bounces == 40)
        #expect(result.recordedBounces == 40)
    }

    @Test func dynamicPoolsTakeTheOverflow() throws {
        let recording = try parse(concurrentWrites(count: 40))
        let rows = try ReplaySweep.run(recording, options: options(), base: nil, axes: [SweepAxis("swiotlb=4M"), SweepAxis("dynamic=0,1")])
        #expect(rows.map(\.dynamic) == [false, true])
        #expect(rows[0].full == 24)
        // CONFIG_SWIOTLB_DYNAMIC: each map that finds no slot gets a transient pool of its own.
        #expect(rows[1].full == 0)
        #expect(rows[1].transientPools + rows[1].poolsAdded > 0)
    }

    @Test(arguments: ["swiotlb=", "swiotlb=4X", "areas=0", "dynamic=2", "size=4M", "swiotlb"])
    func badAxesAreRefused(_ text: String) {
        #expect(throws: SweepError.self) { try SweepAxis(text) }
    }
}
