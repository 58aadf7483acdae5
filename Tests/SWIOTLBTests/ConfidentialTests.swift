import Lib
import PhysicalMemory
import SWIOTLB
import Testing

@Suite struct ConfidentialTests {
    func cocoMem(coherentPool: Int) throws -> IOTLBMem {
        var config = SWIOTLBConfig()
        config.nslabs = 512
        config.nareas = 2
        config.confidential = ConfidentialComputing(decryptNsPerPage: 1000, encryptNsPerPage: 1000, coherentPoolBytes: coherentPool)
        return try #require(IOTLBMem(ram: try PhysicalMemory(size: 1 << 30), config: config))
    }

    @Test func everyMapBouncesAndAtomicMapsNeedTheCoherentPool() throws {
        // A 128 KiB coherent pool cannot hold a 256 KiB transient pool: a map that may not
        // sleep fails once the 1 MiB swiotlb is full, as the v7 cover letter warns.
        let small = try cocoMem(coherentPool: 128 << 10)
        #expect(small.forceBounce)
        let dev = client(small)
        let orig = try buffer(small, order: 6)
        for _ in 0..<4 { #expect(small.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain) != nil) }
        #expect(small.mapSingle(dev, origAddr: orig, size: 256 << 10, limits: plain) == nil)
        #expect(small.ram.log.texts().last?.contains("swiotlb buffer is full (sz: 262144 bytes)") == true)
        small.waitForGrowth()
        // The worker, which may sleep, did grow it from ordinary (decrypted) pages.
        #expect(small.nslabs == 1024)

        // With a 512 KiB coherent pool the same map gets a transient pool from it, and a
        // map that may sleep gets one from the page allocator.
        let large = try cocoMem(coherentPool: 512 << 10)
        let dev2 = client(large)
        for _ in 0..<4 { _ = large.mapSingle(dev2, origAddr: orig, size: 256 << 10, limits: plain) }
        let atomic = try #require(large.mapSingle(dev2, origAddr: orig, size: 256 << 10, limits: plain))
        large.waitForGrowth()
        // Fill the grown pool too, so the next map needs a transient pool again.
        for _ in 0..<4 { _ = large.mapSingle(dev2, origAddr: orig, size: 256 << 10, limits: plain) }
        let sleeping = try #require(large.mapSingle(dev2, origAddr: orig, size: 256 << 10, limits: plain, mayBlock: true))
        #expect(large.transientNslabs == 256 && dev2.transientPoolCount == 2)
        let start = monotonicNs()
        large.unmapSingle(dev2, sleeping, size: 0, copyBack: false, limits: plain)
        // Re-encrypting the 64 pages of a page-allocator transient pool costs 64 us here.
        #expect(monotonicNs() - start >= 64_000)
        large.unmapSingle(dev2, atomic, size: 0, copyBack: false, limits: plain)
        #expect(large.transientNslabs == 0)
        large.waitForGrowth()
    }

    @Test func withoutDebugfsUsedIsTheSumOfTheAreas() throws {
        var config = SWIOTLBConfig()
        config.nslabs = 512
        config.nareas = 2
        config.dynamic = false
        config.debugfsCounters = false
        let mem = try #require(IOTLBMem(ram: try PhysicalMemory(size: 1 << 30), config: config))
        let dev = client(mem)
        let orig = try buffer(mem)
        let a = try #require(mem.mapSingle(dev, origAddr: orig, size: 4096, limits: plain, cpu: 0))
        let b = try #require(mem.mapSingle(dev, origAddr: orig, size: 100, limits: plain, cpu: 1))
        #expect(mem.used == 3 && mem.pools[0].areaUsed == [2, 1])
        #expect(mem.usedHiwater == 0)  // no high-water mark without debugfs
        mem.unmapSingle(dev, a, size: 0, copyBack: false, limits: plain)
        mem.unmapSingle(dev, b, size: 0, copyBack: false, limits: plain)
        #expect(mem.used == 0)
    }
}
