import Block
import DMA
@testable import Drivers
import Foundation
import Hardware
import Lib
import Locking
import SystemPackage
import TestSupport
import Testing
import Trace

/// The SGL the driver writes, read back element by element.
struct SGE: Equatable, CustomStringConvertible {
    let address: UInt64, length: Int, nextChainOffset: UInt8, flags: UInt8
    init(_ address: UInt64, _ length: Int, _ nextChainOffset: UInt8 = 0, _ flags: UInt8) {
        self.address = address; self.length = length; self.nextChainOffset = nextChainOffset; self.flags = flags
    }
    init(at: UnsafeRawPointer) {
        self.init(at.loadUnaligned(as: UInt64.self), Int(at.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                  at.load(fromByteOffset: 14, as: UInt8.self), at.load(fromByteOffset: 15, as: UInt8.self))
    }
    var description: String { "(\(String(address, radix: 16)), \(length), \(nextChainOffset), \(String(flags, radix: 16)))" }
}

@Suite struct MPT3SASSGLTests {
    /// Builds the SGL for `pages` discontiguous 4 KiB pages at 0x1_0000_0000 + 2 * i pages,
    /// with 40 chain buffers at dma 0xc000_0000 + 128 * i.
    func build(pages: Int) -> (frame: [UInt8], chains: [[UInt8]], used: Int) {
        let frame = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 16)
        let chainMemory = UnsafeMutableRawPointer.allocate(byteCount: 128 * 40, alignment: 16)
        defer { frame.deallocate(); chainMemory.deallocate() }
        chainMemory.initializeMemory(as: UInt8.self, repeating: 0xee, count: 128 * 40)
        let list = UnsafeMutableBufferPointer<ScatterEntry>.allocate(capacity: pages)
        defer { list.deallocate() }
        for i in 0..<pages {
            list[i] = ScatterEntry(phys: 0x1_0000_0000 + UInt64(i) * 8192, length: 4096)
            list[i].dmaAddress = list[i].phys
            list[i].dmaLength = 4096
        }
        MPT3SASSGL.buildRequest(frame, BlockCommand(write: true, lba: 8, sectors: pages * 8))
        let used = MPT3SASSGL.build(frame: frame, list: list, chainSegmentSize: 128) {
            HeldBlock(cpu: chainMemory + 128 * $0, dma: 0xc000_0000 + 128 * UInt64($0))
        }
        let chains = (0..<used).map { Array(UnsafeRawBufferPointer(start: chainMemory + 128 * $0, count: 128)) }
        return (Array(UnsafeRawBufferPointer(start: frame, count: 128)), chains, used)
    }

    func page(_ i: Int) -> UInt64 { 0x1_0000_0000 + UInt64(i) * 8192 }
    func sge(_ bytes: [UInt8], _ slot: Int) -> SGE { bytes.withUnsafeBytes { SGE(at: $0.baseAddress! + slot * 16) } }

    @Test func onePageFitsTheFrame() {
        let (frame, _, used) = build(pages: 1)
        #expect(used == 0 && frame[2] == 0)  // no ChainOffset
        #expect(sge(frame, 6) == SGE(page(0), 4096, 0, 0x40))
        // WRITE(16) of 8 sectors at LBA 8; DataLength 4096; SGLOffset0 0x60 / 4.
        #expect(frame[0x40] == 0x8a && frame[0x49] == 8 && frame[0x4d] == 8 && frame[0x14] == 24)
        #expect(frame[0x1c] == 0x00 && frame[0x1d] == 0x10)
    }

    @Test func twoPagesFillBothSlots() {
        let (frame, _, used) = build(pages: 2)
        #expect(used == 0)
        #expect(sge(frame, 6) == SGE(page(0), 4096, 0, 0x00))
        #expect(sge(frame, 7) == SGE(page(1), 4096, 0, 0x40))
    }

    @Test func thirtyThreePagesTakeFiveChains() {
        let (frame, chains, used) = build(pages: 33)
        // One element in the frame, then 7 per chain: 7 + 7 + 7 + 7 + 4 = 32.
        #expect(used == 5 && frame[2] == 7)
        #expect(sge(frame, 6) == SGE(page(0), 4096, 0, 0x00))
        #expect(sge(frame, 7) == SGE(0xc000_0000, 128, 7, 0x80))
        for c in 0..<4 {
            for k in 0..<7 { #expect(sge(chains[c], k) == SGE(page(1 + 7 * c + k), 4096, 0, 0x00)) }
            let length = c < 3 ? 128 : 64
            let next: UInt8 = c < 3 ? 7 : 0
            #expect(sge(chains[c], 7) == SGE(0xc000_0000 + 128 * UInt64(c + 1), length, next, 0x80))
        }
        #expect((0..<3).map { sge(chains[4], $0) } == (29..<32).map { SGE(page($0), 4096, 0, 0x00) })
        #expect(sge(chains[4], 3) == SGE(page(32), 4096, 0, 0x40))
        #expect(chains[4][64] == 0xee)  // nothing past the last element
    }

    @Test func theMaximalTransferTakesAllThirtySevenChains() {
        // max_sgl_entries 256: 1 in the frame, 36 chains of 7, one of 3.
        let (_, chains, used) = build(pages: 256)
        #expect(used == 37)
        #expect(sge(chains[35], 7) == SGE(0xc000_0000 + 128 * 36, 48, 0, 0x80))
        #expect(sge(chains[36], 2) == SGE(page(255), 4096, 0, 0x40))
    }
}

@Suite(.serialized) struct MPT3SASIOTests {
    /// A small HBA (scsiio depth 512 - 128 - 133 = 251) with a 64 MiB RAM disk.
    /// The machine keeps its devices bound: hold it while using `hba0`.
    func hba(ram: UInt64 = 1 << 30, _ extra: String = "") throws -> (Devices, EmulatedDevice) {
        let devices = try smallDevices(ram: ram)
        return (devices, try devices.add("mpt3sas hba0 hba_queue_depth=512 capacity=64M \(extra)"))
    }

    @Test(arguments: [
        "verify 4096", "verify 512 offset=512", "verify 65536 count=20", "verify 1000 offset=77",
        "verify 1M offset=4095", "verify 8192 count=50 threads=4 random seed=9", "verify 3 offset=511",
        "verify 64K count=40 iodepth=8 iodepth_batch=1",
    ])
    func verifyPasses(_ job: String) throws {
        let (machine, hba) = try hba()
        defer { withExtendedLifetime(machine) {} }
        try hba.io(job)
        #expect(hba.statsText.contains("\nerrors 0\n") && hba.statsText.contains("\nbounced_bytes 0\n"))
    }

    /// Each request's reply comes through its CPU's reply queue: 100 reads and writes leave
    /// the host indexes of the two CPUs' queues (0 and 1 of the 12) summing to the replies
    /// and every other queue untouched; every descriptor taken is back to all ones.
    @Test func repliesComeThroughTheCPUsQueues() throws {
        let (machine, hba) = try hba()
        defer { withExtendedLifetime(machine) {} }
        try hba.io("verify 4096 count=50")
        let driver = try #require(hba.driver as? MPT3SASDriver)
        let queues = try #require(driver.replyQueues)
        #expect(queues.cpuMSIx == [0, 1])
        #expect(queues.hostIndexes[0] + queues.hostIndexes[1] == 100 && queues.hostIndexes[2...].allSatisfy { $0 == 0 })
        #expect(hba.statsText.contains("\nerrors 0\n"))
    }

    /// _base_assign_reply_queues()'s grouping, by hand: nr_cpus / nr_msix CPUs a queue, one
    /// more for the first nr_cpus % nr_msix; 2 CPUs over 12 queues use the first two.
    @Test func cpusAreGroupedOverTheQueues() {
        #expect(MPT3SASReplyQueue.assign(cpus: 2, queues: 12) == [0, 1])
        #expect(MPT3SASReplyQueue.assign(cpus: 8, queues: 3) == [0, 0, 0, 1, 1, 1, 2, 2])
        let eighty = MPT3SASReplyQueue.assign(cpus: 80, queues: 12)
        #expect(eighty.prefix(7).allSatisfy { $0 == 0 } && eighty[49...55].allSatisfy { $0 == 7 } && eighty[56...61].allSatisfy { $0 == 8 })
        #expect(eighty.last == 11 && eighty.count == 80)
    }

    @Test func aThirtyTwoBitHBABouncesEveryByte() throws {
        // 8 GiB of RAM: data pages come from above 4 GiB, which a 32-bit mask cannot reach.
        let (devices, hba) = try hba(ram: 8 << 30, "dma_mask_bits=32")
        try hba.io("verify 65536 count=8 threads=2")
        // 2 threads x 8 x (write + read) x 64 KiB.
        #expect(hba.statsText.contains("\nios 32\nbytes 2097152\nbounced_bytes 2097152\nerrors 0\n"))
        #expect(devices.platform.swiotlb?.used == 0)
    }

    /// The reply queue's interrupt handler unmaps a request where it runs (_scsih_io_done()
    /// -> scsi_dma_unmap()): with the IOC in a thread per vector that is the vector's
    /// thread, never the submitter's; inline, the submitter's own. Bounced, so the unmap
    /// copies the reads back there too. The trace names each call's thread.
    @Test(arguments: ["thread", "inline"])
    func theReplyInterruptUnmapsInItsOwnContext(completion: String) throws {
        let tracer = Tracer(kernel: .v6_12)
        tracer.enable([.dmaMapSG, .dmaUnmapSG], true)
        let devices = try smallDevices(ram: 8 << 30, tracer: tracer)
        let hba = try devices.add("mpt3sas hba0 hba_queue_depth=512 capacity=64M dma_mask_bits=32 completion=\(completion)")
        try hba.io("verify 64K count=8")
        let entries = tracer.entries()
        let maps = entries.filter { $0.event == .dmaMapSG }, unmaps = entries.filter { $0.event == .dmaUnmapSG }
        #expect(maps.count == 16 && unmaps.count == 16)
        #expect(Set(maps.map(\.pid)).count == 1, "one submitting thread")
        if completion == "thread" {
            #expect(Set(maps.map(\.pid)).isDisjoint(with: Set(unmaps.map(\.pid))))
        } else {
            #expect(Set(unmaps.map(\.pid)) == Set(maps.map(\.pid)))
        }
        #expect(devices.platform.swiotlb?.used == 0 && hba.statsText.contains("\nerrors 0\n"))
    }

    /// A request the IOC fails (a frame whose function it does not know) is completed from
    /// its Address Reply like any other: the waiter gets the frame's IOCStatus
    /// (MPI2_IOCSTATUS_INVALID_FUNCTION), the SMID is free again, the reply frame is back
    /// on the free queue and the IOC said why in the log.
    @Test(arguments: ["thread", "inline"])
    func aFailedRequestCompletesWithItsIOCStatus(completion: String) throws {
        let (devices, hba) = try hba(ram: 1 << 30, "completion=\(completion)")
        defer { withExtendedLifetime(devices) {} }
        let driver = try #require(hba.driver as? MPT3SASDriver)
        let adapter = try #require(driver.adapter.withLock { $0 })
        let free = adapter.smids.available
        let smid = adapter.smids.get()
        let frame = adapter.requestFrames.value + smid * MPT3SASDriver.requestFrameSize
        frame.initializeMemory(as: UInt8.self, repeating: 0, count: MPT3SASDriver.requestFrameSize)
        frame.storeBytes(of: 0x77, toByteOffset: MPT3SASFrame.function, as: UInt8.self)
        var status = CompletionWait.pending
        let noList = UnsafeMutableBufferPointer<ScatterEntry>(start: nil, count: 0)
        let vector = adapter.vector
        let ended = withUnsafeMutablePointer(to: &status) { waiter in
            vector.post(smid, list: noList, .toDevice, waiter: waiter)
            vector.flush()
            return vector.wait(waiter)
        }
        #expect(ended == MPT3SASReply.IOCStatus.invalidFunction.rawValue && status == ended)
        #expect(adapter.smids.available == free)
        let why = "mpt3sas_cm0: ioc status: scsi io failed for smid(\(smid)): unknown function"
        let logged = devices.ram.log.texts().contains { $0.hasSuffix(why) }
        #expect(logged)
        // The reply frame went back: the IOC takes frames from the free queue for every
        // failure after it, which a later verify would not survive without them.
        try hba.io("verify 4096 count=20")
        #expect(hba.statsText.contains("\nerrors 0\n"))
    }

    /// Remove freezes the queue, then ends each vector's IOC thread (and joins it): probe
    /// and remove again and again leave no thread behind, and the next probe's serve I/O.
    @Test func removeEndsEveryVectorsThread() throws {
        let (devices, hba) = try hba()
        defer { withExtendedLifetime(devices) {} }
        let driver = try #require(hba.driver as? MPT3SASDriver)
        for _ in 0..<3 {
            let vectors = driver.vectors
            // cpu_msix_table on two CPUs over 12 queues: vectors 0 and 1.
            #expect(vectors.map(\.msix) == [0, 1] && vectors.allSatisfy { !$0.stopped })
            try hba.io("verify 256K count=4 threads=2")
            try hba.remove()
            #expect(vectors.allSatisfy { $0.stopped })
            try hba.probe()
        }
        #expect(hba.statsText.contains("\nerrors 0\n"))
    }

    @Test func theDiskReadsWhatIoWrote() throws {
        let (machine, hba) = try hba()
        defer { withExtendedLifetime(machine) {} }
        try hba.io("write 8192 offset=1M seed=5")
        let disk = try #require(hba.queue)
        #expect(disk.capacity == 64 << 20)
        var bytes = [UInt8](repeating: 0, count: 100)
        let n = try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(into: buffer, at: (1 << 20) + 4000) }
        #expect(n == 100)
        #expect(bytes == (0..<100).map { DataPattern.byte(5, at: (1 << 20) + 4000 + $0) })
        // An unaligned write lands exactly, its neighbours untouched.
        let written = try [UInt8](repeating: 0xab, count: 10).withUnsafeBytes { buffer throws(Errno) in
            try disk.write(from: buffer, at: (1 << 20) + 4005)
        }
        #expect(written == 10)
        _ = try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(into: buffer, at: (1 << 20) + 4000) }
        #expect(bytes[0..<5].elementsEqual((0..<5).map { DataPattern.byte(5, at: (1 << 20) + 4000 + $0) }))
        #expect(bytes[5..<15].allSatisfy { $0 == 0xab })
        #expect(bytes[15] == DataPattern.byte(5, at: (1 << 20) + 4015))
        // The end of the disk: reads stop, writes are ENOSPC.
        #expect(try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(into: buffer, at: (64 << 20) - 10) } == 10)
        #expect(throws: Errno.noSpace) { try bytes.withUnsafeBytes { buffer throws(Errno) in try disk.write(from: buffer, at: 64 << 20) } }
    }

    @Test(arguments: ["", "fetch 4096", "read", "read 0", "read 4096 count=0", "read 4096 threads=65", "read 4096 bogus=1",
                      "read 4096 count=2 count=3", "read 4096 offset=64M", "read 65M", "read 4096 offset=-1",
                      "read 4096 iodepth=0", "read 4096 iodepth=1025", "read 4096 iodepth=2 iodepth=2", "read 4096 iodepth",
                      "read 4096 iodepth_batch=0", "read 4096 iodepth=2 iodepth_batch=3"])
    func badJobsChangeNothing(_ job: String) throws {
        let (machine, hba) = try hba()
        defer { withExtendedLifetime(machine) {} }
        #expect(throws: Errno.invalidArgument) { try hba.io(job) }
        #expect(hba.statsText.contains("\nios 0\nbytes 0\n"))
    }

    @Test func moreThanTheSGLCarriesIsSplit() throws {
        // 16 SGEs of 64 KiB carry at most 1 MiB, once refused; 2 MiB is two bios of
        // BIO_MAX_VECS pages, each one request of 16 SGEs; written and read back: 4.
        let (devices, hba) = try hba(ram: 1 << 30, "max_sgl_entries=16")
        defer { withExtendedLifetime(devices) {} }
        try hba.io("verify 2M")
        #expect(hba.statsText.contains("\nios 4\nbytes 4194304\n"))
    }

    @Test func removeWaitsForIOInFlight() throws {
        let devices = try smallDevices(ram: 1 << 30)
        let free = devices.ram.unusedPages
        let hba = try devices.add("mpt3sas hba0 hba_queue_depth=512 capacity=64M")
        let outcome = PthreadMutex<Errno??>(nil)
        let io = Thread {
            do throws(Errno) {
                try hba.io("verify 65536 count=2000 threads=2 random")
                outcome.withLock { $0 = .some(nil) }
            } catch {
                outcome.withLock { $0 = .some(error) }
            }
        }
        io.start()
        usleep(50_000)
        let stillRunning = outcome.withLock { $0 == nil }
        try hba.remove()
        #expect(stillRunning)
        for _ in 0..<1000 where outcome.withLock({ $0 == nil }) { usleep(1000) }
        // The whole run finished (every transfer verified) before the pools went; then
        // every page came back.
        #expect(outcome.withLock { $0 } == .some(nil))
        #expect(devices.ram.unusedPages == free)
    }

    @Test func ioToARemovedHBAIsENODEV() throws {
        let (machine, hba) = try hba()
        defer { withExtendedLifetime(machine) {} }
        try hba.remove()
        #expect(throws: Errno.noDevice) { try hba.io("read 4096") }
    }

    @Test func aFileBackedDiskKeepsItsData() throws {
        let path = NSTemporaryDirectory() + "dmaemu-disk-\(getpid()).img"
        defer { unlink(path) }
        do {
            let (machine, hba) = try hba(ram: 1 << 30, "backing_file=\(path)")
            defer { withExtendedLifetime(machine) {} }
            try hba.io("write 65536 count=4 offset=12345 seed=77")
            try hba.remove()
        }
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_size == 64 << 20 && info.st_blocks * 512 < 1 << 20)
        let (machine, hba) = try hba(ram: 1 << 30, "backing_file=\(path)")
        defer { withExtendedLifetime(machine) {} }
        let disk = try #require(hba.queue)
        var bytes = [UInt8](repeating: 0, count: 4 * 65536 + 2)
        _ = try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(into: buffer, at: 12344) }
        #expect(bytes.first == 0 && bytes.last == 0)
        #expect(bytes[1...(4 * 65536)].elementsEqual((0..<(4 * 65536)).map { DataPattern.byte(77, at: 12345 + $0) }))
    }
}
