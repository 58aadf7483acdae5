import DMA
import Foundation
import Lib
import PhysicalMemory
import SWIOTLB
import Testing

/// The guest's streaming maps (Fixtures/swiotlb-*.txt) on dmaemu's swiotlb: the machine
/// the guest booted (1 GiB, swiotlb=force, one CPU and so one area, the default 64 MiB,
/// no CONFIG_SWIOTLB_DYNAMIC), the experiments one after another on it as insmod and
/// rmmod ran them, each on a platform device of its own. Every line the module and the
/// kernel printed must come out the same: each map's slot counted from the resync map's
/// and its offset in the slot, each "swiotlb buffer is full" with its used count, and
/// debugfs's io_tlb_used and io_tlb_used_hiwater after each script.
struct SWIOTLBOracle {
    let ram: PhysicalMemory
    let mem: IOTLBMem

    init(kernel: KernelVersion) throws {
        ram = try PhysicalMemory(size: 1 << 30)
        var config = SWIOTLBConfig()
        config.force = true
        config.dynamic = false
        config.kernel = kernel
        mem = try #require(IOTLBMem(ram: ram, config: config, cpus: 1))
    }

    /// dmaemu_oracle.c's streaming verbs; the lines it and the kernel would print.
    func run(_ script: String, debugfsHiwater: Bool) -> [String] {
        let device = Device(name: "dmaemu_oracle.0", ram: ram, bus: "platform", swiotlb: mem, segmentBoundaryMask: .max)
        device.dmaMask = dmaBitMask(64)
        var out: [String] = []
        var maps: [(phys: PhysAddr, order: Int, dma: DMAAddr?, size: Int)?] = []
        var slotBase: DMAAddr = 0
        func map(_ size: Int, _ offset: Int) -> DMAAddr? {
            let order = pageOrder(size + offset)
            let phys = ram.allocPages(order: order)!
            let seen = ram.log.texts().count
            let dma = device.mapSingle(phys + PhysAddr(offset), size: size, .toDevice)
            for line in ram.log.texts().dropFirst(seen) {
                if let full = line.range(of: "swiotlb buffer is full") { out.append("K " + line[full.lowerBound...]) }
            }
            maps.append((phys, order, dma, size))
            return dma
        }
        func unmap(_ n: Int) {
            guard let m = maps[n] else { return }
            if let dma = m.dma { device.unmapSingle(dma, size: m.size, .toDevice) }
            ram.freePages(m.phys, order: m.order)
            maps[n] = nil
        }
        for step in script.split(separator: ";") {
            let words = step.split(separator: " ")
            let numbers = words.dropFirst().compactMap { Int($0) }
            switch words[0] {
            case "device": device.minAlignMask = UInt64(numbers[0])
            case "sync":
                slotBase = map(256 << 10, 0)!
                unmap(maps.count - 1)
                out.append("S")
            case "map":
                if let dma = map(numbers[0], numbers[1]) {
                    out.append("M \(maps.count - 1) \((Int64(bitPattern: dma) - Int64(bitPattern: slotBase)) >> 11) \(dma & 2047)")
                } else {
                    out.append("M \(maps.count - 1) failed")
                }
            case "unmap": unmap(numbers[0])
            default: Issue.record("unknown step \(step)")
            }
        }
        out.append("D io_tlb_used \(mem.used)")
        if debugfsHiwater { out.append("D io_tlb_used_hiwater \(mem.usedHiwater)") }
        for n in maps.indices { unmap(n) }  // rmmod
        return out
    }
}

/// The experiments of a fixture: each one's script and the lines printed for it.
func scripts(_ file: String) throws -> [(name: String, script: String, lines: [String])] {
    let text = try String(contentsOf: fixtureDirectory.appendingPathComponent(file), encoding: .utf8)
    var all: [(name: String, script: String, lines: [String])] = []
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        if line.hasPrefix("experiment ") {
            all.append((String(line.dropFirst(11)), "", []))
        } else if line.hasPrefix("script ") {
            all[all.count - 1].script = String(line.dropFirst(7))
        } else {
            all[all.count - 1].lines.append(String(line))
        }
    }
    return all
}

@Suite struct SWIOTLBOracleTests {
    @Test(arguments: [("swiotlb-6.1.0-57.txt", KernelVersion.v6_1, 5), ("swiotlb-6.12.117+deb12.txt", .v6_12, 6)])
    func everyMapTakesTheSlotsTheKernelGave(_ file: String, _ kernel: KernelVersion, _ count: Int) throws {
        let oracle = try SWIOTLBOracle(kernel: kernel)
        let all = try scripts(file)
        #expect(all.count == count)
        for experiment in all {
            // 6.1 has no io_tlb_used_hiwater.
            #expect(oracle.run(experiment.script, debugfsHiwater: kernel >= .v6_12) == experiment.lines, "\(experiment.name)")
        }
    }

    /// The map 6.1 never returns from (the oracle cannot run it there: the guest hangs).
    @Test func sixOneWouldLoopForEverAndTheMapFailsInstead() throws {
        let oracle = try SWIOTLBOracle(kernel: .v6_1)
        #expect(oracle.run("device 4095;sync;map 262144 2048;map 4096 0", debugfsHiwater: false) == [
            "S", "K swiotlb buffer is full (sz: 262144 bytes), total 32768 (slots), used 0 (slots)", "M 1 failed", "M 2 128 0",
            "D io_tlb_used 2",
        ])
        #expect(oracle.ram.log.texts().contains { $0.hasPrefix("swiotlb_do_find_slots() of Linux 6.1 never returns") })
    }
}
