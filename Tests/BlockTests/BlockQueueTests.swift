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
final class TestDisk: DMABlockDriver, @unchecked Sendable {  // requests touch disjoint bytes of `storage`
    let storage: UnsafeMutableRawBufferPointer
    private(set) var flushes = 0
    var queue: BlockQueue!

    init(capacity: Int) {
        storage = .allocate(byteCount: capacity, alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { storage.deallocate() }

    var media: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }

    func execute(_ command: BlockCommand, _ list: UnsafeMutableBufferPointer<ScatterEntry>) throws(Errno) {
        var position = command.lba * BlockLimits.sectorSize
        for entry in list {
            guard let memory = try? queue.device.deviceMemory(entry.dmaAddress, size: entry.dmaLength, write: !command.write)
            else { throw .ioError }
            if command.write {
                (storage.baseAddress! + position).copyMemory(from: memory, byteCount: entry.dmaLength)
            } else {
                memory.copyMemory(from: storage.baseAddress! + position, byteCount: entry.dmaLength)
            }
            position += entry.dmaLength
        }
    }

    func flush() throws(Errno) { flushes += 1 }
}

/// A TestDisk and its queue, on a device of `ram` with a 512-slot swiotlb.
func testDisk(ram bytes: UInt64 = 1 << 30, maskBits: Int = 64, capacity: Int = 4 << 20, dynamic: Bool = true) throws -> TestDisk {
    let ram = try PhysicalMemory(size: bytes)
    var config = SWIOTLBConfig()
    config.nslabs = 512
    config.nareas = 1
    config.dynamic = dynamic
    let device = Device(name: "disk0", ram: ram, swiotlb: IOTLBMem(ram: ram, config: config), dmaMask: dmaBitMask(maskBits), coherentDMAMask: dmaBitMask(maskBits))
    let disk = TestDisk(capacity: capacity)
    let queue = BlockQueue(
        device: device, capacity: capacity, limits: BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 1 << 20), driver: disk)
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
        // Requests of at most 127 pages (max_segments - 1, 520192 bytes) end at multiples of
        // that: [1000, 520192), ..., [3121152, 3146728) are 7 writes; then the one read.
        #expect(queue.chunkLimit == 520192)
        #expect(queue.stats.current.0.ios == 8)
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

    @Test func thePatternFindsTheFirstDifferentByte() {
        var bytes = [UInt8](repeating: 0, count: 100)
        bytes.withUnsafeMutableBytes { DataPattern.fill($0.baseAddress!, offset: 3, count: 100, seed: 4) }
        #expect(bytes.withUnsafeBytes { DataPattern.firstMismatch($0.baseAddress!, offset: 3, count: 100, seed: 4) } == nil)
        bytes[41] ^= 1
        #expect(bytes.withUnsafeBytes { DataPattern.firstMismatch($0.baseAddress!, offset: 3, count: 100, seed: 4) } == 41)
        #expect(bytes.withUnsafeBytes { DataPattern.firstMismatch($0.baseAddress!, offset: 3, count: 100, seed: 5) } == 0)
    }
}
