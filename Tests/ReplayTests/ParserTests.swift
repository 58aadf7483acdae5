@testable import Replay
import Testing

/// Each line written by hand from the TP_printk of include/trace/events/dma.h and
/// swiotlb.h in Debian's 6.12 (which carries 6.13's dir= in dma_alloc/dma_free and the
/// nents=/ents= form of dma_map_sg): the recording keeps what a replay needs of each.
@Suite struct ParserTests {
    @Test func aMapAndItsUnmap() throws {
        let recording = try parse("""
            \(traceLine("swiotlb_bounced: dev_name: 0000:00:02.0 dma_mask=ffffffff dev_addr=12b78000 size=4096 NORMAL", microseconds: 1))
            \(traceLine("dma_map_page: 0000:00:02.0 dir=FROM_DEVICE dma_addr=3ceb3000 size=4096 phys_addr=12b78000 attrs=SKIP_CPU_SYNC|NO_WARN", microseconds: 1))
            \(traceLine("dma_sync_single_for_cpu: 0000:00:02.0 dir=FROM_DEVICE dma_addr=3ceb3000 size=4096", cpu: 1, microseconds: 2))
            \(traceLine("dma_unmap_page: 0000:00:02.0 dir=FROM_DEVICE dma_addr=3ceb3000 size=4096 attrs=", task: "<idle>", pid: 0, cpu: 1, microseconds: 3))

            """)
        #expect(recording.devices == ["0000:00:02.0"])
        #expect(recording.ops.map(\.kind) == [.bounced, .mapPage, .syncSingleForCPU, .unmapPage])
        let bounce = recording.ops[0], map = recording.ops[1], unmap = recording.ops[3]
        #expect((bounce.address, bounce.dma, bounce.size, bounce.extra) == (0xffff_ffff, 0x12b7_8000, 4096, 0))
        // DMA_FROM_DEVICE is 2; DMA_ATTR_SKIP_CPU_SYNC is 1 << 5 and DMA_ATTR_NO_WARN 1 << 8.
        #expect((map.direction, map.dma, map.size, map.address, map.attributes) == (2, 0x3ceb_3000, 4096, 0x12b7_8000, 0x120))
        #expect((unmap.address, unmap.cpu, unmap.pid, unmap.line) == (0x3ceb_3000, 1, 0, 4))
        #expect(recording.ops[2].nanoseconds == 2_000)
        #expect(recording.tasks == [1234: "fio", 0: "<idle>"])
        #expect(recording.highestAddress == 0x12b7_8000)
        #expect(recording.cpusSeen == 2)
    }

    @Test func scatterlistsAndCoherentMemory() throws {
        let recording = try parse("""
            \(traceLine("dma_map_sg: 0000:00:02.0 dir=TO_DEVICE nents=3/3 ents=2/2 dma_addrs={0x10000,0x30000} sizes={0x2000,0x1000} phys_addrs={0x110000,0x112000,0x130000} attrs=", microseconds: 5))
            \(traceLine("dma_sync_sg_for_device: 0000:00:02.0 dir=TO_DEVICE dma_addrs={0x10000,0x30000} sizes={0x2000,0x1000}", microseconds: 6))
            \(traceLine("dma_unmap_sg: 0000:00:02.0 dir=TO_DEVICE phys_addrs={0x110000,0x112000,0x130000} attrs=", microseconds: 7))
            \(traceLine("dma_alloc: 0000:00:02.0 dir=BIDIRECTIONAL dma_addr=ffa0000 size=8192 virt_addr=00000000a1b2c3d4 flags=GFP_KERNEL attrs=", microseconds: 8))
            \(traceLine("dma_free: 0000:00:02.0 dir=BIDIRECTIONAL dma_addr=ffa0000 size=8192 virt_addr=00000000a1b2c3d4 attrs=", microseconds: 9))
            \(traceLine("dma_alloc: 0000:00:03.0 dma_addr=ff00000 size=4096 virt_addr=00000000a1b2c3d5 flags=GFP_ATOMIC|__GFP_ZERO attrs=", microseconds: 10))

            """)
        let kinds: [ReplayKind] = [.mapSG, .syncSGForDevice, .unmapSG, .alloc, .free, .alloc]
        #expect(recording.ops.map(\.kind) == kinds)
        let sg = recording.ops[0]
        #expect((sg.count, sg.count2, sg.extra) == (3, 2, 3))
        #expect(Array(recording.arena[Int(sg.arrayStart)..<Int(sg.arrayStart) + 7]) == [0x110000, 0x112000, 0x130000, 0x10000, 0x30000, 8192, 4096])
        #expect(recording.ops[1].count == 2)
        #expect(recording.arena[Int(recording.ops[2].arrayStart)] == 0x110000)
        // GFP_KERNEL is __GFP_RECLAIM | __GFP_IO | __GFP_FS = 0xcc0 (include/linux/gfp_types.h).
        #expect((recording.ops[3].dma, recording.ops[3].size, recording.ops[3].extra) == (0xffa_0000, 8192, 0xcc0))
        #expect(recording.ops[4].address == 0xffa_0000)
        // 6.12 as released prints no dir= in dma_alloc: it is always BIDIRECTIONAL (0).
        #expect((recording.ops[5].direction, recording.ops[5].device) == (0, 1))
        // GFP_ATOMIC is __GFP_HIGH | __GFP_KSWAPD_RECLAIM = 0x820; __GFP_ZERO is 0x100.
        #expect(recording.ops[5].extra == 0x920)
    }

    @Test func dmapoolLinesFindTheirPool() throws {
        let recording = try parse("""
            # pool: 0000:00:04.0 prp list 256       12   32  256  2
            \(traceLine("dma_pool_create: 0000:00:04.0 name=\"prp list page\" pool=ffff8880049f1e00 size=4096 align=4096 boundary=0", microseconds: 1))
            \(traceLine("dma_pool_alloc: 0000:00:04.0 name=\"prp list page\" pool=ffff8880049f1e00 vaddr=ffff888004a00000 dma=4a00000", microseconds: 2))
            \(traceLine("dma_pool_alloc: 0000:00:04.0 name=\"prp list 256\" pool=ffff8880049f1c00 vaddr=ffff888004a10100 dma=4a10100", microseconds: 3))
            \(traceLine("dma_pool_free: 0000:00:04.0 name=\"prp list page\" pool=ffff8880049f1e00 vaddr=ffff888004a00000 dma=4a00000", microseconds: 4))
            \(traceLine("dma_pool_destroy: 0000:00:04.0 name=\"prp list page\" pool=ffff8880049f1e00", microseconds: 5))

            """)
        #expect(recording.pools.count == 2)
        #expect(recording.pools[0] == RecordedPool(device: 0, name: "prp list page", size: 4096, align: 4096, boundary: 0, line: 2))
        // Made before the recording: its size and blocks in use come from the header's pools line.
        #expect(recording.pools[1] == RecordedPool(device: 0, name: "prp list 256", size: 256, align: 0, boundary: 0, line: 0, heldAtStart: 12))
        #expect(recording.ops.map(\.pool) == [0, 0, 1, 0, 0])
        #expect(recording.ops[1].dma == 0x4a0_0000)
    }

    @Test func theHeaderDescribesTheHost() throws {
        let recording = try parse("""
            # dmaemu-record 1
            # kernel: 6.12.57+deb12-amd64
            # machine: x86_64
            # cpus: 8
            # memtotal_kb: 16337212
            # cmdline: BOOT_IMAGE=/vmlinuz root=/dev/vda1 swiotlb=32768,4
            # config: # CONFIG_SWIOTLB_DYNAMIC is not set
            # boot: [    0.412345] software IO TLB: area num 4.
            # boot: [    0.512345] software IO TLB: mapped [mem 0x00000000bbed0000-0x00000000bfed0000] (64MB)
            # device: 0000:00:04.0 driver=nvme dma_mask_bits=64 consistent_dma_mask_bits=64
            # debugfs: io_tlb_used_hiwater 5120
            # command: fio --name=w
            \(traceLine("dma_unmap_page: 0000:00:04.0 dir=TO_DEVICE dma_addr=1000 size=4096 attrs=", microseconds: 1))

            """)
        let header = recording.header
        #expect(header.release == "6.12.57+deb12-amd64")
        #expect(recording.kernel == .v6_12)
        #expect((header.cpus, header.memoryBytes) == (8, 16_337_212 * 1024))
        #expect(header.dynamic == false)
        #expect((header.swiotlbStart, header.swiotlbBytes, header.swiotlbAreas) == (0xbbed_0000, 64 << 20, 4))
        #expect(header.devices["0000:00:04.0"] == RecordedDevice(driver: "nvme", maskBits: 64, coherentMaskBits: 64))
        #expect(header.debugfs == ["io_tlb_used_hiwater": 5120])
        #expect(header.command == "fio --name=w")
        // The machine the replay builds from it: the recorded swiotlb where it was, nvme's min_align_mask.
        let setup = ReplaySetup(recording: recording, options: ReplayOptions(), base: nil)
        #expect(setup.swiotlbBytes == 64 << 20)
        #expect(setup.swiotlb.nareas == 4)
        #expect(setup.swiotlb.bootAddress == 0xbbed_0000)
        #expect(setup.cpus == 8)
        #expect(setup.ramBytes == 16 << 30)
        #expect(setup.devices.first?.minAlignMask == 0xfff)
    }

    @Test func contextVariantsAllRead() throws {
        let lines = [
            // options/record-tgid: "(%7s)" between the pid and the CPU.
            "             fio-1234    (   1230) [002] ..... 12.000001: dma_sync_single_for_cpu: d dir=TO_DEVICE dma_addr=1000 size=64",
            // options/irq-info off: no flags column.
            "             fio-1234    [002]    12.000002: dma_sync_single_for_cpu: d dir=TO_DEVICE dma_addr=1000 size=64",
            // A nanosecond clock.
            "             fio-1234    [002] d..1. 12.000002500: dma_sync_single_for_cpu: d dir=TO_DEVICE dma_addr=1000 size=64",
            // A task name with spaces and dashes.
            "  kworker/u8:2-ev-99      [002] .N.1. 12.000003: dma_sync_single_for_cpu: d dir=TO_DEVICE dma_addr=1000 size=64",
        ]
        let recording = try parse(lines.joined(separator: "\n") + "\n")
        #expect(recording.ops.map(\.nanoseconds) == [12_000_001_000, 12_000_002_000, 12_000_002_500, 12_000_003_000])
        #expect(recording.ops.map(\.pid) == [1234, 1234, 1234, 99])
        #expect(recording.tasks[99] == "kworker/u8:2-ev")
        #expect(recording.ops.allSatisfy { $0.cpu == 2 })
    }

    @Test func trace_pipeLossAndLateCPUsAreNoted() throws {
        let recording = try parse("""
            \(traceLine("dma_sync_single_for_cpu: d dir=TO_DEVICE dma_addr=1000 size=64", cpu: 1, microseconds: 20))
            CPU:0 [LOST 17 EVENTS]
            \(traceLine("dma_sync_single_for_cpu: d dir=TO_DEVICE dma_addr=2000 size=64", cpu: 0, microseconds: 10))
            \(traceLine("sched_switch: prev_comm=fio", cpu: 0, microseconds: 11))

            """)
        #expect(recording.lost == [0: 17])
        // CPU 0's older line came after CPU 1's newer one (trace_pipe reads CPU by CPU): time order restored.
        #expect(recording.ops.map(\.address) == [0x2000, 0x1000])
        #expect(recording.reordered == 2)
        #expect(recording.notReplayed == ["sched_switch": 1])
    }

    @Test(arguments: [
        ("fio-1 [000] ..... 1.000001: dma_map_page: d dir=SIDEWAYS dma_addr=1 size=2 phys_addr=3 attrs=\n", "line 1: dma_map_page: dir=SIDEWAYS is no direction"),
        ("fio-1 [000] ..... 1.000001: dma_map_page: d dir=TO_DEVICE dma_addr=xyz size=2 phys_addr=3 attrs=\n", "line 1: dma_map_page: dma_addr=xyz is not a hex number"),
        ("fio-1 [000] ..... 1.000001: dma_map_page: d dir=TO_DEVICE size=2 phys_addr=3 attrs=\n", "line 1: dma_map_page: no dma_addr="),
        ("fio-1 [000] ..... 1.000001: dma_map_page: d dir=TO_DEVICE dma_addr=1 size=2 phys_addr=3 attrs=BOGUS\n", "line 1: dma_map_page: attrs=BOGUS names no DMA_ATTR_"),
        ("\nhello world\n", "line 2: not a trace line (no [cpu])"),
        ("fio-1 [000] ..... 1.000001: dma_unmap_sg: d dir=TO_DEVICE phys_addrs={0x1,zz} attrs=\n", "line 1: dma_unmap_sg: phys_addrs= holds a value that is not 0x and hex"),
        ("fio-1 [000] ..... 1.000001: dma_map_sg: d dir=TO_DEVICE nents=2/1 ents=1/1 dma_addrs={0x1} sizes={2} phys_addrs={0x1} attrs=\n", "line 1: dma_map_sg: nents= is not <traced>/<all>"),
        ("fio-1 [000] ..... 2.000001: dma_unmap_page: d dir=TO_DEVICE dma_addr=1 size=2 attrs=\nfio-1 [000] ..... 1.000001: dma_unmap_page: d dir=TO_DEVICE dma_addr=1 size=2 attrs=\n",
         "line 2: out of order: CPU 0 goes back in time (1.000001 after 2.000001)"),
        ("fio-1 [000] ..... 1.000001: dma_unmap_page: d dir=TO_DEVICE dma_addr=1 size=2 attrs=\nfio-1 [000] ..... 1.000002: dma_unmap_page: d dir=TO_DEVICE dma_a",
         "line 2: dma_unmap_page: no dma_addr= (the recording ends inside this line)"),
    ])
    func badLinesAreNamed(_ text: String, _ error: String) {
        #expect(message(text) == error)
    }

    @Test func skipBadCountsWhatItSkips() throws {
        let text = """
            \(traceLine("dma_unmap_page: d dir=TO_DEVICE dma_addr=1 size=2 attrs=", microseconds: 1))
            garbage
            \(traceLine("dma_unmap_page: d dir=UP dma_addr=1 size=2 attrs=", microseconds: 2))
            \(traceLine("dma_unmap_page: d dir=TO_DEVICE dma_addr=3 size=2 attrs=", microseconds: 3))

            """
        let recording = try parse(text, skipBad: true)
        #expect(recording.ops.map(\.address) == [1, 3])
        #expect(recording.skippedLines == 2)
        #expect(recording.firstSkipped == RecordingError(line: 2, "not a trace line (no [cpu])"))
    }
}

/// The error a parse of `text` ends with, as dmaemu-replay prints it.
func message(_ text: String) -> String? {
    do {
        _ = try parse(text)
        return nil
    } catch {
        return error.description
    }
}
