import DMA
import DMAPool
import Lib
import PhysicalMemory
import Replay
import SWIOTLB
import Testing
import Trace

/// A small deterministic generator: the workload must be the same on every run.
struct XorShift {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Int(state % UInt64(bound))
    }
}

/// dmaemu's own trace of an irregular workload on a traced machine (2 CPUs, 2 MiB of
/// swiotlb in 2 areas, not dynamic, a device with 32-bit masks), and the machine's
/// counters at its end: what a replay of that trace on the same parameters must give back.
struct TracedWorkload {
    let ram: PhysicalMemory
    let mem: IOTLBMem
    let device: Device
    let tracer: Tracer
    var text = ""
    var bounces = 0

    init() throws {
        ram = try PhysicalMemory(size: 5 << 30)
        var config = SWIOTLBConfig()
        config.nslabs = 1024
        config.nareas = 2
        config.dynamic = false
        mem = try #require(IOTLBMem(ram: ram, config: config, cpus: 2))
        tracer = Tracer(kernel: .v6_12, cpus: 2)
        tracer.enable(tracer.events, true)
        device = Device(name: "0000:00:05.0", ram: ram, swiotlb: mem, tracer: tracer)
        device.driverName = "mpt3sas"
    }

    mutating func run(steps: Int) throws {
        var random = XorShift(state: 0x9e37_79b9_7f4a_7c15)
        // Buffers above 4 GiB, 256 KiB each, so every map bounces; some below, which do not.
        var buffers: [PhysAddr] = []
        for i in 0..<48 { buffers.append(try #require(ram.allocPages(order: 6, limit: i % 8 == 7 ? 4 << 30 : .max))) }
        let sizes = [512, 2048, 4096, 8192, 65536, 200_000, 262_144]
        let directions: [DMADirection] = [.toDevice, .fromDevice, .bidirectional]
        var live: [(dma: DMAAddr, size: Int, direction: DMADirection, buffer: Int)] = []
        var free = Array(buffers.indices)
        var lists: [[ScatterEntry]] = []
        var blocks: [(cpu: UnsafeMutableRawPointer, dma: DMAAddr)] = []
        var coherent: [(cpu: UnsafeMutableRawPointer, dma: DMAAddr, size: Int)] = []
        let pool = try DMAPool(name: "reply post", device: device, size: 96, align: 16, boundary: 4096)
        for _ in 0..<steps {
            let cpu = random.next(2)
            try CPU.acting(as: cpu) {
                switch random.next(10) {
                case 0...3 where !free.isEmpty:
                    let buffer = free.remove(at: random.next(free.count))
                    let size = sizes[random.next(sizes.count)]
                    let direction = directions[random.next(3)]
                    if let dma = device.mapSingle(buffers[buffer] + UInt64(random.next(4) * 512), size: size, direction) {
                        live.append((dma, size, direction, buffer))
                        device.syncSingleForCPU(dma, size: size, direction)
                    } else {
                        free.append(buffer)
                    }
                case 4...6 where !live.isEmpty:
                    let map = live.remove(at: random.next(live.count))
                    device.unmapSingle(map.dma, size: map.size, map.direction)
                    free.append(map.buffer)
                case 7 where free.count >= 3 && lists.count < 4:
                    var entries = (0..<3).map { _ in ScatterEntry(phys: buffers[free.removeLast()], length: 16384) }
                    let mapped = entries.withUnsafeMutableBufferPointer { device.mapSG($0, .fromDevice) }
                    if mapped > 0 {
                        entries.withUnsafeMutableBufferPointer { device.syncSG($0, .fromDevice, forDevice: false) }
                        lists.append(entries)
                    }
                case 7 where !lists.isEmpty:
                    var entries = lists.removeFirst()
                    entries.withUnsafeMutableBufferPointer { device.unmapSG($0, .fromDevice) }
                    for entry in entries { free.append(try #require(buffers.firstIndex(of: entry.phys))) }
                case 8:
                    if blocks.count < 40, let block = pool.alloc(.atomic) {
                        blocks.append(block)
                    } else if !blocks.isEmpty {
                        let block = blocks.remove(at: random.next(blocks.count))
                        pool.free(block.cpu, dma: block.dma)
                    }
                default:
                    if coherent.count < 3, let block = device.allocCoherent(size: 8192) {
                        coherent.append((block.cpu, block.dma, 8192))
                    } else if let block = coherent.popLast() {
                        device.freeCoherent(size: block.size, cpu: block.cpu, dma: block.dma)
                    }
                }
            }
        }
        text = tracer.text(tracer.entries())
        bounces = text.split(separator: "\n").filter { $0.dropFirst(51).hasPrefix("swiotlb_bounced:") }.count
    }
}

/// The streaming events' lines: the ones whose every field the replay must give back
/// byte for byte (coherent and pool blocks come from this machine's own page allocator).
/// A replayed swiotlb_bounced is fired by its map, so it carries the map's time: its
/// timestamp column is left out.
func streamingLines(_ text: String) -> [String] {
    let events = ["dma_map_page:", "dma_unmap_page:", "dma_map_sg:", "dma_unmap_sg:", "dma_sync_single_for_cpu:", "dma_sync_sg_for_cpu:"]
    return text.split(separator: "\n").compactMap { line in
        let event = String(line.dropFirst(51).prefix { $0 != " " })
        if event == "swiotlb_bounced:" { return String(line.prefix(36) + line.dropFirst(51)) }
        return events.contains(event) ? String(line) : nil
    }
}

/// Trace lines grouped by their CPU column ("[001]"), each group in its order.
func byCPU(_ lines: [String]) -> [Substring: [String]] {
    Dictionary(grouping: lines) { line in
        guard let open = line.firstIndex(of: "["), let close = line[open...].firstIndex(of: "]") else { return "" }
        return line[open...close]
    }
}

@Suite struct RoundTripTests {
    func sameMachine() -> ReplayOptions {
        var options = ReplayOptions()
        options.ramBytes = 5 << 30
        options.swiotlbBytes = 2 << 20
        options.areas = 2
        options.dynamic = false
        options.cpus = 2
        return options
    }

    @Test func aReplayOfDmaemusOwnTraceGivesBackItsCountersAndSlots() throws {
        var workload = try TracedWorkload()
        try workload.run(steps: 3000)
        let recording = try parse(workload.text)
        #expect(recording.notReplayed.isEmpty)
        let setup = ReplaySetup(recording: recording, options: sameMachine(), base: nil)
        var replayTrace = ""
        let replayer = try Replayer(recording, setup: setup) { replayTrace += $0 }
        let result = replayer.run()
        let swiotlb = try #require(result.swiotlb)
        #expect(swiotlb.used == workload.mem.used)
        #expect(swiotlb.hiwater == workload.mem.usedHiwater)
        #expect(swiotlb.full == workload.mem.fullMaps.count)
        #expect(workload.mem.fullMaps.count > 0, "the workload should overflow 2 MiB now and then")
        #expect(result.recordedBounces == workload.bounces)
        #expect(result.bounces == workload.bounces)
        #expect(result.unmatched == 0)
        #expect(result.failedHere == 0)
        // Every streaming line again: the same slots, on the same CPUs, as the same tasks at the same times.
        // Compared CPU by CPU: each CPU's ring keeps its order, but two CPUs' lines stamped
        // in the same microsecond have none between them in the text.
        let original = streamingLines(workload.text)
        #expect(original.count > 1000)
        let replayed = streamingLines(replayTrace)
        #expect(replayed.count == original.count)
        let (originalByCPU, replayedByCPU) = (byCPU(original), byCPU(replayed))
        #expect(originalByCPU.keys.sorted() == ["[000]", "[001]"] && replayedByCPU.keys.sorted() == originalByCPU.keys.sorted())
        for (cpu, lines) in originalByCPU {
            for (a, b) in zip(lines, replayedByCPU[cpu] ?? []) where a != b {
                Issue.record("recorded: \(a)\nreplayed: \(b)")
                break
            }
        }
        // The pool's blocks were replayed on all three generations.
        let pool = try #require(result.pools.first { $0.name == "reply post" })
        #expect(pool.generations.keys.sorted() == ["legacy", "rbtree", "stack"])
        #expect(pool.peakActive > 0)
    }

    @Test func anotherAreaCountMovesTheSlots() throws {
        var workload = try TracedWorkload()
        try workload.run(steps: 400)
        let recording = try parse(workload.text)
        var options = sameMachine()
        options.areas = 1
        var replayTrace = ""
        let result = try Replayer(recording, setup: ReplaySetup(recording: recording, options: options, base: nil)) { replayTrace += $0 }.run()
        #expect(result.swiotlb?.slots == 1024)
        // CPU 1's maps took area 1 (slot 512 on) on the traced machine; with one area they start at slot 0.
        #expect(streamingLines(replayTrace) != streamingLines(workload.text))
    }
}
