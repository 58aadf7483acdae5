import Daemon
import PhysicalMemory
import SystemPackage
import Testing

@Suite struct MPT3SASTests {
    func machine(_ parameters: String = "") throws -> Machine {
        let machine = try smallMachine(ram: 2 << 30)
        try machine.write("control/add_device", "mpt3sas 0000:85:00.0 dmapool_algorithm=legacy \(parameters)")
        return machine
    }

    @Test func probePrintsTheSeedListing() throws {
        let machine = try machine()
        let hba = "devices/0000:85:00.0"
        // scsiio_depth 10107 (10368 - 128 - 133); 37 chains per I/O: 373959 chain buffers;
        // sense 10107 x 96; reply and reply_free 10432 x 128 and x 4; reply_post_free 20816 x 8
        // per queue, 12 queues; the array 12 x 16.
        #expect(try machine.read("\(hba)/pools") == """
            poolinfo - 0.1
            reply_post_free_array pool    1   21  192  1
            reply_free pool     1    1 41728  1
            reply pool          1    1 1335296  1
            sense pool          1    1 970272  1
            chain pool       373959 386048  128 12064
            reply_post_free pool   12   12 166528 12

            """)
        #expect(try machine.read("\(hba)/driver") == "mpt3sas\n")
        #expect(try machine.read("\(hba)/params/max_sgl_entries") == "256\n")
        #expect(try machine.read("\(hba)/dma_pools/chain_pool/nr_active") == "373959\n")
        #expect(try machine.read("kmsg").contains("mpt3sas 0000:85:00.0: probe took"))
    }

    @Test func removeGivesEveryPageBackAndParametersWaitForIt() throws {
        let machine = try smallMachine(ram: 2 << 30)
        let free = machine.ram.freePages
        try machine.write("control/add_device", "mpt3sas 0000:85:00.0")
        let hba = "devices/0000:85:00.0"
        #expect(throws: Errno.resourceBusy) { try machine.write("\(hba)/params/max_sgl_entries", "128") }
        try machine.write("\(hba)/state", "remove")
        #expect(machine.ram.freePages == free)
        #expect(machine.root.node(at: "\(hba)/pools") == nil)
        #expect(throws: Errno.invalidArgument) { try machine.write("\(hba)/params/max_sgl_entries", "8") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(hba)/params/chain_segment_size", "100") }
        // 128 SGEs: (128 - 1) / 7 + 1 = 19 chains per I/O, 10107 x 19 = 192033 at 32 per page.
        try machine.write("\(hba)/params/max_sgl_entries", "128")
        try machine.write("\(hba)/params/reply_post_free", "chunks")
        try machine.write("\(hba)/state", "probe")
        let pools = try machine.read("\(hba)/pools")
        #expect(pools.contains("chain pool       192033 192064  128 6002\n"))
        // The current driver: one chunk for the 12 queues, 12 x 166528 bytes.
        #expect(pools.contains("reply_post_free pool    1    1 1998336  1\n"))
    }

    @Test func aProbeThatRunsOutOfMemoryLeavesNothingBehind() throws {
        // The HBA needs about 55 MB (47 MB of chain pages alone); 48 MiB cannot hold it.
        let machine = try smallMachine(ram: 48 << 20)
        let free = machine.ram.freePages
        #expect(throws: Errno.noMemory) { try machine.write("control/add_device", "mpt3sas 0000:85:00.0") }
        #expect(machine.ram.freePages == free)
        #expect(machine.root.node(at: "devices/0000:85:00.0") == nil)
        #expect(try machine.read("kmsg").contains("mpt3sas 0000:85:00.0: probe failed"))
    }
}
