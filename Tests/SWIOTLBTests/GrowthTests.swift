import Dispatch
import Locking
import PhysicalMemory
import SWIOTLB
import Testing

@Suite struct GrowthTests {
    @Test func growsFromOneMiBWithTransientPoolsMeanwhile() throws {
        let mem = try testMem(dynamic: true)
        let dev = client(mem)
        let orig = try buffer(mem, order: 6)
        var maps: [PhysAddr] = []
        // Four 256 KiB maps fill the 1 MiB boot pool's four segments.
        for _ in 0..<4 { maps.append(try #require(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain))) }
        // The fifth gets a transient pool of exactly 128 slots while a worker adds a pool.
        maps.append(try #require(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain)))
        #expect(mem.transientNslabs == 128 && dev.transientPoolCount == 1)
        mem.waitForGrowth()
        // The added pool has the boot size and area count: 512 slots, 2 areas.
        #expect(mem.nslabs == 1024 && mem.pools.count == 2 && mem.pools[1].nareas == 2)
        // Four more 256 KiB maps fit in it (the newest pool is searched first).
        for _ in 0..<4 {
            let tlb = try #require(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain))
            #expect(mem.pools[1].contains(tlb))
            maps.append(tlb)
        }
        #expect(mem.used == 9 * 128 && mem.usedHiwater == 9 * 128)
        for tlb in maps { mem.unmapSingle(dev, tlb, size: 0, copyBack: false, limits: plain) }
        // The transient pool is gone at its unmap; the added pool stays.
        #expect(mem.used == 0 && mem.transientNslabs == 0 && dev.transientPoolCount == 0)
        #expect(mem.nslabs == 1024 && mem.usedHiwater == 9 * 128)
        #expect(mem.ram.log.texts().allSatisfy { !$0.contains("full") })
    }

    @Test func aLoadNeedingFiveMiBGrowsToFivePools() throws {
        let mem = try testMem(dynamic: true)
        let dev = client(mem)
        let orig = try buffer(mem, order: 6)
        // Twenty 256 KiB maps (5 MiB). Each pool holds four; every fifth map finds no room,
        // gets a transient pool and sets off one 1 MiB growth: 4 + 3 x (1 + 4) + 1 = 20,
        // so four transient pools and four added pools, five pools in all.
        var maps: [PhysAddr] = []
        for _ in 0..<20 {
            maps.append(try #require(mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain)))
            mem.waitForGrowth()
        }
        #expect(mem.pools.count == 5 && mem.nslabs == 5 * 512)
        #expect(mem.transientNslabs == 4 * 128 && dev.transientPoolCount == 4)
        #expect(mem.used == 20 * 128 && mem.usedHiwater == 20 * 128)
        for tlb in maps { mem.unmapSingle(dev, tlb, size: 0, copyBack: false, limits: plain) }
        #expect(mem.used == 0 && mem.transientNslabs == 0 && mem.nslabs == 5 * 512)
    }

    @Test func aFullStaticMemReportsAndFails() throws {
        let mem = try testMem(dynamic: false)
        let dev = client(mem)
        let orig = try buffer(mem)
        for _ in 0..<4 { _ = mem.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain) }
        for _ in 0..<12 { #expect(mem.mapSingle(dev, origAddr: orig, size: 4096, limits: plain) == nil) }
        // Ten per five seconds.
        let full = "pci 0000:00:04.0: swiotlb buffer is full (sz: 4096 bytes), total 512 (slots), used 512 (slots)"
        #expect(mem.ram.log.texts().filter { $0 == full }.count == 10)
        #expect(mem.transientNslabs == 0)
    }

    @Test func hiwaterResetsOnlyToZero() throws {
        let mem = try testMem()
        let dev = client(mem)
        let tlb = try #require(mem.mapSingle(dev, origAddr: try buffer(mem), size: 8192, limits: plain))
        mem.unmapSingle(dev, tlb, size: 0, copyBack: false, limits: plain)
        #expect(mem.usedHiwater == 4)
        #expect(throws: SWIOTLBError.invalidValue) { try mem.setUsedHiwater(5) }
        #expect(mem.usedHiwater == 4)
        try mem.setUsedHiwater(0)
        #expect(mem.usedHiwater == 0)
    }

    @Test func aRestrictedPoolNeverGrowsAndServesCoherentMemory() throws {
        let ram = try PhysicalMemory(size: 1 << 30)
        let mem = try #require(IOTLBMem(restricted: "restricted-dma@0", bytes: 256 << 10, ram: ram))
        #expect(mem.forceBounce && mem.forAlloc && !mem.canGrow)
        #expect(ram.log.texts() == ["Reserved memory: created restricted DMA pool at 0x0000000001000000, size 0 MiB"])
        let dev = client(mem)
        let coherent = try #require(mem.allocCoherent(dev, size: 8192, limits: plain))
        #expect(coherent % 8192 == 0)
        #expect(mem.mapSingle(dev, origAddr: try buffer(mem), size: 256 << 10, limits: plain) == nil)
        #expect(mem.transientNslabs == 0 && mem.nslabs == 128 && mem.used == 4)
        #expect(mem.freeCoherent(dev, coherent, limits: plain))
        #expect(mem.used == 0)
        #expect(mem.mapSingle(dev, origAddr: try buffer(mem), size: 256 << 10, limits: plain) != nil)
    }

    @Test func concurrentMapsNeverShareASlot() throws {
        let mem = try testMem(nslabs: 4096, nareas: 2)
        let dev = client(mem)
        let failures = PthreadMutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            let orig = mem.ram.allocPages(order: 2)!
            var live: [(PhysAddr, UInt8)] = []
            for i in 0..<3000 {
                let tag = UInt8(truncatingIfNeeded: thread &* 50 &+ i)
                mem.ram.virt(orig).storeBytes(of: tag, as: UInt8.self)
                guard let tlb = mem.mapSingle(dev, origAddr: orig, size: 1 + i % 9000, limits: plain) else { continue }
                live.append((tlb, tag))
                if live.count > 8 {
                    let (old, oldTag) = live.removeFirst()
                    // Nobody else wrote our bounce slot: it still holds what map copied in.
                    if mem.ram.virt(old).load(as: UInt8.self) != oldTag { failures.withLock { $0 += 1 } }
                    mem.unmapSingle(dev, old, size: 0, copyBack: false, limits: plain)
                }
            }
            for (tlb, _) in live { mem.unmapSingle(dev, tlb, size: 0, copyBack: false, limits: plain) }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(mem.used == 0 && mem.pools[0].areaUsed == [0, 0])
        #expect(mem.pools[0].freeRuns(0..<4096) == (0..<4096).map { 128 - $0 % 128 })
    }
}
