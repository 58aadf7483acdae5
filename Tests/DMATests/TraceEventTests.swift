import DMA
import Lib
import PhysicalMemory
import SWIOTLB
import Testing
import Trace

/// The events of `tracer` as "<event>: <fields>", without the context columns.
func events(_ tracer: Tracer) -> [String] {
    tracer.text(tracer.entries()).split(separator: "\n").map { line in
        // The context is 51 characters wide: "%16s-%-7d [%03d] ..... %5lu.%06lu: ".
        String(line.dropFirst(51))
    }
}

func traced(dmaDebug: Bool = true, kernel: KernelVersion = .v6_12) throws -> (Rig, Tracer) {
    let tracer = Tracer(kernel: kernel, cpus: 2)
    tracer.enable(tracer.events, true)
    return (try Rig(dmaDebug: dmaDebug, tracer: tracer), tracer)
}

/// Each expected line is written from include/trace/events/dma.h's TP_printk (and
/// swiotlb.h's) with the values the test chose; the swiotlb of the rig sits at 16 MiB
/// (0x1000000), so slot n of area 0 is 0x1000000 + n * 2048 and area 1 starts at slot 256.
@Suite struct TraceEventTests {
    @Test func aBounceIsTracedBeforeItsMapWithTheOriginalAddress() throws {
        let (rig, tracer) = try traced()
        let high = try rig.highPage()
        let h = String(high, radix: 16)
        let mapped = CPU.acting(as: 1) { rig.device.mapSingle(high, size: 4096, .fromDevice) }
        let dma = try #require(mapped)
        #expect(dma == 0x1080000)
        CPU.acting(as: 0) {
            rig.device.syncSingleForCPU(dma, size: 4096, .fromDevice)
            rig.device.syncSingleForDevice(dma, size: 4096, .fromDevice)
            rig.device.unmapSingle(dma, size: 4096, .fromDevice)
        }
        #expect(events(tracer) == [
            "swiotlb_bounced: dev_name: 0000:00:05.0 dma_mask=ffffffff dev_addr=\(h) size=4096 NORMAL",
            "dma_map_page: 0000:00:05.0 dir=FROM_DEVICE dma_addr=1080000 size=4096 phys_addr=\(h) attrs=",
            "dma_sync_single_for_cpu: 0000:00:05.0 dir=FROM_DEVICE dma_addr=1080000 size=4096",
            "dma_sync_single_for_device: 0000:00:05.0 dir=FROM_DEVICE dma_addr=1080000 size=4096",
            "dma_unmap_page: 0000:00:05.0 dir=FROM_DEVICE dma_addr=1080000 size=4096 attrs=",
        ])
        // Each line names the CPU its call ran on.
        #expect(tracer.entries().map(\.cpu) == [1, 1, 0, 0, 0])
    }

    @Test func aFailedMapIsTracedWithDMAMappingErrorAndItsAttributes() throws {
        let (rig, tracer) = try traced()
        let high = try rig.highPage()
        let h = String(high, radix: 16)
        // 512 KiB is more than a segment of 128 slots: swiotlb_tbl_map_single() fails.
        #expect(rig.device.mapSingle(high, size: 512 << 10, .toDevice, attributes: [.noWarn, .skipCPUSync]) == nil)
        #expect(events(tracer) == [
            "swiotlb_bounced: dev_name: 0000:00:05.0 dma_mask=ffffffff dev_addr=\(h) size=524288 NORMAL",
            "dma_map_page: 0000:00:05.0 dir=TO_DEVICE dma_addr=ffffffffffffffff size=524288 phys_addr=\(h) attrs=SKIP_CPU_SYNC|NO_WARN",
        ])
    }

    @Test func aBufferTheDeviceReachesIsNotBouncedAndACoherentDeviceSkipsSyncsUntilItsFirstBounce() throws {
        let (rig, tracer) = try traced(dmaDebug: false)
        let low = try rig.lowPage()
        let l = String(low, radix: 16)
        let dma = try #require(rig.device.mapSingle(low, size: 512, .bidirectional))
        rig.device.syncSingleForCPU(dma, size: 512, .bidirectional)  // dma_skip_sync: no event
        rig.device.unmapSingle(dma, size: 512, .bidirectional)
        let high = try rig.highPage()
        let bounced = try #require(CPU.acting(as: 0) { rig.device.mapSingle(high, size: 512, .bidirectional) })
        rig.device.syncSingleForCPU(bounced, size: 512, .bidirectional)
        let lines = events(tracer)
        #expect(Array(lines.prefix(2)) == [
            "dma_map_page: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=\(l) size=512 phys_addr=\(l) attrs=",
            "dma_unmap_page: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=\(l) size=512 attrs=",
        ])
        #expect(lines.count == 5)
        #expect(lines[4] == "dma_sync_single_for_cpu: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=1000000 size=512")
    }

    @Test func scatterListsPrintTheirArraysAsPrintArrayDoes() throws {
        let (rig, tracer) = try traced()
        let (high, low) = (try rig.highPage(), try rig.lowPage())
        let (h, l) = (String(high, radix: 16), String(low, radix: 16))
        var list = [ScatterEntry(phys: high, length: 4096), ScatterEntry(phys: low, length: 512)]
        list.withUnsafeMutableBufferPointer { list in
            #expect(CPU.acting(as: 0) { rig.device.mapSG(list, .toDevice) } == 2)
            rig.device.syncSG(list, .toDevice, forDevice: true)
            rig.device.syncSG(list, .toDevice, forDevice: false)
            rig.device.unmapSG(list, .toDevice)
            #expect(list[0].dmaAddress == 0x1000000)
        }
        #expect(events(tracer) == [
            "swiotlb_bounced: dev_name: 0000:00:05.0 dma_mask=ffffffff dev_addr=\(h) size=4096 NORMAL",
            "dma_map_sg: 0000:00:05.0 dir=TO_DEVICE nents=2/2 ents=2/2 dma_addrs={0x1000000,0x\(l)} sizes={0x1000,0x200} phys_addrs={0x\(h),0x\(l)} attrs=",
            "dma_sync_sg_for_device: 0000:00:05.0 dir=TO_DEVICE dma_addrs={0x1000000,0x\(l)} sizes={0x1000,0x200}",
            "dma_sync_sg_for_cpu: 0000:00:05.0 dir=TO_DEVICE dma_addrs={0x1000000,0x\(l)} sizes={0x1000,0x200}",
            "dma_unmap_sg: 0000:00:05.0 dir=TO_DEVICE phys_addrs={0x\(h),0x\(l)} attrs=",
        ])
    }

    @Test func dmaMapSGRecordsAtMost128EntriesOfEachArray() throws {
        let (rig, tracer) = try traced()
        let page = try rig.lowPage()
        var list = [ScatterEntry](repeating: ScatterEntry(phys: page, length: 8), count: 130)
        list.withUnsafeMutableBufferPointer { list in
            #expect(rig.device.mapSG(list, .toDevice) == 130)
            rig.device.unmapSG(list, .toDevice)
        }
        let lines = events(tracer)
        let p = "0x" + String(page, radix: 16)
        let addresses = "{" + [String](repeating: p, count: 128).joined(separator: ",") + "}"
        let sizes = "{" + [String](repeating: "0x8", count: 128).joined(separator: ",") + "}"
        #expect(lines[0] == "dma_map_sg: 0000:00:05.0 dir=TO_DEVICE nents=128/130 ents=128/130 [TRUNCATED] dma_addrs=\(addresses) sizes=\(sizes) phys_addrs=\(addresses) attrs=")
        // dma_unmap_sg's array has no cap.
        #expect(lines[1] == "dma_unmap_sg: 0000:00:05.0 dir=TO_DEVICE phys_addrs={" + [String](repeating: p, count: 130).joined(separator: ",") + "} attrs=")
    }

    @Test func coherentAllocationsPrintTheirGFPFlagsAndVirtualAddress() throws {
        let (rig, tracer) = try traced()
        let block = try #require(rig.device.allocCoherent(size: 8192, gfp: [.kernel, .zero]))
        let virt = String(rig.ram.kernelAddress(block.cpu), radix: 16)
        let d = String(block.dma, radix: 16)
        rig.device.freeCoherent(size: 8192, cpu: block.cpu, dma: block.dma)
        #expect(rig.device.allocCoherent(size: 1 << 40, gfp: .atomic) == nil)
        #expect(events(tracer) == [
            "dma_alloc: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=\(d) size=8192 virt_addr=\(virt) flags=GFP_KERNEL|__GFP_ZERO attrs=",
            "dma_free: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=\(d) size=8192 virt_addr=\(virt) attrs=",
            // mapping.c traces a failure with NULL and 0, and %p prints NULL as zeros.
            "dma_alloc: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=0 size=1099511627776 virt_addr=0000000000000000 flags=GFP_ATOMIC attrs=",
        ])
        #expect(virt.hasPrefix("ffff8880"))
    }

    @Test func resourcesAreMappedInPlaceAndTraced() throws {
        let (rig, tracer) = try traced()
        let dma = try #require(rig.device.mapResource(0xfe00_0000, size: 4096, .bidirectional))
        rig.device.unmapResource(dma, size: 4096, .bidirectional)
        #expect(events(tracer) == [
            "dma_map_resource: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=fe000000 size=4096 phys_addr=fe000000 attrs=",
            "dma_unmap_resource: 0000:00:05.0 dir=BIDIRECTIONAL dma_addr=fe000000 size=4096 attrs=",
        ])
    }

    @Test func laterKernelsNameTheirEventsTheirWay() throws {
        let (rig, tracer) = try traced(kernel: .v6_18)
        let low = try rig.lowPage()
        let dma = try #require(rig.device.mapSingle(low, size: 64, .toDevice))
        rig.device.unmapSingle(dma, size: 64, .toDevice)
        #expect(events(tracer).map { String($0.prefix { $0 != ":" }) } == ["dma_map_phys", "dma_unmap_phys"])
        // 6.1 has no dma events at all: only swiotlb_bounced fires.
        let (old, oldTracer) = try traced(kernel: .v6_1)
        _ = try #require(old.device.mapSingle(try old.highPage(), size: 64, .toDevice))
        #expect(events(oldTracer).map { String($0.prefix { $0 != ":" }) } == ["swiotlb_bounced"])
    }

    @Test func tracingOffCostsNoRecord() throws {
        let (rig, tracer) = try traced()
        tracer.tracingOn = false
        let dma = try #require(rig.device.mapSingle(try rig.highPage(), size: 64, .toDevice))
        rig.device.unmapSingle(dma, size: 64, .toDevice)
        #expect(tracer.counts.written == 0)
    }
}
