import PhysicalMemory
import SWIOTLB
import Testing

@Suite struct SlotSearchTests {
    @Test func bootMessagesAndCounters() throws {
        let mem = try testMem()
        #expect(
            mem.ram.log.texts() == [
                "software IO TLB: area num 2.",
                "software IO TLB: mapped [mem 0x0000000001000000-0x0000000001100000] (1MB)",
            ])
        #expect(mem.nslabs == 512 && mem.used == 0 && mem.usedHiwater == 0 && mem.transientNslabs == 0)
        #expect(mem.pools.count == 1 && mem.pools[0].nareas == 2 && mem.pools[0].areaNslabs == 256)
        #expect(mem.pools[0].start == poolStart)
    }

    @Test func sizeRoundsUpToAPowerOfTwoWithRoomForEveryArea() throws {
        var config = SWIOTLBConfig()
        config.nslabs = 384
        config.nareas = 2
        let mem = try #require(IOTLBMem(ram: try PhysicalMemory(size: 1 << 30), config: config))
        // 384 is not a power of two: 512 slots, 1 MiB.
        #expect(mem.nslabs == 512)
        #expect(mem.ram.log.texts()[1] == "software IO TLB: SWIOTLB bounce buffer size roundup to 1MB")
    }

    @Test func nextFitSearchMarkingAndMergingRelease() throws {
        let mem = try testMem()
        let dev = client(mem)
        let pool = mem.pools[0]
        let orig = try buffer(mem, order: 1)
        // 100 bytes: one slot, no alignment beyond the slot: slot 0; area 0's index moves to 1.
        let a = try #require(mem.mapSingle(dev, origAddr: orig, size: 100, limits: plain, cpu: 0))
        #expect(a == poolStart)
        #expect(pool.freeRuns(0..<4) == [0, 127, 126, 125])
        // 4096 bytes: page aligned, stride 2. Slot 1 is misaligned; slot 2 has 126 >= 2
        // free. The free slot before the run now counts only to it: 1.
        let b = try #require(mem.mapSingle(dev, origAddr: orig, size: 4096, limits: plain, cpu: 0))
        #expect(b == poolStart + 2 * 2048)
        #expect(pool.freeRuns(0..<6) == [0, 1, 0, 0, 124, 123])
        // 3000 bytes: two slots, below a page so slot aligned only; next fit from slot 4.
        let c = try #require(mem.mapSingle(dev, origAddr: orig, size: 3000, limits: plain, cpu: 0))
        #expect(c == poolStart + 4 * 2048)
        #expect(mem.used == 5 && pool.areaUsed == [5, 0])
        // Releasing b: slot 4 is in use, so the run counts 2, 1 and merges with slot 1: 3.
        mem.unmapSingle(dev, b, size: 0, copyBack: false, limits: plain)
        #expect(pool.freeRuns(0..<6) == [0, 3, 2, 1, 0, 0])
        mem.unmapSingle(dev, a, size: 0, copyBack: false, limits: plain)
        #expect(pool.freeRuns(0..<6) == [4, 3, 2, 1, 0, 0])
        // Releasing c joins both sides: the whole segment is one free run again.
        mem.unmapSingle(dev, c, size: 0, copyBack: false, limits: plain)
        #expect(pool.freeRuns(0..<128) == Array((1...128).reversed()))
        #expect(mem.used == 0 && mem.usedHiwater == 5)
    }

    @Test func theCallingCPUChoosesTheStartArea() throws {
        let mem = try testMem()
        let dev = client(mem)
        let orig = try buffer(mem)
        // Area 1 starts at slot 256.
        #expect(mem.mapSingle(dev, origAddr: orig, size: 64, limits: plain, cpu: 1) == poolStart + 256 * 2048)
        #expect(mem.mapSingle(dev, origAddr: orig, size: 64, limits: plain, cpu: 2) == poolStart)
        #expect(mem.pools[0].areaUsed == [1, 1])
    }

    @Test func aFullAreaSendsTheSearchToTheNext() throws {
        let mem = try testMem()
        let dev = client(mem)
        let orig = try buffer(mem)
        // Two 256 KiB maps fill area 0's two segments; the third goes to area 1.
        for _ in 0..<2 { #expect(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain, cpu: 0) != nil) }
        #expect(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain, cpu: 0) == poolStart + 256 * 2048)
    }

    @Test func noRunCrossesASegment() throws {
        let mem = try testMem()
        let dev = client(mem)
        let orig = try buffer(mem)
        _ = mem.mapSingle(dev, origAddr: orig, size: 100, limits: plain, cpu: 0)
        // 128 slots: slots 2...126 start runs of at most 126; the next whole segment is at 128.
        #expect(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain, cpu: 0) == poolStart + 128 * 2048)
    }

    @Test func theDeviceSegmentBoundaryIsRespected() throws {
        let mem = try testMem()
        let dev = client(mem)
        let orig = try buffer(mem)
        // A 64 KiB boundary is 32 slots. After slot 0, a 64 KiB run may only start at 32.
        let limits = IOTLBDeviceLimits(minAlignMask: 0, segmentBoundaryMask: 0xffff, dmaLimit: 1 << 32)
        _ = mem.mapSingle(dev, origAddr: orig, size: 100, limits: limits, cpu: 0)
        #expect(mem.mapSingle(dev, origAddr: orig, size: 64 << 10, limits: limits, cpu: 0) == poolStart + 32 * 2048)
    }

    @Test func minAlignMaskKeepsTheLow12Bits() throws {
        let mem = try testMem()
        let dev = client(mem)
        let nvme = IOTLBDeviceLimits(minAlignMask: 0xfff, segmentBoundaryMask: 0xffff_ffff, dmaLimit: 1 << 32)
        let page = try buffer(mem)
        // Offset 0x234 (bit 11 clear): 512 + 0x234 = 1076 bytes, one slot: slot 0, plus 0x234.
        #expect(mem.mapSingle(dev, origAddr: page + 0x234, size: 512, limits: nvme, cpu: 0) == poolStart + 0x234)
        // 0xa34 has bit 11 set: only odd slots match it; slot 1 is free and odd.
        let tlb = try #require(mem.mapSingle(dev, origAddr: page + 0xa34, size: 512, limits: nvme, cpu: 0))
        #expect(tlb == poolStart + 1 * 2048 + 0x234)
        // A third with bit 11 clear needs an even slot: slot 2.
        #expect(mem.mapSingle(dev, origAddr: page + 0x234, size: 512, limits: nvme, cpu: 0) == poolStart + 2 * 2048 + 0x234)
        #expect(tlb & 0xfff == 0xa34)
    }

    @Test func padSlotsPreserveBitsAboveASlot() throws {
        let mem = try testMem()
        let dev = client(mem)
        let pool = mem.pools[0]
        let nvme = IOTLBDeviceLimits(minAlignMask: 0xfff, segmentBoundaryMask: 0xffff_ffff, dmaLimit: 1 << 32)
        let page = try buffer(mem)
        // With a 4 KiB alloc_align_mask the offset is all of 0xa34: one pad slot, then 0x234
        // into slot 1. Padded size ALIGN(512 + 0xa34, 4096) = 4096: slots 0 and 1.
        let tlb = try #require(
            mem.mapSingle(dev, origAddr: page + 0xa34, size: 512, allocAlignMask: 0xfff, limits: nvme, cpu: 0))
        #expect(tlb == poolStart + 0xa34)
        #expect(pool.freeRuns(0..<3) == [0, 0, 126])
        // Release finds the pad slot again and frees both.
        mem.unmapSingle(dev, tlb, size: 0, copyBack: false, limits: nvme)
        #expect(pool.freeRuns(0..<3) == [128, 127, 126])
        #expect(mem.used == 0)
    }

    @Test func maximumMappingSize() throws {
        #expect(IOTLB.maxMappingSize(minAlignMask: 0) == 262_144)
        #expect(IOTLB.maxMappingSize(minAlignMask: 0xfff) == 262_144 - 4096)
        let mem = try testMem()
        let dev = client(mem)
        #expect(mem.mapSingle(dev, origAddr: try buffer(mem), size: 262_145, limits: plain) == nil)
        #expect(
            mem.ram.log.texts().last
                == "pci 0000:00:04.0: swiotlb buffer is full (sz: 262145 bytes), total 512 (slots), used 0 (slots)")
    }
}
