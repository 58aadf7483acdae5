import Block
import DMA
import Foundation
import Lib
import PhysicalMemory
import SWIOTLB
import SystemPackage
import Testing

/// The simplest DMA disk: each command moves its scatter list's bytes by dma address
/// between memory and a buffer, through the device's access checks, as a controller would.
/// As a driver does, it owns its queue (which holds it weakly).
final class TestDisk: DMABlockDriver, @unchecked Sendable {  // requests touch disjoint bytes of `storage`; `lock` guards the log
    let storage: UnsafeMutableRawBufferPointer
    var flushes: Int { lock.withLock { flushed } }
    private var flushed = 0
    /// The commands in the order they completed (a job's threads append at once).
    var requests: [BlockCommand] { lock.withLock { completed } }
    private var completed: [BlockCommand] = []
    /// swiotlb's slots in use as each command ran: what was mapped (in flight) with it.
    var slotsInUse: [Int] { lock.withLock { inUse } }
    private var inUse: [Int] = []
    private let lock = NSLock()
    var queue: BlockQueue!
    /// A broken disk: reads move nothing, or come back with the byte at this disk offset
    /// flipped.
    var dropReads = false
    var flipOnRead: Int?

    init(capacity: Int) {
        storage = .allocate(byteCount: capacity, alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { storage.deallocate() }

    var media: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }

    func queueRequest(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>,
                      status: UnsafeMutablePointer<UInt16>) throws(Errno) -> UnsafeRawPointer? {
        defer {
            let used = queue.device.swiotlb?.mem.used ?? 0
            lock.withLock {
                completed.append(command)
                inUse.append(used)
            }
        }
        var position = command.lba * BlockLimits.sectorSize
        for entry in list {
            guard let memory = try? queue.device.deviceMemory(entry.dmaAddress, size: entry.dmaLength, write: !command.write)
            else { throw .ioError }
            if command.write {
                (storage.baseAddress! + position).copyMemory(from: memory, byteCount: entry.dmaLength)
            } else if !dropReads {
                memory.copyMemory(from: storage.baseAddress! + position, byteCount: entry.dmaLength)
                if let flip = flipOnRead, (position..<(position + entry.dmaLength)).contains(flip) {
                    memory.storeBytes(of: ~storage[flip], toByteOffset: flip - position, as: UInt8.self)
                }
            }
            position += entry.dmaLength
        }
        return nil
    }

    func flush() throws(Errno) { lock.withLock { flushed += 1 } }
}

/// Requests of at most 256 KiB.
let quarterMiB = BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 256 << 10)

/// A TestDisk and its queue, on a device of `ram` with a 512-slot swiotlb.
func testDisk(ram bytes: UInt64 = 1 << 30, maskBits: Int = 64, capacity: Int = 4 << 20, dynamic: Bool = true, slots: Int = 512,
              limits: BlockLimits = BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 1 << 20)) throws -> TestDisk {
    let ram = try PhysicalMemory(size: bytes)
    var config = SWIOTLBConfig()
    config.nslabs = slots
    config.nareas = 1
    config.dynamic = dynamic
    let device = Device(name: "disk0", ram: ram, swiotlb: IOTLBMem(ram: ram, config: config), dmaMask: dmaBitMask(maskBits), coherentDMAMask: dmaBitMask(maskBits))
    let disk = TestDisk(capacity: capacity)
    let queue = BlockQueue(
        device: device, capacity: capacity, limits: limits, driver: disk)
    disk.queue = queue
    return disk
}

@Suite struct BlockQueueTests {
    @Test func statsOfARun() {
        let stats = IOStats()
        stats.account(ios: 100, bytes: 1 << 20, bounced: 4096, errors: 0)
        // 1..100 us: mean 50.5 us; nearest-rank p99 is the 99th smallest, 99 us.
        var latencies = (1...100).reversed().map { $0 * 1000 }
        stats.finishRun(bytes: 1 << 20, seconds: 0.5, latencies: &latencies)
        #expect(stats.values.map { "\($0.name) \($0.value)" } == [
            "ios 100", "bytes 1048576", "bounced_bytes 4096", "errors 0", "last_mib_s 2.00", "avg_lat_us 50.50", "p99_lat_us 99.00",
        ])
    }

    @Test func sequentialTransfersFollowEachOtherAcrossThreads() throws {
        let disk = try testDisk(), queue = disk.queue!
        // Two threads of two 4 KiB writes from 8 KiB: thread 0 writes [8K, 16K), thread 1
        // [16K, 24K); nothing else is touched.
        try IOJob(parsing: "write 4096 count=2 threads=2 offset=8192 seed=3").run(on: queue)
        #expect(disk.media[0..<8192].allSatisfy { $0 == 0 } && disk.media[24576...].allSatisfy { $0 == 0 })
        #expect(disk.media[8192..<24576].elementsEqual((8192..<24576).map { DataPattern.byte(3, at: $0) }))
        // Acknowledged means durable: the job flushed once.
        #expect(disk.flushes == 1)
    }

    @Test func aDiskReadOrWriteIsCutIntoRequestsAndPartialSectorsAreMerged() throws {
        let disk = try testDisk(), queue = disk.queue!
        let data = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(try data.withUnsafeBytes { buffer throws(Errno) in try queue.write(from: buffer, at: 1000) } == data.count)
        #expect(disk.media[1000..<(1000 + data.count)].elementsEqual(data) && disk.media[0..<1000].allSatisfy { $0 == 0 })
        var back = [UInt8](repeating: 0, count: 100)
        #expect(try back.withUnsafeMutableBytes { buffer throws(Errno) in try queue.read(into: buffer, at: 1500) } == 100)
        #expect(back.elementsEqual(data[500..<600]))
        // Bios of up to BIO_MAX_VECS pages ending at multiples of 1 MiB: [1000, 1M), [1M, 2M),
        // [2M, 3M), [3M, 3M + 1000); each fits one request (1 MiB, 16 segments of 64 KiB at
        // most), and the first and last begin by reading the sectors they cover in part.
        // Then the one read: 7 requests.
        #expect(queue.stats.current.0.ios == 7)
        #expect(throws: Errno.noSpace) { try data.withUnsafeBytes { buffer throws(Errno) in try queue.write(from: buffer, at: 4 << 20) } }
    }

    @Test func aFullSwiotlbHoldsRequestsBackUntilItHasRoom() throws {
        // A fixed 1 MiB swiotlb, all of it mapped by someone else; a 32-bit controller's
        // bounced write waits (BLK_STS_RESOURCE) until those mappings go, then succeeds.
        let disk = try testDisk(ram: 8 << 30, maskBits: 32, dynamic: false), queue = disk.queue!
        let device = queue.device
        var held: [DMAAddr] = []
        while let dma = device.mapSingle(5 << 30, size: 65536, .toDevice, attributes: .noWarn) { held.append(dma) }
        #expect(held.count == 16)
        let mappings = UnsafeSendable(held)
        // A thread of its own: a dispatch worker may not come while parallel tests hold them all.
        Thread.detachNewThread {
            usleep(200_000)
            for dma in mappings.value { device.unmapSingle(dma, size: 65536, .toDevice) }
        }
        let start = ContinuousClock.now
        try IOJob(parsing: "verify 65536").run(on: queue)
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        #expect(queue.stats.current.0 == IOStats.Totals(ios: 2, bytes: 131072, bouncedBytes: 131072, errors: 0))
    }

    @Test func aBioLargerThanARequestIsSplitAtMaxSectorsAndItsRequestsAreInFlightTogether() throws {
        // max_sectors 256 KiB: a 2 MiB write is two bios of BIO_MAX_VECS pages (1 MiB), each
        // four requests mapped at once (swiotlb's high water: 512 slots of 2 KiB), the second
        // bio after the first, each bio's requests in the order they were queued.
        let disk = try testDisk(ram: 8 << 30, maskBits: 32, capacity: 8 << 20, slots: 2048, limits: quarterMiB), queue = disk.queue!
        let swiotlb = try #require(queue.device.swiotlb).mem
        try IOJob(parsing: "write 2M").run(on: queue)
        #expect(disk.requests.map { ($0.lba, $0.sectors) }.elementsEqual(
            [(0, 512), (512, 512), (1024, 512), (1536, 512), (2048, 512), (2560, 512), (3072, 512), (3584, 512)], by: ==))
        #expect(swiotlb.usedHiwater == 512 && swiotlb.used == 0)
        #expect(queue.stats.current.0 == IOStats.Totals(ios: 8, bytes: 2 << 20, bouncedBytes: 2 << 20, errors: 0))
    }

    @Test func aSlotIsRefilledAsItsTransferCompletes() throws {
        // iodepth 4 of 64 KiB bounced writes: 32 slots of 2 KiB each. The first four go out
        // together (32, 64, 96, 128 slots mapped as each runs); from then on each new one is
        // sent once the oldest is reaped, with the other three still mapped: 128 each time.
        // A job that waited for the whole batch would map 32, 64, 96, 128 again.
        let disk = try testDisk(ram: 8 << 30, maskBits: 32, capacity: 2 << 20), queue = disk.queue!
        try IOJob(parsing: "write 64K count=10 iodepth=4").run(on: queue)
        #expect(disk.slotsInUse == [32, 64, 96, 128, 128, 128, 128, 128, 128, 128])
        #expect(disk.requests.map(\.lba) == (0..<10).map { $0 * 128 })
        #expect(try #require(queue.device.swiotlb).mem.used == 0)
    }

    @Test func aTransferThatFindsSwiotlbFullWaitsForTheNextReap() throws {
        // A fixed 128-slot swiotlb (its least: one segment) holds four 64 KiB bounced writes of
        // the eight in flight: the fifth finds it full while the first four are, and goes
        // once one of them is reaped,
        // not through the requeue (which nothing would end: the thread that requeues is the
        // one that reaps, and it would fail the job after two seconds).
        let disk = try testDisk(ram: 8 << 30, maskBits: 32, capacity: 2 << 20, dynamic: false, slots: 128), queue = disk.queue!
        let swiotlb = try #require(queue.device.swiotlb).mem
        let start = ContinuousClock.now
        try IOJob(parsing: "write 64K count=12 iodepth=8").run(on: queue)
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(disk.slotsInUse == [32, 64, 96, 128, 128, 128, 128, 128, 128, 128, 128, 128])
        #expect(swiotlb.usedHiwater == 128 && swiotlb.used == 0)
        #expect(disk.media[0..<(12 << 16)].elementsEqual((0..<(12 << 16)).map { DataPattern.byte(1, at: $0) }))
    }

    @Test func aFailedStartStopsTheJob() throws {
        // The first transfer's pages cannot be had (fail_page_alloc on the next allocation):
        // the job fails with EIO and sends nothing more, the other three slots included.
        let disk = try testDisk(), queue = disk.queue!
        queue.device.ram.faults.mode = .failNth(1)
        #expect(throws: Errno.ioError) { try IOJob(parsing: "write 4K count=8 iodepth=4").run(on: queue) }
        #expect(disk.requests.isEmpty)
        #expect(queue.stats.current.0.errors == 1)
        #expect(queue.device.ram.log.texts().contains { $0.hasSuffix("I/O error, dev disk0, sector 0 op 0x1:(WRITE)") })
    }

    @Test func verifyFindsTheFirstByteThatDiffers() throws {
        let disk = try testDisk(), queue = disk.queue!
        disk.flipOnRead = 4096 + 3 * 65536 + 1000
        #expect(throws: Errno.ioError) { try IOJob(parsing: "verify 64K count=8 iodepth=4 offset=4096").run(on: queue) }
        #expect(queue.device.ram.log.texts().contains { $0.hasSuffix("dmaemu: verify failed at byte 201704: data read back differs from data written") })
        // A read that brings nothing back must not find what the write left in the buffer.
        disk.flipOnRead = nil
        disk.dropReads = true
        #expect(throws: Errno.ioError) { try IOJob(parsing: "verify 4K").run(on: queue) }
        #expect(queue.device.ram.log.texts().last?.hasSuffix("verify failed at byte 0: data read back differs from data written") == true)
        #expect(queue.stats.current.0.errors == 0)
    }

    @Test func splitRequestsThatDoNotFitSwiotlbTogetherGoOneAfterAnother() throws {
        // A fixed 256-slot (512 KiB) swiotlb holds two of a bio's four 256 KiB requests:
        // the third finds it full while those are in flight, waits for their completion,
        // and the bio still completes, without the requeue's two seconds.
        let disk = try testDisk(ram: 8 << 30, maskBits: 32, capacity: 8 << 20, dynamic: false, slots: 256, limits: quarterMiB), queue = disk.queue!
        let swiotlb = try #require(queue.device.swiotlb).mem
        let start = ContinuousClock.now
        try IOJob(parsing: "verify 1M").run(on: queue)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(disk.requests.count == 8 && swiotlb.usedHiwater == 256 && swiotlb.used == 0)
    }

    @Test func segmentLimitsSplitABio() throws {
        // max_segments 4 of max_segment_size 4 KiB: 16 KiB a request. 64 KiB in one
        // contiguous run of 16 pages (a fresh buddy gives one order-4 block): bvec_split_segs()
        // cuts it into four requests of four segments.
        let disk = try testDisk(capacity: 1 << 20, limits: BlockLimits(maxSegments: 4, maxSegmentSize: 4096, maxTransfer: 1 << 20)), queue = disk.queue!
        try IOJob(parsing: "write 64K offset=8192").run(on: queue)
        #expect(disk.requests.map { ($0.lba, $0.sectors) }.sorted { $0.0 < $1.0 }.elementsEqual([(16, 32), (48, 32), (80, 32), (112, 32)], by: ==))
        #expect(disk.media[8192..<(8192 + 65536)].elementsEqual((8192..<(8192 + 65536)).map { DataPattern.byte(1, at: $0) }))
    }

    @Test func thePatternFindsTheFirstDifferentByte() {
        var bytes = [UInt8](repeating: 0, count: 100)
        bytes.withUnsafeMutableBytes { DataPattern.fill($0.baseAddress!, offset: 3, count: 100, seed: 4) }
        #expect(bytes.withUnsafeBytes { DataPattern.firstMismatch($0.baseAddress!, offset: 3, count: 100, seed: 4) } == nil)
        bytes[41] ^= 1
        #expect(bytes.withUnsafeBytes { DataPattern.firstMismatch($0.baseAddress!, offset: 3, count: 100, seed: 4) } == 41)
        #expect(bytes.withUnsafeBytes { DataPattern.firstMismatch($0.baseAddress!, offset: 3, count: 100, seed: 5) } == 0)
    }
}
