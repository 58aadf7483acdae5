import ControlFS
import DMA
import Daemon
import PhysicalMemory
import SWIOTLB
import SystemPackage
import Testing

/// Page-allocator failures injected at point after point of probe, pool growth, swiotlb
/// growth, mempool use and I/O: each reaches the writer as ENOMEM or EIO with the
/// injection's kmsg lines, and after cleanup every counter is back where it started:
/// free pages, swiotlb slots, dma-debug entries.
@Suite struct FaultInjectionScenarioTests {
    struct Counters: Equatable {
        var freePages: Int
        var swiotlbUsed: Int
        var transientSlabs: Int
        var dmaDebugEntries: Int
    }

    /// Pages a grown swiotlb and the dma pools keep (as in the kernel: a pool frees its pages
    /// only when destroyed) count as free, and a pool page's coherent allocation is not
    /// counted as a dma-debug entry: what is left is what the operation has out.
    static func counters(_ machine: Machine) throws -> Counters {
        let mem = machine.swiotlb!
        mem.waitForGrowth()
        var kept = (mem.nslabs - mem.defaultNslabs) * IOTLB.size / PhysicalMemory.pageSize
        var poolPages = 0
        for device in machine.devices.all {
            let pools = try #require(machine.root.node(at: "devices/\(device.name)/dma_pools") as? ControlDirectory)
            for (name, _) in pools.children {
                let path = "devices/\(device.name)/dma_pools/\(name)"
                let pages = Int(try machine.read("\(path)/nr_pages").dropLast())!
                poolPages += pages
                kept += pages * Int(try machine.read("\(path)/allocation").dropLast())! / PhysicalMemory.pageSize
            }
        }
        return Counters(
            freePages: machine.ram.unusedPages + kept, swiotlbUsed: mem.used, transientSlabs: mem.transientNslabs,
            dmaDebugEntries: machine.devices.all.reduce(0) { $0 + $1.device.dmaDebugEntryCount } - poolPages)
    }

    /// A machine with dma-debug on and a 1 MiB swiotlb that grows; `force` bounces every map.
    static func machine(force: Bool = false) throws -> Machine {
        var config = MachineConfig.defaultMachine()
        config.ramBytes = 512 << 20
        config.swiotlb.nslabs = 512
        config.swiotlb.nareas = 2
        config.swiotlb.force = force
        config.dmaDebug = true
        config.devices = config.devices.filter { $0.driver == "generic" }
        return try Machine(config)
    }

    /// Fails allocation n of `operation` for n = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, ...
    /// until n is past its last allocation. Returns how many runs failed, and how many
    /// allocations were failed in all. `warm` runs
    /// before the counters are taken: a pool keeps the pages its first use took, as in the
    /// kernel. With `fresh`, each n gets a new machine (a swiotlb that grew stays grown).
    static func sweep(
        errors: Set<Errno>, fresh: Bool = false, machine make: () throws -> Machine, warm: (Machine) throws -> Void = { _ in },
        _ operation: (Machine) throws(Errno) -> Void, cleanup: (Machine) throws -> Void = { _ in }
    ) throws -> (failed: Int, injected: Int) {
        var machine = try make()
        try warm(machine)
        var failed = 0, points = 0
        var n = 1
        while true {
            if fresh && n > 1 {
                machine = try make()
                try warm(machine)
            }
            let start = try counters(machine)
            let injected = machine.ram.faults.injected
            let lines = machine.ram.log.texts().count
            machine.ram.faults.mode = .failNth(n)
            var result: Errno?
            do throws(Errno) { try operation(machine) } catch { result = error }
            machine.ram.faults.mode = .off
            let hit = machine.ram.faults.injected > injected
            if let result {
                #expect(errors.contains(result), "allocation \(n): \(result)")
                #expect(hit, "allocation \(n): \(result) with nothing injected")
                failed += 1
            }
            if hit {
                points += 1
                let log = machine.ram.log.texts().dropFirst(lines)
                #expect(log.contains("FAULT_INJECTION: forcing a failure."), "allocation \(n)")
            }
            try cleanup(machine)
            #expect(try counters(machine) == start, "allocation \(n)")
            guard hit else { return (failed, points) }
            n += max(1, n / 10)
        }
    }

    @Test func probe() throws {
        var kmsg = ""
        let (failed, _) = try Self.sweep(errors: [.noMemory], machine: { try Self.machine() }) { machine throws(Errno) in
            try machine.write("control/add_device", "mpt3sas m0 hba_queue_depth=512 capacity=1M")
        } cleanup: { machine in
            kmsg = try machine.read("kmsg")
            if machine.device("m0") != nil { try machine.write("control/remove_device", "m0") }
        }
        #expect(failed > 10)
        #expect(kmsg.contains("mpt3sas m0: probe failed: "))
    }

    @Test func poolGrowth() throws {
        let pool = "\(dev)/dma_pools/p"
        let (failed, _) = try Self.sweep(errors: [.noMemory], machine: { try Self.machine() }) { machine in
            try machine.write("\(dev)/create_pool", "p 512")
        } _: { machine throws(Errno) in
            try machine.write("\(pool)/alloc", "3000")
            #expect(try machine.read("\(pool)/nr_active") == "3000\n")
        } cleanup: { machine in
            #expect(["0\n", "3000\n"].contains(try machine.read("\(pool)/nr_active")))
            // The pool keeps its pages until destroyed: a new one starts from nothing.
            try machine.write("\(dev)/destroy_pool", "p")
            try machine.write("\(dev)/create_pool", "p 512")
        }
        #expect(failed > 10)
    }

    /// A 1 MiB swiotlb that bounces everything, filled by another device's four 256 KiB
    /// mappings, on a new machine each time: a 128 KiB verify finds no slot, so the map
    /// wakes the worker to grow and allocates a transient pool meanwhile. Which of the two
    /// takes the failing allocation is a race; when no page can be had at all, the write
    /// is EIO with blk_print_req_error's line.
    @Test func swiotlbGrowthAndIO() throws {
        func full(_ machine: Machine) throws {
            try machine.write("control/add_device", "nvme nvme0 capacity=4M")
            try machine.write("devices/nvme0/io", "verify 4096")
            let filler = Device(
                name: "filler", ram: machine.ram, bus: "pci", swiotlb: machine.swiotlb, dmaMask: .max, coherentDMAMask: .max)
            for _ in 0..<4 {
                let pages = try #require(machine.ram.allocPages(order: 6))
                #expect(filler.mapSingle(pages, size: 256 << 10, .toDevice) != nil)
            }
            #expect(machine.swiotlb!.used == 512)
        }
        _ = try Self.sweep(errors: [.ioError], fresh: true, machine: { try Self.machine(force: true) }, warm: full) {
            machine throws(Errno) in try machine.write("devices/nvme0/io", "verify 128K")
        }
        let machine = try Self.machine(force: true)
        try full(machine)
        let start = try Self.counters(machine)
        machine.ram.faults.mode = .fraction(1, seed: 1)
        #expect(throws: Errno.ioError) { try machine.write("devices/nvme0/io", "verify 128K") }
        machine.ram.faults.mode = .off
        #expect(try machine.read("kmsg").contains("nvme nvme0: I/O error, dev nvme0, sector 0 op 0x1:(WRITE)\n"))
        #expect(try Self.counters(machine) == start)
    }

    /// dm-crypt's pages come from its mempool: a failed page allocation falls back to the
    /// reserve, so the I/O may still succeed; what fails is EIO.
    @Test func mempoolUse() throws {
        var fromReserve = 0
        let (_, injected) = try Self.sweep(errors: [.ioError], machine: { try Self.machine() }) { machine in
            try machine.write("control/add_device", "nvme nvme0 capacity=4M")
            try machine.write("control/add_device", "dm-crypt dm-0 lower=nvme0 key=\(cryptKey) page_alloc=bulk")
            try machine.write("devices/dm-0/io", "verify 64K count=4 threads=2")
        } _: { machine throws(Errno) in
            try machine.write("devices/dm-0/io", "verify 64K count=4 threads=2")
        } cleanup: { machine in
            let mempool = try machine.read("devices/dm-0/mempool")
            fromReserve = Int(mempool.split(separator: "\n").first { $0.hasPrefix("alloc_from_reserve ") }!.dropFirst(19))!
        }
        // Allocations of the bio pages, the request pages, the swiotlb: each one failed in turn.
        #expect(injected > 10)
        #expect(fromReserve > 0, "no failed page allocation was served from the reserve")
    }

    /// The kernel's debugfs attributes: every 3rd order-0-or-more page allocation fails,
    /// twice, with fail_dump's two lines each time.
    @Test func theDebugfsAttributes() throws {
        let machine = try Self.machine()
        let dir = "kernel/debug/fail_page_alloc"
        #expect(try machine.read("\(dir)/probability") == "0\n")
        #expect(try machine.read("\(dir)/times") == "1\n")
        #expect(try machine.read("\(dir)/min-order") == "1\n")
        try machine.write("\(dir)/min-order", "0")
        try machine.write("\(dir)/interval", "3")
        try machine.write("\(dir)/times", "2")
        try machine.write("\(dir)/probability", "100")
        #expect(throws: Errno.invalidArgument) { try machine.write("\(dir)/times", "-x") }
        let outcomes = (0..<8).map { _ in machine.ram.allocPages(order: 0) != nil }
        #expect(outcomes == [true, true, false, true, true, false, true, true])
        #expect(try machine.read("\(dir)/times") == "0\n")
        let kmsg = try machine.read("kmsg")
        #expect(kmsg.contains("FAULT_INJECTION: forcing a failure.\n"))
        #expect(kmsg.contains("name fail_page_alloc, interval 3, probability 100, space 0, times 2\n"))
        #expect(kmsg.contains("name fail_page_alloc, interval 3, probability 100, space 0, times 1\n"))
        // mm/mempool.c's attribute beside it, a plain fault_attr: no min-order.
        let bulk = "kernel/debug/fail_mempool_alloc_bulk"
        try machine.write("\(bulk)/probability", "50")
        #expect(machine.ram.failMempoolAllocBulk.attributes.probability == 50)
        #expect(try machine.read("\(bulk)/times") == "1\n")
        #expect(machine.root.node(at: "\(bulk)/min-order") == nil)
    }
}
