import Block
import Drivers
import Foundation
import Lib
import PhysicalMemory
import SWIOTLB
import Testing
import TestSupport

/// The guest's direct dd workloads on QEMU's NVMe disk (Fixtures/nvme-*.txt), as `io` jobs
/// on dmaemu's nvme driver on the machine the guest booted: 1 GiB, swiotlb=force with its
/// default 64 MiB in one area, no CONFIG_SWIOTLB_DYNAMIC, a 64 MiB disk, the kernel's pool
/// generation. The queue's limits, then after each workload the pools file and
/// io_tlb_used (and on 6.12 the hiwater, reset before each) must be what the kernel
/// printed: what one request of each size takes from the descriptor pools, and how a bio
/// larger than a request is split and put in flight.
@Suite struct NVMeOracleTests {
    struct Workload {
        var name: String
        var job: String
        var lines: [String] = []
    }

    /// The limits line and each workload's P and D lines; `dd ... bs=B count=N` becomes
    /// the `io` job `read B count=N` (or write).
    static func workloads(_ file: String) throws -> (limits: String, [Workload]) {
        let text = try String(contentsOf: fixtureDirectory.appendingPathComponent(file), encoding: .utf8)
        var limits = "", all: [Workload] = []
        for line in text.split(separator: "\n").map(String.init) {
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "limits": limits = line
            case "experiment": all.append(Workload(name: words[1], job: ""))
            case "script":
                let operands = Dictionary(words.compactMap { word -> (String, String)? in
                    let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                    return parts.count == 2 ? (parts[0], parts[1]) : nil
                }, uniquingKeysWith: { a, _ in a })
                let write = operands["of"] == "/dev/nvme0n1"
                all[all.count - 1].job = "\(write ? "write" : "read") \(operands["bs"]!) count=\(operands["count"]!)"
            case "P", "D", "failed", "E": all[all.count - 1].lines.append(line)
            default: break
            }
        }
        return (limits, all)
    }

    @Test(arguments: [("6.1.0-57", KernelVersion.v6_1), ("6.12.117+deb12", .v6_12)])
    func theGuestsWorkloadsLeaveTheSamePools(release: String, kernel: KernelVersion) throws {
        let (limits, workloads) = try Self.workloads("nvme-\(release).txt")
        #expect(workloads.count >= 4)
        let ram = try PhysicalMemory(size: 1 << 30)
        var config = SWIOTLBConfig()
        config.force = true
        config.dynamic = false
        config.kernel = kernel
        let swiotlb = try #require(IOTLBMem(ram: ram, config: config, cpus: 1))
        var platform = Platform(ram: ram, swiotlb: swiotlb)
        platform.dmapoolAlgorithm = kernel == .v6_1 ? .legacy : .stack
        let devices = Devices(platform: platform, drivers: BuiltinDrivers.all)
        let nvme = try devices.add("nvme 0000:00:02.0 capacity=64M")
        let queue = try #require(nvme.queue)
        let l = queue.limits
        #expect(limits == "limits max_hw_sectors_kb \(l.maxTransfer >> 10) max_sectors_kb \(l.maxSectorsBytes >> 10) "
            + "max_segments \(l.maxSegments) max_segment_size \(l.maxSegmentSize) virt_boundary_mask \(l.virtBoundaryMask)")
        for workload in workloads {
            if kernel != .v6_1 { try swiotlb.setUsedHiwater(0) }
            try nvme.io(workload.job)
            var lines = try #require(nvme.device.pools).split(separator: "\n").map { "P " + $0 }
            lines.append("D io_tlb_used \(swiotlb.used)")
            if kernel != .v6_1 { lines.append("D io_tlb_used_hiwater \(swiotlb.usedHiwater)") }
            #expect(lines == workload.lines, "\(workload.name)")
        }
    }
}
