import Foundation
import Replay
import SWIOTLB
import Testing

/// A real 6.12 kernel's own trace (Fixtures/trace-*.txt: tools/dmaemu-record run inside
/// the guest around dmaemu_oracle.ko's maps and a dma pool, the pool through the
/// recorder's kprobes) replayed by dmaemu-replay's engine on the guest's machine: every
/// map must land in the slot the kernel's dma_map_page line names, the failed one must
/// fail, and the pool must take the pages the kernel's did.
@Suite struct TraceReplayOracleTests {
    @Test func theReplayTakesTheKernelsSlots() throws {
        let url = fixtureDirectory.appendingPathComponent("trace-6.12.117+deb12.txt")
        let text = try String(contentsOf: url, encoding: .utf8)
        var bytes = Array(text.utf8)
        var recording = try bytes.withUnsafeMutableBufferPointer { buffer throws(RecordingError) in
            try RecordingParser().parse(UnsafeBufferPointer(buffer))
        }
        #expect(recording.header.release == "6.12.117+deb12-amd64")
        #expect(recording.notReplayed.isEmpty)
        // Below 4 GiB of RAM this kernel prints no "mapped [mem ...]" line: the module said where the pool is.
        let place = try #require(text.split(separator: "\n").first { $0.hasPrefix("# oracle: swiotlb ") }).split(separator: " ")
        recording.header.swiotlbStart = UInt64(place[3].dropFirst(2), radix: 16)
        recording.header.swiotlbBytes = Int(place[4])! << IOTLB.shift
        var options = ReplayOptions()
        options.dynamic = false  // Debian's 6.12 is built without CONFIG_SWIOTLB_DYNAMIC
        let setup = ReplaySetup(recording: recording, options: options, base: nil)
        #expect(setup.swiotlb.force && setup.cpus == 1 && setup.swiotlb.nareas == 1)
        #expect(setup.swiotlb.bootAddress == recording.header.swiotlbStart)
        var replayed = ""
        let replayer = try Replayer(recording, setup: setup) { replayed += $0 }
        let result = replayer.run()

        func maps(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter { $0.contains(": dma_map_page: ") || $0.contains(": dma_unmap_page: ") }
                .map { $0[$0.range(of: ": dma_")!.lowerBound...] }
        }
        let recorded = maps(text)
        #expect(recorded.count == 41)
        #expect(maps(replayed) == recorded)
        #expect(result.bounces == result.recordedBounces)
        #expect(result.full.count == 1 && result.full[0].size == 266_240)
        #expect(result.unmatched == 0 && result.outstanding == 0)
        // debugfs at the end: nothing left mapped (its hiwater is the whole boot's, the other families' too).
        #expect(result.swiotlb?.used == recording.header.debugfs["io_tlb_used"])
        // The kernel's pool took three pages (its dma_alloc lines); so does the stack generation.
        let pool = try #require(result.pools.first { $0.name == "oracle" })
        #expect(result.poolPages == 6)
        #expect(pool.generations["stack"]?.pages == 3)
    }
}
