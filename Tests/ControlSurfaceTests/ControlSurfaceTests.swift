import ControlFS
import Lib
import PhysicalMemory
import SystemPackage
import Testing

@Suite struct ControlSurfaceTests {
    @Test func theDefaultMachine() throws {
        let machine = try smallMachine()
        #expect(try machine.read("\(dev)/driver") == "generic\n")
        #expect(try machine.read("\(dev)/state") == "bound\n")
        #expect(try machine.read("\(dev)/dma_mask_bits") == "64\n")
        #expect(try machine.read("\(dev)/dmapool_algorithm") == "stack\n")
        #expect(machine.root.node(at: "\(dev)/pools") == nil)  // no pool, no file
        #expect(try machine.read("kernel/debug/swiotlb/io_tlb_nslabs") == "512\n")
        #expect(try machine.read("kernel/buddyinfo").hasPrefix("Node 0, zone      DMA "))
        #expect(try machine.read("kmsg").contains("software IO TLB: area num 2."))
    }

    @Test func poolsByHandAllocAndFree() throws {
        let machine = try smallMachine()
        try machine.write("\(dev)/create_pool", "chain 128 16\n")
        try machine.write("\(dev)/dma_pools/chain/alloc", "1000\n")
        // 1000 blocks at 32 per page: 32 pages, 1024 blocks.
        #expect(try machine.read("\(dev)/pools") == "poolinfo - 0.1\nchain            1000 1024  128 32\n")
        #expect(try machine.read("\(dev)/dma_pools/chain/nr_active") == "1000\n")
        #expect(try machine.read("\(dev)/dma_pools/chain/size") == "128\n")
        #expect(try machine.read("\(dev)/dma_pools/chain/align") == "16\n")
        try machine.write("\(dev)/dma_pools/chain/free", "400")
        #expect(try machine.read("\(dev)/dma_pools/chain/nr_active") == "600\n")
        try machine.write("\(dev)/dma_pools/chain/free", "all newest")
        #expect(try machine.read("\(dev)/dma_pools/chain/nr_active") == "0\n")
        #expect(try machine.read("\(dev)/dma_pools/chain/nr_pages") == "32\n")  // pages stay until destroy
        try machine.write("\(dev)/destroy_pool", "chain")
        #expect(machine.root.node(at: "\(dev)/pools") == nil)
        #expect(machine.root.node(at: "\(dev)/dma_pools/chain") == nil)
    }

    @Test func badWritesFailAndChangeNothing() throws {
        let machine = try smallMachine()
        try machine.write("\(dev)/create_pool", "p 64")
        let alloc = "\(dev)/dma_pools/p/alloc"
        for bad in ["", "x", "-1", "1 2", "100000001", "0x"] {
            #expect(throws: Errno.invalidArgument) { try machine.write(alloc, bad) }
        }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/dma_pools/p/free", "5") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/dma_pools/p/free", "all sideways") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/create_pool", "q 0") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/create_pool", "q 64 3") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/create_pool", "q") }
        #expect(throws: Errno.fileExists) { try machine.write("\(dev)/create_pool", "p 32") }
        #expect(throws: Errno.noSuchFileOrDirectory) { try machine.write("\(dev)/destroy_pool", "nope") }
        #expect(throws: Errno.resourceBusy) { try machine.write("\(dev)/dmapool_algorithm", "legacy") }
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/state", "reboot") }
        #expect(throws: Errno.invalidArgument) { try machine.write("kernel/debug/swiotlb/io_tlb_used_hiwater", "5") }
        #expect(try machine.read("\(dev)/pools") == "poolinfo - 0.1\np                   0    0   64  0\n")
    }

    @Test func anAllocTooLargeForRAMIsENOMEMAndGivesEverythingBack() throws {
        let machine = try smallMachine(ram: 64 << 20)
        try machine.write("\(dev)/create_pool", "big 4096")
        let free = machine.ram.unusedPages
        // 64 MiB of RAM cannot hold 20000 pages of 4 KiB.
        #expect(throws: Errno.noMemory) { try machine.write("\(dev)/dma_pools/big/alloc", "20000") }
        #expect(try machine.read("\(dev)/dma_pools/big/nr_active") == "0\n")
        // The pages stay with the pool (as in the kernel) until it is destroyed.
        try machine.write("\(dev)/destroy_pool", "big")
        #expect(machine.ram.unusedPages == free)
    }

    /// The kernel keeps 31 bytes of a pool's name: two names alike that far are one pool
    /// (EEXIST, not a second pool hiding the first). '/' shows as '!', as in sysfs.
    @Test func poolNamesAsTheKernelKeepsThem() throws {
        let machine = try smallMachine(ram: 64 << 20)
        let long = String(repeating: "n", count: 31)
        try machine.write("\(dev)/create_pool", "\(long)1 64")
        #expect(throws: Errno.fileExists) { try machine.write("\(dev)/create_pool", "\(long)2 128") }
        #expect(try machine.read("\(dev)/dma_pools/\(long)/size") == "64\n")
        try machine.write("\(dev)/create_pool", "a/b 32")
        #expect(try machine.read("\(dev)/dma_pools/a!b/name") == "a/b\n")
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dev)/create_pool", ".. 32") }
        try machine.write("\(dev)/destroy_pool", "\(long)3")
        try machine.write("\(dev)/destroy_pool", "a/b")
        #expect(machine.root.node(at: "\(dev)/pools") == nil)
    }

    @Test func probeAndRemove() throws {
        let machine = try smallMachine()
        try machine.write("\(dev)/create_pool", "held 256")
        try machine.write("\(dev)/dma_pools/held/alloc", "10")
        try machine.write("\(dev)/state", "remove")
        #expect(try machine.read("\(dev)/state") == "unbound\n")
        #expect(machine.root.node(at: "\(dev)/dma_pools/held") == nil)
        #expect(machine.root.node(at: "\(dev)/pools") == nil)
        #expect(throws: Errno.noDevice) { try machine.write("\(dev)/state", "remove") }
        #expect(throws: Errno.noDevice) { try machine.write("\(dev)/create_pool", "x 64") }
        try machine.write("\(dev)/dmapool_algorithm", "legacy")
        try machine.write("\(dev)/dma_mask_bits", "32")
        try machine.write("\(dev)/state", "probe")
        try machine.write("\(dev)/create_pool", "old 128")
        try machine.write("\(dev)/dma_pools/old/alloc", "31")
        #expect(try machine.read("\(dev)/dma_pools/old/algorithm") == "legacy\n")
        // Legacy: 31 blocks per page, the column counts 32.
        #expect(try machine.read("\(dev)/pools") == "poolinfo - 0.1\nold                31   32  128  1\n")
        #expect(try machine.read("\(dev)/stats").hasPrefix("probe_us "))
        #expect(try machine.read("kmsg").contains("generic 0000:00:04.0: remove took"))
    }

    @Test func devicesAddedAndRemoved() throws {
        let machine = try smallMachine()
        try machine.write("control/add_device", "generic dm-0 dma_mask_bits=32 dmapool_algorithm=rbtree")
        #expect(try machine.read("devices/dm-0/dma_mask_bits") == "32\n")
        #expect(try machine.read("devices/dm-0/dmapool_algorithm") == "rbtree\n")
        #expect(throws: Errno.fileExists) { try machine.write("control/add_device", "generic dm-0") }
        #expect(throws: Errno.invalidArgument) { try machine.write("control/add_device", "floppy fd0") }
        #expect(throws: Errno.invalidArgument) { try machine.write("control/add_device", "generic a/b") }
        #expect(throws: Errno.invalidArgument) { try machine.write("control/add_device", "generic x colour=red") }
        try machine.write("control/remove_device", "dm-0")
        #expect(machine.root.node(at: "devices/dm-0") == nil)
        #expect(throws: Errno.noDevice) { try machine.write("control/remove_device", "dm-0") }
    }
}

@Suite struct MetricsTests {
    @Test func everyCounterInPrometheusText() throws {
        let machine = try smallMachine()
        try machine.write("\(dev)/create_pool", "chain 128 16")
        try machine.write("\(dev)/dma_pools/chain/alloc", "100")
        let text = try machine.read("metrics")
        #expect(text.contains("# TYPE dmaemu_io_tlb_nslabs gauge"))
        #expect(text.contains("dmaemu_io_tlb_nslabs 512"))
        #expect(text.contains(#"dmaemu_dmapool_nr_active{device="0000:00:04.0",driver="generic",pool="chain",algorithm="stack"} 100"#))
        #expect(text.contains(#"dmaemu_dmapool_nr_pages{device="0000:00:04.0",driver="generic",pool="chain",algorithm="stack"} 4"#))
        #expect(text.contains(#"dmaemu_zone_free_pages{zone="DMA"} 4095"#))
        try machine.write("\(dev)/destroy_pool", "chain")
        #expect(!(try machine.read("metrics")).contains("pool=\"chain\""))
    }
}

@Suite struct PageListFilesTests {
    /// kernel/zoneinfo shows the pcp lists, buddyinfo leaves their pages out, and
    /// control/drain_pages gives them back (drain_all_pages()). The 1 GiB test machine's
    /// DMA32 zone: 258048 managed pages, batch rounddown_pow_of_two(min(258048 >> 10, 256)
    /// / 4 * 3 / 2) - 1 = 63.
    @Test func zoneinfoBuddyinfoAndDrain() throws {
        let machine = try smallMachine()
        try machine.write("\(dev)/create_pool", "chain 128 16")
        try machine.write("\(dev)/dma_pools/chain/alloc", "1")
        let info = try machine.read("kernel/zoneinfo")
        #expect(info.contains("Node 0, zone    DMA32\n  pages free     "))
        #expect(info.contains("\n              batch: 63\n"))
        let pcp = machine.ram.pcpPages
        #expect(pcp > 0)
        #expect(try machine.read("metrics").contains("dmaemu_zone_pcp_pages{zone=\"DMA32\"} \(pcp)"))
        let free = machine.ram.freePages
        try machine.write("control/drain_pages", "1")
        #expect(machine.ram.pcpPages == 0 && machine.ram.freePages == free + pcp)
        #expect(throws: Errno.invalidArgument) { try machine.write("control/drain_pages", "2") }
    }
}
