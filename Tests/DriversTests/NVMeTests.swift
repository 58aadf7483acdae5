import Block
import Foundation
import DMA
@testable import Drivers
import Hardware
import Lib
import SystemPackage
import TestSupport
import Testing
import Trace

@Suite struct NVMePRPTests {
    /// Builds the data pointer for `segments` (dma address, length) with fake pools whose
    /// blocks sit at 0xa000_0000 + 4096 * i (page) and 0xb000_0000 + 256 * i (small).
    func build(_ segments: [(UInt64, Int)], threshold: Int = 0)
        -> (prp1: UInt64, prp2: UInt64, flags: UInt8, lists: [(pool: NVMePool, dma: UInt64, entries: [UInt64])], built: Bool)
    {
        let sqe = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 4096 * 10, alignment: 4096)
        defer { sqe.deallocate(); memory.deallocate() }
        let list = UnsafeMutableBufferPointer<ScatterEntry>.allocate(capacity: segments.count)
        defer { list.deallocate() }
        var bytes = 0
        for (i, (address, length)) in segments.enumerated() {
            list[i] = ScatterEntry(phys: address, length: length)
            list[i].dmaAddress = address
            list[i].dmaLength = length
            bytes += length
        }
        NVMeDescriptors.buildCommand(sqe, BlockCommand(write: false, lba: 0, sectors: bytes / 512), id: 3)
        var taken = Descriptors()
        var pages = 0, smalls = 0
        let alloc = { (pool: NVMePool) -> HeldBlock? in
            if pool == .page {
                defer { pages += 1 }
                return HeldBlock(cpu: memory + 4096 * pages, dma: 0xa000_0000 + 4096 * UInt64(pages))
            }
            defer { smalls += 1 }
            return HeldBlock(cpu: memory + 4096 * 9 + 256 * smalls, dma: 0xb000_0000 + 256 * UInt64(smalls))
        }
        let built = NVMeDescriptors.useSGLs(list, bytes: bytes, threshold: threshold)
            ? NVMeDescriptors.setupSGLs(sqe, list, taken: &taken, alloc: alloc)
            : NVMeDescriptors.setupPRPs(sqe, list, bytes: bytes, taken: &taken, alloc: alloc)
        let entriesPerList = { (pool: NVMePool) in pool == .page ? 512 : 32 }
        let lists = (0..<taken.count).map { i in
            let (block, pool) = taken[i]
            let words = (0..<entriesPerList(pool)).map { block.cpu.load(fromByteOffset: $0 * 8, as: UInt64.self) }
            return (pool, block.dma, words)
        }
        return (sqe.load(fromByteOffset: 24, as: UInt64.self), sqe.load(fromByteOffset: 32, as: UInt64.self),
                sqe.load(fromByteOffset: 1, as: UInt8.self), lists, built)
    }

    /// Page i of a discontiguous buffer.
    func page(_ i: Int) -> UInt64 { 0x2_0000_0000 + UInt64(i) * 8192 }
    func pages(_ n: Int) -> [(UInt64, Int)] { (0..<n).map { (page($0), 4096) } }

    @Test func onePageNeedsNoPRP2() {
        let r = build(pages(1))
        #expect(r.prp1 == page(0) && r.prp2 == 0 && r.lists.isEmpty && r.flags == 0)
    }

    @Test func twoPagesPointPRP2AtTheSecond() {
        let r = build(pages(2))
        #expect(r.prp1 == page(0) && r.prp2 == page(1) && r.lists.isEmpty)
        // An unaligned start: 3.5 KiB in the first page, the rest in the second.
        let odd = build([(page(0) + 512, 3584), (page(1), 4096)])
        #expect(odd.prp1 == page(0) + 512 && odd.prp2 == page(1) && odd.lists.isEmpty)
    }

    @Test func thirtyThreePagesUseTheSmallPool() {
        // 32 entries after PRP1 fit the 256-byte list.
        let r = build(pages(33))
        #expect(r.prp1 == page(0) && r.prp2 == 0xb000_0000 && r.lists.count == 1 && r.lists[0].pool == .small)
        #expect(r.lists[0].entries == (1..<33).map(page))
        // 34 pages need 33 entries: a page list.
        let more = build(pages(34))
        #expect(more.prp2 == 0xa000_0000 && more.lists.count == 1 && more.lists[0].pool == .page)
    }

    @Test func fiveHundredThirteenPagesFillOneListExactly() {
        // One contiguous segment: PRP1 and 512 entries, the last one data, not a pointer.
        let r = build([(0x3_0000_0000, 513 * 4096)])
        let all: [UInt64] = (1...512).map { 0x3_0000_0000 + UInt64($0) * 4096 }
        #expect(r.lists.count == 1 && r.lists[0].entries == all)
        // One page more: the 512th entry moves to a second list, its slot points there.
        let chained = build([(0x3_0000_0000, 514 * 4096)])
        #expect(chained.lists.count == 2)
        #expect(chained.lists[0].entries[0..<511].elementsEqual(all[0..<511]))
        #expect(chained.lists[0].entries[511] == 0xa000_1000)
        let moved: [UInt64] = [0x3_0000_0000 + 512 * 4096, 0x3_0000_0000 + 513 * 4096]
        #expect(chained.lists[1].entries[0..<2].elementsEqual(moved))
    }

    @Test func theMaximalTransferTakesFiveLists() {
        // 8 MiB: 2047 entries after PRP1 = 4 x 511 + 3.
        let r = build([(0x3_0000_0000, 8 << 20)])
        #expect(r.lists.count == 5 && r.lists.allSatisfy { $0.pool == .page })
        for i in 0..<4 { #expect(r.lists[i].entries[511] == 0xa000_0000 + 4096 * UInt64(i + 1)) }
        let tail: [UInt64] = (2045...2047).map { 0x3_0000_0000 + UInt64($0) * 4096 }
        #expect(r.lists[4].entries[0..<3].elementsEqual(tail))
    }

    @Test func sglsAboveTheThreshold() {
        let one = build([(0x3_0000_0000, 65536)], threshold: 32768)
        #expect(one.flags == 0x40 && one.prp1 == 0x3_0000_0000 && one.prp2 == 65536 && one.lists.isEmpty)
        // 16 descriptors fit the small pool; the command points at them as the last segment.
        let sixteen = build((0..<16).map { (page($0 * 16), 65536) }, threshold: 32768)
        #expect(sixteen.prp1 == 0xb000_0000 && sixteen.prp2 == 0x3000_0000_0000_0100 && sixteen.lists[0].pool == .small)
        #expect(sixteen.lists[0].entries[2] == page(16) && sixteen.lists[0].entries[3] == 65536)
        let seventeen = build((0..<17).map { (page($0 * 16), 65536) }, threshold: 32768)
        #expect(seventeen.prp1 == 0xa000_0000 && seventeen.lists[0].pool == .page)
        // Below the threshold: PRPs.
        #expect(build(pages(2), threshold: 32768).flags == 0)
    }
}

@Suite(.serialized) struct NVMeIOTests {
    /// The machine keeps its devices bound: hold it while using `nvme0`.
    func controller(ram: UInt64 = 1 << 30, _ extra: String = "") throws -> (Devices, EmulatedDevice) {
        let devices = try smallDevices(ram: ram)
        return (devices, try devices.add("nvme nvme0 capacity=64M io_queue_depth=64 \(extra)"))
    }

    /// io_queue_depth 2: a completion queue of two entries and one command id (the tag set
    /// is q_depth - 1). Each read's completion is taken at the head, which wraps every two
    /// with the phase the host expects inverted: after reads 1...5 the head is at 1, 0, 1,
    /// 0, 1 expecting phase 1, 0, 0, 1, 1; entry 0 was last written by read 5 (phase 1),
    /// entry 1 by read 4 (phase 0). Each entry: SQ id 1, command id 0, status 0.
    @Test func completionsWrapWithThePhaseTag() throws {
        let devices = try smallDevices(ram: 1 << 30, cpus: 1)
        let nvme = try devices.add("nvme nvme0 capacity=64M io_queue_depth=2")
        let driver = try #require(nvme.driver as? NVMeDriver)
        var seen: [(Int, UInt16)] = []
        for _ in 0..<5 {
            try nvme.io("read 4096")
            let cq = try #require(driver.completionQueues.first)
            seen.append((cq.head, cq.phase))
        }
        #expect(seen.map(\.0) == [1, 0, 1, 0, 1] && seen.map(\.1) == [1, 0, 0, 1, 1])
        let entries = try #require(driver.completionQueues.first).entries
        #expect(entries.count == 32)
        // struct nvme_completion: result 0, sq_head, sq_id 1, command_id 0, status (phase).
        #expect(Array(entries[8..<16]) == [1, 0, 1, 0, 0, 0, 1, 0])
        #expect(Array(entries[24..<32]) == [1, 0, 1, 0, 0, 0, 0, 0])
        #expect(nvme.statsText.contains("\nerrors 0\n"))
    }

    /// An I/O queue pair per CPU (nvme_setup_io_queues(): num_possible_cpus(), within the
    /// controller's 64): a read from CPU 2 of four completes in the third queue only, its
    /// entry naming SQ 3. Probe says so as the kernel does.
    @Test func anIOQueuePairPerCPU() throws {
        let devices = try smallDevices(ram: 1 << 30, cpus: 4)
        let nvme = try devices.add("nvme nvme0 capacity=64M io_queue_depth=8")
        let driver = try #require(nvme.driver as? NVMeDriver)
        #expect(devices.platform.ram.log.texts().contains("nvme nvme0: 4/0/0 default/read/poll queues"))
        try CPU.acting(as: 2) { try nvme.io("read 4096") }
        let queues = driver.completionQueues
        #expect(queues.map(\.head) == [0, 0, 1, 0])
        // struct nvme_completion: result 0, sq_head 1, sq_id 3, command_id 0, status: the phase.
        #expect(Array(queues[2].entries[0..<16]) == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 1, 0])
        #expect(queues.enumerated().allSatisfy { $0.offset == 2 || $0.element.entries.allSatisfy { $0 == 0 } })
    }

    /// More CPUs than the controller's 64 queue pairs: the CPUs go to the queues in runs,
    /// as group_cpus_evenly() spreads 100 CPUs over 64 vectors: 100 / 64 = 1 each, and
    /// the first 100 % 64 = 36 vectors one more (CPUs 0-71 two a queue, 72-99 one).
    @Test func moreCPUsThanQueuesShareThemInRuns() throws {
        let devices = try smallDevices(ram: 1 << 30, cpus: 100)
        let nvme = try devices.add("nvme nvme0 capacity=64M io_queue_depth=4")
        let driver = try #require(nvme.driver as? NVMeDriver)
        #expect(driver.completionQueues.count == 64)
        func queueOf(_ cpu: Int) throws -> Int {
            let before = driver.completionQueues.map(\.head)
            try CPU.acting(as: cpu) { try nvme.io("read 4096") }
            let after = driver.completionQueues.map(\.head)
            return try #require(before.indices.first { before[$0] != after[$0] })
        }
        #expect(try [0, 1, 2, 3, 70, 71, 72, 73, 99].map(queueOf) == [0, 0, 1, 1, 35, 35, 36, 37, 63])
    }

    /// A 1 MiB read that bounces is split at 252 KiB: 252 x 4 + 16 KiB, five requests of
    /// one bio, all in flight before the doorbell (the plug), so four "prp list page"
    /// blocks at once, as Debian's kernels show (the 16 KiB one takes a "prp list 256").
    /// With io_queue_depth 2 the queue has one tag: each request waits for it, the plug
    /// going out first so the one holding it completes, and one list is all there ever is.
    @Test(arguments: [(64, 4), (2, 1)])
    func aSplitBiosRequestsAreInFlightTogetherAsTheTagsAllow(depth: Int, lists: Int) throws {
        let machine = try smallDevices(ram: 8 << 30, cpus: 1)  // one queue, whichever CPU the thread runs on
        let nvme = try machine.add("nvme nvme0 capacity=64M dma_mask_bits=32 io_queue_depth=\(depth)")
        try nvme.io("read 1M count=3")
        let pool = try #require(nvme.pools[EmulatedDevice.poolKey("prp list page")]).pool
        #expect(pool.counters.blocks == lists && pool.counters.active == 0)
        #expect(nvme.statsText.contains("\nios 15\n") && nvme.statsText.contains("\nerrors 0\n"))
    }

    /// Four writers and readers on one queue (a one-CPU machine): whoever rings runs the
    /// others' queued commands and its interrupt completes them, in whatever order they
    /// reach the completion queue; every transfer verifies and every descriptor and tag
    /// comes back.
    @Test(.timeLimit(.minutes(1))) func submittersSharingAQueueCompleteEachOthersRequests() throws {
        let devices = try smallDevices(ram: 8 << 30, cpus: 1)
        let nvme = try devices.add("nvme nvme0 capacity=64M dma_mask_bits=32 io_queue_depth=4")
        try nvme.io("verify 300K count=50 threads=4 random seed=7")
        #expect(nvme.statsText.contains("\nerrors 0\n"))
        #expect(nvme.active("prp list page") == 0 && nvme.active("prp list 256") == 0)
        let driver = try #require(nvme.driver as? NVMeDriver)
        #expect(driver.completionQueues.count == 1)
        try nvme.io("read 4K")  // a tag is still there for it
    }

    /// iodepth: a thread's transfers in flight together. A 256 KiB read that bounces is
    /// 252 KiB (a "prp list page") and 4 KiB; two at once leave the pool two pages, as
    /// Debian's 6.12 leaves after two parallel 256 KiB direct readers (`prp list page 0 2
    /// 4096 2`). The tags bound it: with io_queue_depth 3 (two tags) one transfer's two
    /// requests hold both, the next waits for them, one list at a time; five tags, two.
    @Test(arguments: [(1, 64, 1), (2, 64, 2), (8, 64, 8), (8, 3, 1), (8, 5, 2)])
    func iodepthPutsATasksTransfersInFlightTogether(iodepth: Int, queueDepth: Int, lists: Int) throws {
        try expectPRPListPages(lists, "io_queue_depth=\(queueDepth)", "read 256K count=16 iodepth=\(iodepth)")
    }

    /// Sixteen 256 KiB bounced reads (32 requests) on one CPU's queue (a thread the
    /// scheduler moves to the other CPU would find the other queue's tags free while its
    /// first queue's requests are still in flight) leave `lists` "prp list page" blocks,
    /// none in use.
    private func expectPRPListPages(_ lists: Int, _ parameters: String, _ job: String) throws {
        let devices = try smallDevices(ram: 8 << 30, cpus: 1, nslabs: 8192)
        let nvme = try devices.add("nvme nvme0 capacity=64M dma_mask_bits=32 \(parameters)")
        try nvme.io(job)
        let pool = try #require(nvme.pools[EmulatedDevice.poolKey("prp list page")]).pool
        #expect(pool.counters.blocks == lists && pool.counters.active == 0)
        #expect(nvme.statsText.contains("\nios 32\n") && nvme.statsText.contains("\nerrors 0\n"))
    }

    /// iodepth_batch ends the plug every N transfers, and nvme_commit_rqs() rings the
    /// doorbell there. Inline, the ring runs the controller and completes what was queued,
    /// so only N transfers' lists are ever held at once: one "prp list page" a 256 KiB
    /// bounced read, N of them; the whole batch under one plug holds all eight.
    @Test(arguments: [(1, 1), (4, 4), (8, 8)])
    func iodepthBatchRingsTheDoorbellAtEachPlugsEnd(batch: Int, lists: Int) throws {
        try expectPRPListPages(lists, "completion=inline", "read 256K count=16 iodepth=8 iodepth_batch=\(batch)")
    }

    /// Eight 256 KiB transfers in flight need 2 MiB of bounce buffers; a fixed 1 MiB
    /// swiotlb holds four. The fifth finds it full behind the others and goes again once
    /// they completed, so the job still verifies, four at a time.
    @Test(.timeLimit(.minutes(1))) func iodepthPastAFullSwiotlbWaitsForTheTransfersAhead() throws {
        let devices = try smallDevices(ram: 8 << 30, nslabs: 512, dynamic: false)
        let nvme = try devices.add("nvme nvme0 capacity=64M dma_mask_bits=32")
        try nvme.io("verify 256K count=24 iodepth=8 random seed=5")
        #expect(nvme.statsText.contains("\nerrors 0\n"))
        let pool = try #require(nvme.pools[EmulatedDevice.poolKey("prp list page")]).pool
        #expect(pool.counters.blocks == 4 && pool.counters.active == 0)
    }

    /// Remove while a job is in flight on two threads, four transfers deep
    /// (blk_mq_freeze_queue(): remove waits for the I/O in flight): the job finishes, every
    /// bounce buffer is unmapped, and a second probe serves I/O from fresh pools.
    @Test(.timeLimit(.minutes(1))) func removeWhileAJobIsInFlightDrainsIt() throws {
        let (machine, nvme) = try controller(ram: 8 << 30, "dma_mask_bits=32")
        defer { withExtendedLifetime(machine) {} }
        final class Outcome: @unchecked Sendable {  // written by the job's thread before `done`
            var error: Errno?
            let done = DispatchSemaphore(value: 0)
        }
        let outcome = Outcome()
        Thread.detachNewThread {
            do throws(Errno) { try nvme.io("verify 256K count=400 threads=2 iodepth=4 random") } catch { outcome.error = error }
            outcome.done.signal()
        }
        usleep(50_000)  // the job is well under way (it moves 400 MiB)
        try nvme.remove()
        outcome.done.wait()
        #expect(outcome.error == nil)
        #expect(machine.platform.swiotlb?.used == 0)
        try nvme.probe()
        try nvme.io("verify 1M count=2")
        #expect(nvme.active("prp list page") == 0 && nvme.statsText.contains("\nerrors 0\n"))
    }

    /// The interrupt's handler unmaps a request where it runs (nvme_pci_complete_rq() ->
    /// nvme_unmap_data()): with a controller thread per queue that is the queue's thread,
    /// never the submitter's; inline, the submitter's own. The trace names each call's thread.
    @Test(arguments: ["thread", "inline"])
    func theInterruptUnmapsInItsOwnContext(completion: String) throws {
        let tracer = Tracer(kernel: .v6_12)
        tracer.enable([.dmaMapSG, .dmaUnmapSG], true)
        let devices = try smallDevices(ram: 8 << 30, tracer: tracer)
        let nvme = try devices.add("nvme nvme0 capacity=64M dma_mask_bits=32 completion=\(completion)")
        try nvme.io("verify 64K count=8")
        let entries = tracer.entries()
        let maps = Set(entries.filter { $0.event == .dmaMapSG }.map(\.pid))
        let unmaps = Set(entries.filter { $0.event == .dmaUnmapSG }.map(\.pid))
        #expect(entries.filter { $0.event == .dmaMapSG }.count == 16 && entries.filter { $0.event == .dmaUnmapSG }.count == 16)
        #expect(maps.count == 1, "one submitting thread")
        if completion == "thread" { #expect(maps.isDisjoint(with: unmaps)) } else { #expect(unmaps == maps) }
        #expect(devices.platform.swiotlb?.used == 0 && nvme.statsText.contains("\nerrors 0\n"))
    }

    /// Remove freezes the queue, then ends each queue's controller thread (and joins it):
    /// probe and remove again and again leave no thread behind, and the next probe's
    /// threads serve I/O.
    @Test func removeEndsEveryControllerThread() throws {
        let (devices, nvme) = try controller(ram: 8 << 30, "dma_mask_bits=32")
        defer { withExtendedLifetime(devices) {} }
        let driver = try #require(nvme.driver as? NVMeDriver)
        for _ in 0..<3 {
            let queues = try #require(driver.controller.withLock { $0 }).ioQueues
            #expect(queues.count == devices.ram.cpus && queues.allSatisfy { !$0.controllerStopped })
            try nvme.io("verify 256K count=4 threads=2")
            try nvme.remove()
            #expect(queues.allSatisfy { $0.controllerStopped })
            try nvme.probe()
        }
        #expect(nvme.statsText.contains("\nerrors 0\n"))
    }

    /// drivers/nvme/host/fault_inject.c: with probability 100 and times 2 the next two
    /// completions end with the injected status (NVME_SC_INVALID_OPCODE | NVME_SC_DNR:
    /// BLK_STS_NOTSUPP), the third is the controller's. A failed request still gives back
    /// its bounce buffer, descriptors and tag on the completion path.
    @Test(arguments: ["thread", "inline"])
    func faultInjectionAtCompletionFailsTheRequestAndReleasesIt(completion: String) throws {
        let (devices, nvme) = try controller(ram: 8 << 30, "dma_mask_bits=32 io_queue_depth=4 completion=\(completion)")
        defer { withExtendedLifetime(devices) {} }
        try nvme.setParameter("fault_inject_probability", "100")
        try nvme.setParameter("fault_inject_times", "2")
        for _ in 0..<2 {
            #expect(throws: Errno.ioError) { try nvme.io("read 4K") }
            #expect(devices.platform.swiotlb?.used == 0)
            #expect(nvme.active("prp list page") == 0 && nvme.active("prp list 256") == 0)
        }
        #expect(nvme.parameters.contains { $0 == ("fault_inject_times", "0") })
        // Every one of the three tags is free again: a transfer of three requests at once goes.
        try nvme.io("verify 600K iodepth=2")
        #expect(nvme.statsText.contains("\nerrors 2\n"))
        #expect(throws: Errno.invalidArgument) { try nvme.setParameter("fault_inject_status", "0") }
        #expect(throws: Errno.invalidArgument) { try nvme.setParameter("fault_inject_probability", "101") }
        // times is an atomic_t's debugfs file: any int (below -1 it counts on down), no more.
        try nvme.setParameter("fault_inject_times", "-2147483648")
        #expect(nvme.parameters.contains { $0 == ("fault_inject_times", "-2147483648") })
        for bad in ["2147483648", "-2147483649", "--1", "-"] {
            #expect(throws: Errno.invalidArgument) { try nvme.setParameter("fault_inject_times", bad) }
        }
    }

    /// A controller may complete a batch in any order (`reorder=1`: last-first). Four
    /// transfers in flight together on a one-CPU machine's queue take command ids 0...3 and
    /// one doorbell; the completion queue then holds them 3, 2, 1, 0 (0...3 in order
    /// without), and every request still gets its own status and data, which a verify at
    /// depth 8 through the bounce buffers checks.
    @Test(arguments: [(true, [3, 2, 1, 0]), (false, [0, 1, 2, 3])])
    func completionsOutOfOrderReachTheirOwnRequests(reorder: Bool, ids: [Int]) throws {
        let devices = try smallDevices(ram: 8 << 30, cpus: 1)
        let nvme = try devices.add("nvme nvme0 capacity=64M dma_mask_bits=32 reorder=\(reorder ? 1 : 0)")
        try nvme.io("read 4K count=4 iodepth=4")
        let driver = try #require(nvme.driver as? NVMeDriver)
        let entries = try #require(driver.completionQueues.first).entries
        let completed = (0..<4).map { (i: Int) -> Int in
            Int(entries[i * NVMeCompletion.size + NVMeCompletion.commandID]) | Int(entries[i * NVMeCompletion.size + NVMeCompletion.commandID + 1]) << 8
        }
        #expect(completed == ids)
        try nvme.io("verify 64K count=64 iodepth=8 random seed=3")
        #expect(nvme.statsText.contains("\nerrors 0\n"))
        #expect(devices.platform.swiotlb?.used == 0 && nvme.active("prp list 256") == 0)
    }

    @Test func probeMakesTheDescriptorPools() throws {
        let (machine, nvme) = try controller()
        defer { withExtendedLifetime(machine) {} }
        let pools = try #require(nvme.device.pools)
        #expect(pools.contains("prp list page       0    0 4096  0\n") && pools.contains("prp list 256        0    0  256  0\n"))
        try nvme.remove()
        try nvme.setParameter("pool_names", "descriptor")
        try nvme.probe()
        #expect(nvme.device.pools?.contains("nvme descriptor small    0    0  256  0\n") == true)
        #expect(throws: Errno.resourceBusy) { try nvme.destroyPool("nvme descriptor small") }
    }

    @Test(arguments: ["verify 4096", "verify 8192 offset=512", "verify 2M", "verify 8M offset=4096", "verify 777 offset=3333 count=9",
                      "verify 65536 count=40 threads=3 random seed=4", "verify 1M sgl", "verify 64K count=9 threads=2 sgl",
                      "verify 64K count=40 iodepth=8 iodepth_batch=1", "verify 256K count=20 threads=2 iodepth=4 iodepth_batch=3"])
    func verifyPasses(_ job: String) throws {
        let sgl = job.hasSuffix(" sgl")
        let (machine, nvme) = try controller(ram: 1 << 30, sgl ? "sgl_threshold=32768" : "")
        defer { withExtendedLifetime(machine) {} }
        try nvme.io(sgl ? String(job.dropLast(4)) : job)
        #expect(nvme.statsText.contains("\nerrors 0\n"))
        // Every descriptor went back.
        #expect(nvme.active("prp list page") == 0)
        #expect(nvme.active("prp list 256") == 0)
    }

    /// The queue limits Debian's 6.12 gives QEMU's NVMe controller (read in the oracle's
    /// guest: max_hw_sectors_kb 252 and max_segments 64 when every map bounces;
    /// nvme_max_drv_segments() is max_hw_sectors / 8 + 1), and NVME_MAX_SEGS otherwise.
    @Test func theQueueLimitsFollowTheMappingSize() throws {
        let (machine, bounced) = try controller(ram: 8 << 30, "dma_mask_bits=32")
        defer { withExtendedLifetime(machine) {} }
        let limits = try #require(bounced.queue).limits
        #expect((limits.maxTransfer, limits.maxSegments) == (252 << 10, 64))
        let (other, direct) = try controller()
        defer { withExtendedLifetime(other) {} }
        let wide = try #require(direct.queue).limits
        #expect((wide.maxTransfer, wide.maxSegments) == (8192 << 10, 128))
    }

    @Test func bouncedThroughASmallGrowingSwiotlb() throws {
        // 32-bit mask, data above 4 GiB; transfers capped at swiotlb's 256 KiB less the
        // min_align_mask padding (4 KiB): 252 KiB.
        let (machine, nvme) = try controller(ram: 8 << 30, "dma_mask_bits=32")
        defer { withExtendedLifetime(machine) {} }
        // 256 KiB is split at max_sectors: 252 KiB and 4 KiB, two requests.
        try nvme.io("read 256K")
        #expect(nvme.statsText.contains("\nios 2\nbytes 262144\nbounced_bytes 262144\nerrors 0\n"))
        try nvme.io("verify 252K count=4 threads=4 offset=512")
        #expect(nvme.statsText.contains("\nios 34\nbytes 8519680\nbounced_bytes 8519680\nerrors 0\n"))
        // Not whole sectors and not page-aligned: split, read-modify-written, verified.
        try nvme.io("verify 1000000 count=5 random")
        #expect(nvme.statsText.contains("\nerrors 0\n"))
    }
}
