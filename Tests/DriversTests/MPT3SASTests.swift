@testable import Drivers
import Lib
import PhysicalMemory
import SystemPackage
import TestSupport
import Testing

@Suite struct MPT3SASTests {
    func hba(_ parameters: String = "") throws -> (Devices, EmulatedDevice) {
        let devices = try smallDevices(ram: 2 << 30)
        return (devices, try devices.add("mpt3sas 0000:85:00.0 dmapool_algorithm=legacy \(parameters)"))
    }

    @Test func probePrintsTheSeedListing() throws {
        let (devices, hba) = try hba()
        // scsiio_depth 10107 (10368 - 128 - 133); 37 chains per I/O: 373959 chain buffers;
        // sense 10107 x 96; reply and reply_free 10432 x 128 and x 4; reply_post_free 20816 x 8
        // per queue, 12 queues; the array 12 x 16.
        #expect(hba.device.pools == """
            poolinfo - 0.1
            reply_post_free_array pool    1   21  192  1
            reply_free pool     1    1 41728  1
            reply pool          1    1 1335296  1
            sense pool          1    1 970272  1
            chain pool       373959 386048  128 12064
            reply_post_free pool   12   12 166528 12

            """)
        #expect(hba.driverName == "mpt3sas")
        #expect(hba.parameters.first { $0.name == "max_sgl_entries" }?.value == "256")
        #expect(hba.active("chain pool") == 373959)
        #expect(devices.kmsg.contains("mpt3sas 0000:85:00.0: probe took"))
    }

    /// Every block probe takes is the driver's: a user's `free` finds none to give back
    /// (EINVAL), and IOCInit's RDPQ array holds each reply queue's base, 16 bytes apart.
    @Test func probesBlocksAreTheDrivers() throws {
        let (devices, hba) = try hba()
        defer { withExtendedLifetime(devices) {} }
        for (name, pool) in hba.pools {
            #expect(throws: Errno.invalidArgument, "\(name)") { try pool.free(1, newestFirst: false) }
        }
        let driver = try #require(hba.driver as? MPT3SASDriver)
        let bases = try #require(driver.rdpqArray)
        #expect(bases.count == 12 && Set(bases).count == 12 && bases.allSatisfy { $0 != 0 && $0 % 16 == 0 })
    }

    @Test func removeGivesEveryPageBackAndParametersWaitForIt() throws {
        let devices = try smallDevices(ram: 2 << 30)
        let free = devices.ram.unusedPages
        let hba = try devices.add("mpt3sas 0000:85:00.0")
        #expect(throws: Errno.resourceBusy) { try hba.setParameter("max_sgl_entries", "128") }
        try hba.remove()
        #expect(devices.ram.unusedPages == free)
        #expect(hba.device.pools == nil)
        #expect(throws: Errno.invalidArgument) { try hba.setParameter("max_sgl_entries", "8") }
        #expect(throws: Errno.invalidArgument) { try hba.setParameter("chain_segment_size", "100") }
        // 128 SGEs: (128 - 1) / 7 + 1 = 19 chains per I/O, 10107 x 19 = 192033 at 32 per page.
        try hba.setParameter("max_sgl_entries", "128")
        try hba.setParameter("reply_post_free", "chunks")
        try hba.probe()
        let pools = try #require(hba.device.pools)
        #expect(pools.contains("chain pool       192033 192064  128 6002\n"))
        // The current driver: one chunk for the 12 queues, 12 x 166528 bytes.
        #expect(pools.contains("reply_post_free pool    1    1 1998336  1\n"))
    }

    @Test func aProbeThatRunsOutOfMemoryLeavesNothingBehind() throws {
        // The HBA needs about 55 MB (47 MB of chain pages alone); 48 MiB cannot hold it.
        let devices = try smallDevices(ram: 48 << 20)
        let free = devices.ram.unusedPages
        #expect(throws: Errno.noMemory) { try devices.add("mpt3sas 0000:85:00.0") }
        #expect(devices.ram.unusedPages == free)
        #expect(devices.device("0000:85:00.0") == nil)
        #expect(devices.kmsg.contains("mpt3sas 0000:85:00.0: probe failed"))
    }
}
