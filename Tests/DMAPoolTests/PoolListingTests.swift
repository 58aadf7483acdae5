import DMA
import DMAPool
import PhysicalMemory
import Testing

/// The seed's mpt3sas listing (Tony Battersby, 2022; SAS 9300-8i, max_sgl_entries=256):
/// pools created in the driver's order, so `pools` lists them newest first.
@Suite struct PoolListingTests {
    /// (name, size, align, allocations) in creation order.
    static let mpt3sasPools: [(String, Int, Int, Int)] = [
        ("reply_post_free pool", 166_528, 16, 12),
        ("chain pool", 128, 16, 373_959),
        ("sense pool", 970_272, 4, 1),
        ("reply pool", 1_335_296, 4, 1),
        ("reply_free pool", 41_728, 16, 1),
        ("reply_post_free_array pool", 192, 16, 1),
    ]

    func probe(_ algorithm: DMAPoolAlgorithm) throws -> Device {
        let device = try testDevice("0000:85:00.0", size: 2 << 30)
        for (name, size, align, count) in Self.mpt3sasPools {
            let pool = try DMAPool(name: name, device: device, size: size, align: align, algorithm: algorithm)
            for _ in 0..<count { _ = try #require(pool.alloc()) }
        }
        return device
    }

    /// The listing, newest pool first, "%-16s %4zu %4zu %4u %2zu" per line; only the
    /// chain pool's line differs between generations. reply_post_free_array: 4096/192 = 21
    /// blocks per page in all three.
    func listing(chainPool: String) -> String {
        """
        poolinfo - 0.1
        reply_post_free_array pool    1   21  192  1
        reply_free pool     1    1 41728  1
        reply pool          1    1 1335296  1
        sense pool          1    1 970272  1
        \(chainPool)
        reply_post_free pool   12   12 166528 12

        """
    }

    @Test func legacyPrintsTheSeedListing() throws {
        // 373959 blocks at 31 per page: ceil(373959 / 31) = 12064 pages; the column
        // overcounts 12064 * 32 = 386048.
        #expect(try probe(.legacy).pools == listing(chainPool: "chain pool       373959 386048  128 12064"))
    }

    @Test(arguments: [DMAPoolAlgorithm.stack, .rbtree])
    func currentKernelListing(_ algorithm: DMAPoolAlgorithm) throws {
        // 32 blocks per page: ceil(373959 / 32) = 11687 pages holding 373984 blocks.
        #expect(try probe(algorithm).pools == listing(chainPool: "chain pool       373959 373984  128 11687"))
    }

    @Test func thePoolsFileComesAndGoesWithThePools() throws {
        let device = try testDevice()
        #expect(device.pools == nil)
        let first = try DMAPool(name: "first", device: device, size: 64)
        let second = try DMAPool(name: "second", device: device, size: 32)
        #expect(device.pools == "poolinfo - 0.1\nsecond              0    0   32  0\nfirst               0    0   64  0\n")
        first.destroy()
        #expect(device.pools == "poolinfo - 0.1\nsecond              0    0   32  0\n")
        second.destroy()
        #expect(device.pools == nil)
    }

    @Test func namesAreTruncatedTo31Bytes() throws {
        let device = try testDevice()
        let pool = try DMAPool(name: String(repeating: "n", count: 40), device: device, size: 64)
        #expect(pool.name == String(repeating: "n", count: 31))
    }
}
