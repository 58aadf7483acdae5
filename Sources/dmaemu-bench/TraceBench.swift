// `dmaemu-bench trace`: what tracing costs and how fast a recording replays.
//  - A bounced 4 KiB map+unmap pair in a loop with tracing off, then with every dma and
//    swiotlb event on (three events a pair: swiotlb_bounced, dma_map_page,
//    dma_unmap_page): the difference per event, beside trace_limit.c's ring write.
//  - A recording of a million events (a bounce, its map, a sync and an unmap, on two
//    CPUs, 64 maps in flight) parsed, then replayed: events per second each, beside
//    trace_limit.c's parse of the same kind of lines and the 10^6/s target.
import ArgumentParser
import DMA
import Foundation
import Lib
import PhysicalMemory
import Replay
import SWIOTLB
import Trace

struct TraceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace", abstract: "Tracing's cost per event, and replay's events per second.")

    @Option(help: "Seconds per map loop (1...60).") var seconds = 2
    @Option(help: "Events in the replayed recording (1000...10000000).") var events = 1_000_000
    @Option(help: "A compiled tools/limits/trace_limit.c to run beside.") var limit: String?
    @Flag(help: "The result as one line of JSON.") var json = false

    func validate() throws {
        guard (1...60).contains(seconds) else { throw ValidationError("--seconds: 1...60") }
        guard (1000...10_000_000).contains(events) else { throw ValidationError("--events: 1000...10000000") }
    }

    func run() throws {
        let result = try measure()
        if json { return try BenchJSON.print(result) }
        print(Report.trace(result), terminator: "")
    }

    func measure() throws -> TraceResult {
        Progress.shared.begin("trace")
        let ram = try PhysicalMemory()
        var config = SWIOTLBConfig()
        config.dynamic = false
        guard let mem = IOTLBMem(ram: ram, config: config) else { throw ValidationError("no swiotlb") }
        let tracer = Tracer(kernel: .v6_12)
        let device = Device(name: "0000:00:05.0", ram: ram, swiotlb: mem, tracer: tracer)
        guard let buffer = ram.allocPages(order: 0) else { throw ValidationError("no page") }
        let off = pairCost(device, buffer)
        tracer.enable(tracer.events, true)
        let on = pairCost(device, buffer)
        tracer.enable(tracer.events, false)

        let text = Self.recording(events: events)
        var bytes = Array(text.utf8)
        let parseStart = monotonicNs()
        let recording = try bytes.withUnsafeMutableBufferPointer { buffer throws(RecordingError) in
            try RecordingParser().parse(UnsafeBufferPointer(buffer))
        }
        let parseNs = monotonicNs() - parseStart
        bytes = []
        var options = ReplayOptions()
        options.swiotlbBytes = 4 << 20
        options.dynamic = false
        options.cpus = 2
        let replayer = try Replayer(recording, setup: ReplaySetup(recording: recording, options: options, base: nil))
        let replayStart = monotonicNs()
        let replayed = replayer.run()
        let replayNs = monotonicNs() - replayStart
        guard replayed.unmatched == 0, replayed.full.isEmpty else {
            throw ValidationError("the replay did not match its recording: \(replayed.unmatched) unmatched, \(replayed.full.count) full")
        }
        var result = TraceResult(
            pairOffNs: off, pairOnNs: on, eventsPerPair: 3, events: recording.ops.count,
            parseEventsPerS: Double(recording.ops.count) / (Double(parseNs) / 1e9),
            replayEventsPerS: Double(recording.ops.count) / (Double(replayNs) / 1e9))
        if let limit {
            let runs = try runLimit(limit, [], as: TraceLimitRun.self)
            result.limitRingWriteNs = runs.first { $0.what == "ring_write" }?.nsPerEvent
            result.limitParseEventsPerS = runs.first { $0.what == "parse" }?.eventsPerS
        }
        return result
    }

    /// Bounced map+unmap pairs in a loop for `seconds` on one thread.
    func pairCost(_ device: Device, _ buffer: PhysAddr) -> Double {
        let start = monotonicNs()
        var pairs = 0
        while monotonicNs() - start < UInt64(seconds) * 1_000_000_000 {
            for _ in 0..<1000 {
                guard let dma = device.mapSingle(buffer, size: 4096, .toDevice) else { return .nan }
                device.unmapSingle(dma, size: 4096, .toDevice)
            }
            pairs += 1000
        }
        return Double(monotonicNs() - start) / Double(pairs)
    }

    /// A trace of `events` lines as a 6.12 host prints them: 4 KiB writes from a device with
    /// a 32-bit mask, each bounced, mapped, synced and unmapped 64 writes later.
    static func recording(events: Int) -> String {
        var text = ""
        text.reserveCapacity(events * 150)
        let inFlight = 64
        var time: UInt64 = 100_000_000
        func line(_ cpu: Int, _ event: String) {
            time += 1
            let secs = String(time / 1_000_000), usecs = String(time % 1_000_000)
            text += "             fio-\(1000 + cpu)    [00\(cpu)] ..... \(secs)."
            text += String(repeating: "0", count: 6 - usecs.count) + usecs + ": " + event + "\n"
        }
        func phys(_ i: Int) -> String { String(0x1_0000_0000 + UInt64(i % 4096) * 4096, radix: 16) }
        func slot(_ i: Int) -> String { String(0x1_000_000 + UInt64(i % (2 * inFlight)) * 4096, radix: 16) }
        let writes = events / 4
        for i in 0..<(writes + inFlight) {
            let cpu = i & 1
            if i < writes {
                line(cpu, "swiotlb_bounced: dev_name: 0000:00:05.0 dma_mask=ffffffff dev_addr=\(phys(i)) size=4096 NORMAL")
                line(cpu, "dma_map_page: 0000:00:05.0 dir=TO_DEVICE dma_addr=\(slot(i)) size=4096 phys_addr=\(phys(i)) attrs=")
                line(cpu, "dma_sync_single_for_device: 0000:00:05.0 dir=TO_DEVICE dma_addr=\(slot(i)) size=4096")
            }
            if i >= inFlight {
                line(cpu, "dma_unmap_page: 0000:00:05.0 dir=TO_DEVICE dma_addr=\(slot(i - inFlight)) size=4096 attrs=")
            }
        }
        return text
    }
}

/// One line of tools/limits/trace_limit.c.
struct TraceLimitRun: Codable {
    var what: String
    var nsPerEvent: Double?
    var eventsPerS: Double?
}
