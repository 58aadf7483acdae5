import Block
import Drivers
import Foundation
import Lib
import PhysicalMemory
import SWIOTLB
import Testing
import TestSupport

/// The guest's direct dd workloads on QEMU's disks (Fixtures/nvme-*.txt on its NVMe
/// controller, Fixtures/sas-*.txt on its megasas), as `io` jobs on dmaemu's nvme and
/// megaraid_sas drivers on the machine the guest booted: 1 GiB, swiotlb=force with its
/// default 64 MiB in one area, no CONFIG_SWIOTLB_DYNAMIC, 64 MiB disks, the kernel's pool
/// generation. The queue's limits and, after each workload, the pools file and io_tlb_used
/// (and on 6.12 the hiwater, reset before each) must be what the kernel printed: what
/// probe allocates, what one request of each size takes from the pools, and how a bio
/// larger than a request is split and put in flight.
@Suite struct DiskOracleTests {
    struct Workload {
        var name: String
        /// The `io` job, nil for a command that only probes.
        var job: String?
        var lines: [String] = []
    }

    /// The limits line and each workload's P and D lines; `dd ... bs=B count=N` on `disk`
    /// becomes the `io` job `read B count=N` (or write), `/aio-read disk B N D` the job
    /// `read B count=N iodepth=D`.
    static func workloads(_ file: String, disk: String) throws -> (limits: String, [Workload]) {
        let text = try String(contentsOf: fixtureDirectory.appendingPathComponent(file), encoding: .utf8)
        var limits = "", all: [Workload] = []
        for line in text.split(separator: "\n").map(String.init) {
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "limits": limits = line
            case "experiment": all.append(Workload(name: words[1]))
            case "script" where words.count > 1 && words[1] == "dd":
                let operands = Dictionary(words.compactMap { word -> (String, String)? in
                    let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                    return parts.count == 2 ? (parts[0], parts[1]) : nil
                }, uniquingKeysWith: { a, _ in a })
                all[all.count - 1].job = "\(operands["of"] == disk ? "write" : "read") \(operands["bs"]!) count=\(operands["count"]!)"
            case "script" where words.count == 6 && words[1] == "/aio-read" && words[2] == disk:
                // aio-read DEVICE BYTES COUNT DEPTH (tools/oracle/aio-read.c): io's iodepth.
                all[all.count - 1].job = "read \(words[3]) count=\(words[4]) iodepth=\(words[5])"
            case "P", "D", "failed", "E": all[all.count - 1].lines.append(line)
            default: break
            }
        }
        return (limits, all)
    }

    static let kernels = [("6.1.0-57", KernelVersion.v6_1), ("6.12.117+deb12", .v6_12)]

    @Test(arguments: kernels)
    func nvme(release: String, kernel: KernelVersion) throws {
        try check("nvme-\(release).txt", disk: "/dev/nvme0n1", device: "nvme 0000:00:02.0 capacity=64M", kernel: kernel)
    }

    @Test(arguments: kernels)
    func megaraidSAS(release: String, kernel: KernelVersion) throws {
        try check("sas-\(release).txt", disk: "/dev/sda", device: "megaraid_sas 0000:00:03.0 capacity=64M", kernel: kernel)
    }

    func check(_ fixture: String, disk: String, device line: String, kernel: KernelVersion) throws {
        let (limits, workloads) = try Self.workloads(fixture, disk: disk)
        #expect(workloads.count >= 4)
        let ram = try PhysicalMemory(size: 1 << 30, cpus: 1)  // the guest: -smp 1
        var config = SWIOTLBConfig()
        config.force = true
        config.dynamic = false
        config.kernel = kernel
        let swiotlb = try #require(IOTLBMem(ram: ram, config: config, cpus: 1))
        var platform = Platform(ram: ram, swiotlb: swiotlb)
        platform.dmapoolAlgorithm = kernel == .v6_1 ? .legacy : .stack
        let devices = Devices(platform: platform, drivers: BuiltinDrivers.all)
        let device = try devices.add(line)
        let queue = try #require(device.queue)
        let l = queue.limits
        #expect(limits == "limits max_hw_sectors_kb \(l.maxTransfer >> 10) max_sectors_kb \(l.maxSectorsBytes >> 10) "
            + "max_segments \(l.maxSegments) max_segment_size \(l.maxSegmentSize) virt_boundary_mask \(l.virtBoundaryMask)")
        for workload in workloads {
            if kernel != .v6_1 { try swiotlb.setUsedHiwater(0) }
            if let job = workload.job { try device.io(job) }
            var lines = try #require(device.device.pools).split(separator: "\n").map { "P " + $0 }
            lines.append("D io_tlb_used \(swiotlb.used)")
            if kernel != .v6_1 && workload.job != nil { lines.append("D io_tlb_used_hiwater \(swiotlb.usedHiwater)") }
            // Probe's hiwater is the SCSI scan's maps (INQUIRY, READ CAPACITY...), which
            // dmaemu's probe does not make.
            let expected = workload.lines.filter { workload.job != nil || !$0.hasPrefix("D io_tlb_used_hiwater") }
            #expect(lines == expected, "\(fixture) \(workload.name)")
        }
    }
}
