import ControlFS
import DMA
@testable import Daemon
import Foundation
import SystemPackage
import Testing

@Suite struct BlockQueueTests {
    @Test func statsOfARun() {
        let stats = IOStats()
        stats.account(ios: 100, bytes: 1 << 20, bounced: 4096, errors: 0)
        // 1..100 us: mean 50.5 us; nearest-rank p99 is the 99th smallest, 99 us.
        var latencies = (1...100).reversed().map { $0 * 1000 }
        stats.finishRun(bytes: 1 << 20, seconds: 0.5, latencies: &latencies)
        #expect(stats.text == """
            ios 100
            bytes 1048576
            bounced_bytes 4096
            errors 0
            last_mib_s 2.00
            avg_lat_us 50.50
            p99_lat_us 99.00

            """)
    }

    @Test func sequentialTransfersFollowEachOtherAcrossThreads() throws {
        let machine = try smallMachine()
        try machine.write("control/add_device", "nvme nvme0 capacity=4M")
        // Two threads of two 4 KiB writes from 8 KiB: thread 0 writes [8K, 16K), thread 1
        // [16K, 24K); nothing else is touched.
        try machine.write("devices/nvme0/io", "write 4096 count=2 threads=2 offset=8192 seed=3")
        let disk = try #require(machine.root.node(at: "devices/nvme0/disk") as? ControlBlockFile)
        var bytes = [UInt8](repeating: 0xff, count: 32768)
        _ = try bytes.withUnsafeMutableBytes { buffer throws(Errno) in try disk.read(buffer, 0) }
        #expect(bytes[0..<8192].allSatisfy { $0 == 0 } && bytes[24576...].allSatisfy { $0 == 0 })
        #expect(bytes[8192..<24576].elementsEqual((8192..<24576).map { DataPattern.byte(3, at: $0) }))
    }

    @Test func aFullSwiotlbHoldsRequestsBackUntilItHasRoom() throws {
        // A fixed 1 MiB swiotlb, all of it mapped by someone else; a 32-bit controller's
        // bounced write waits (BLK_STS_RESOURCE) until those mappings go, then succeeds.
        var config = MachineConfig.defaultMachine()
        config.ramBytes = 8 << 30
        config.swiotlb.nslabs = 512
        config.swiotlb.nareas = 1
        config.swiotlb.dynamic = false
        config.devices = []
        let machine = try Machine(config)
        try machine.write("control/add_device", "nvme nvme0 capacity=4M dma_mask_bits=32")
        let device = try #require(machine.device("nvme0")).device
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
        try machine.write("devices/nvme0/io", "verify 65536")
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        #expect(try machine.read("devices/nvme0/stats").contains("\nios 2\nbytes 131072\nbounced_bytes 131072\nerrors 0\n"))
    }
}
