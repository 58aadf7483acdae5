import DMA
import Dispatch
import PhysicalMemory
import SWIOTLB
import Testing
import Trace

/// A 5 GiB machine (Normal zone from 4 GiB), a 1 MiB swiotlb at 16 MiB, and a 32-bit
/// device with dma-debug on: buffers above 4 GiB bounce, buffers below do not.
struct Rig {
    let ram: PhysicalMemory
    let mem: IOTLBMem
    let device: Device

    init(force: Bool = false, dynamic: Bool = true, dmaDebug: Bool = true, tracer: Tracer? = nil) throws {
        ram = try PhysicalMemory(size: 5 << 30)
        var config = SWIOTLBConfig()
        config.nslabs = 512
        config.nareas = 2
        config.force = force
        config.dynamic = dynamic
        mem = try #require(IOTLBMem(ram: ram, config: config))
        device = Device(name: "0000:00:05.0", ram: ram, swiotlb: mem, dmaDebug: dmaDebug, tracer: tracer)
    }

    /// A page above 4 GiB (the Normal zone serves first) and one below.
    func highPage() throws -> PhysAddr { try #require(ram.allocPages(order: 0)) }
    func lowPage() throws -> PhysAddr { try #require(ram.allocPages(order: 0, limit: 4 << 30)) }

    func fill(_ phys: PhysAddr, _ byte: UInt8, count: Int = 4096) {
        ram.virt(phys).initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }

    func bytes(_ phys: PhysAddr, _ range: Range<Int>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: ram.virt(phys) + range.lowerBound, count: range.count))
    }

    var newLines: [String] { ram.log.texts().filter { !$0.hasPrefix("software IO TLB") } }
}

@Suite struct StreamingTests {
    @Test func reachableBuffersMapInPlace() throws {
        let rig = try Rig()
        let low = try rig.lowPage()
        #expect(rig.device.mapSingle(low, size: 4096, .toDevice) == low)
        #expect(rig.mem.used == 0)
        rig.device.unmapSingle(low, size: 4096, .toDevice)
        #expect(rig.device.dmaDebugEntryCount == 0)
    }

    @Test func unreachableBuffersBounceWithTheirData() throws {
        let rig = try Rig()
        let high = try rig.highPage()
        #expect(high >= 4 << 30)
        var pattern = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        rig.ram.virt(high).copyMemory(from: &pattern, byteCount: 4096)
        // A page-sized map is page aligned: slot 0 of area 0 or 1, so 16 MiB or 16.5 MiB.
        let dma = try #require(rig.device.mapSingle(high, size: 4096, .toDevice))
        #expect(dma == 0x100_0000 || dma == 0x108_0000)
        #expect(rig.mem.used == 2)
        var seen = [UInt8](repeating: 0, count: 4096)
        try seen.withUnsafeMutableBytes { try rig.device.deviceRead(dma, into: $0) }
        #expect(seen == pattern)
        rig.device.unmapSingle(dma, size: 4096, .toDevice)
        #expect(rig.mem.used == 0)
    }

    @Test func aPartialDeviceWriteKeepsTheUntouchedBytes() throws {
        let rig = try Rig()
        let high = try rig.highPage()
        rig.fill(high, 0x5a)
        let dma = try #require(rig.device.mapSingle(high, size: 4096, .fromDevice))
        // The original went into the bounce buffer even for FROM_DEVICE (the info-leak fix).
        #expect(rig.bytes(dma, 0..<4096) == Array(repeating: 0x5a, count: 4096))
        try [UInt8](repeating: 0xc3, count: 100).withUnsafeBytes { try rig.device.deviceWrite(dma, from: $0) }
        rig.device.unmapSingle(dma, size: 4096, .fromDevice)
        #expect(rig.bytes(high, 0..<100) == Array(repeating: 0xc3, count: 100))
        #expect(rig.bytes(high, 100..<4096) == Array(repeating: 0x5a, count: 3996))
    }

    @Test func toDeviceUnmapCopiesNothingBack() throws {
        let rig = try Rig()
        let high = try rig.highPage()
        rig.fill(high, 0x11)
        let dma = try #require(rig.device.mapSingle(high, size: 4096, .bidirectional))
        rig.fill(dma, 0x22)  // the device's result, written straight into the bounce slot
        rig.device.syncSingleForCPU(dma, size: 4096, .bidirectional)
        #expect(rig.bytes(high, 0..<4096) == Array(repeating: 0x22, count: 4096))
        rig.device.unmapSingle(dma, size: 4096, .bidirectional)
        // A TO_DEVICE mapping never writes the original.
        rig.fill(high, 0x33)
        let out = try #require(rig.device.mapSingle(high, size: 4096, .toDevice))
        rig.fill(out, 0x44)
        rig.device.unmapSingle(out, size: 4096, .toDevice)
        #expect(rig.bytes(high, 0..<4096) == Array(repeating: 0x33, count: 4096))
    }

    @Test func partialSyncsAtAnyOffset() throws {
        let rig = try Rig()
        let high = try rig.highPage()
        rig.fill(high, 0)
        let dma = try #require(rig.device.mapSingle(high, size: 4096, .fromDevice))
        rig.fill(dma, 0xee)
        rig.device.syncSingleForCPU(dma + 1000, size: 500, .fromDevice)
        #expect(rig.bytes(high, 0..<1000) == Array(repeating: 0, count: 1000))
        #expect(rig.bytes(high, 1000..<1500) == Array(repeating: 0xee, count: 500))
        #expect(rig.bytes(high, 1500..<4096) == Array(repeating: 0, count: 2596))
        // For the device: the CPU's new data reaches the bounce buffer only where synced.
        rig.device.unmapSingle(dma, size: 4096, .fromDevice)
        let out = try #require(rig.device.mapSingle(high, size: 4096, .toDevice))
        rig.fill(high, 0x77, count: 4096)
        rig.device.syncSingleForDevice(out + 2048, size: 16, .toDevice)
        #expect(rig.bytes(out, 2048..<2064) == Array(repeating: 0x77, count: 16))
        #expect(rig.bytes(out, 2064..<2080) != Array(repeating: 0x77, count: 16))
    }

    @Test(arguments: DMADirection.allCases.filter { $0 != .none })
    func randomBytesRoundTrip(_ direction: DMADirection) throws {
        let rig = try Rig()
        let high = try #require(rig.ram.allocPages(order: 4))
        var rng = SystemRandomNumberGenerator()
        for size in [1, 100, 2048, 2049, 4096, 10_000, 65536] {
            let original = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let written = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            rig.ram.virt(high).copyMemory(from: original, byteCount: size)
            let dma = try #require(rig.device.mapSingle(high, size: size, direction))
            if direction != .fromDevice {
                var seen = [UInt8](repeating: 0, count: size)
                try seen.withUnsafeMutableBytes { try rig.device.deviceRead(dma, into: $0) }
                #expect(seen == original)
            }
            if direction != .toDevice { try written.withUnsafeBytes { try rig.device.deviceWrite(dma, from: $0) } }
            rig.device.unmapSingle(dma, size: size, direction)
            #expect(rig.bytes(high, 0..<size) == (direction == .toDevice ? original : written))
        }
        #expect(rig.mem.used == 0 && rig.newLines.isEmpty)
    }

    @Test func forcedBouncingBouncesEverything() throws {
        let rig = try Rig(force: true)
        let low = try rig.lowPage()
        let dma = try #require(rig.device.mapSingle(low, size: 512, .toDevice))
        #expect(dma != low && rig.mem.used == 1)
        rig.device.unmapSingle(dma, size: 512, .toDevice)
    }

    @Test func scatterListsMapEachEntry() throws {
        let rig = try Rig()
        let low = try rig.lowPage()
        let high = try rig.highPage()
        var list = [ScatterEntry(phys: low, length: 4096), ScatterEntry(phys: high, length: 1000), ScatterEntry(phys: low + 100, length: 50)]
        #expect(list.withUnsafeMutableBufferPointer { rig.device.mapSG($0, .toDevice) } == 3)
        #expect(list[0].dmaAddress == low && list[2].dmaAddress == low + 100)
        #expect(list[1].dmaAddress < 4 << 30 && list[1].dmaLength == 1000)
        list.withUnsafeMutableBufferPointer { rig.device.unmapSG($0, .toDevice) }
        #expect(rig.mem.used == 0 && rig.device.dmaDebugEntryCount == 0 && rig.newLines.isEmpty)
    }

    @Test func aFailedEntryUndoesTheScatterList() throws {
        let rig = try Rig(dynamic: false)
        let high = try #require(rig.ram.allocPages(order: 7))  // 512 KiB
        // 256 KiB entries: the 1 MiB swiotlb holds four, the fifth fails.
        var list = (0..<5).map { ScatterEntry(phys: high + UInt64($0 % 2) * (256 << 10), length: 256 << 10) }
        #expect(list.withUnsafeMutableBufferPointer { rig.device.mapSG($0, .toDevice) } == 0)
        #expect(rig.mem.used == 0 && rig.device.dmaDebugEntryCount == 0)
    }
}

@Suite struct DMADebugTests {
    @Test func unmapMisuseIsReported() throws {
        let rig = try Rig()
        let low = try rig.lowPage()
        let a = try #require(rig.device.mapSingle(low, size: 64, .toDevice))
        rig.device.unmapSingle(a, size: 64, .toDevice)
        rig.device.unmapSingle(a, size: 64, .toDevice)  // double unmap
        let b = try #require(rig.device.mapSingle(low, size: 128, .fromDevice))
        rig.device.unmapSingle(b, size: 64, .toDevice)  // size and direction differ
        let address = "0x" + String(repeating: "0", count: 16 - String(low, radix: 16).count) + String(low, radix: 16)
        #expect(
            rig.newLines == [
                "DMA-API: pci 0000:00:05.0: device driver tries to free DMA memory it has not allocated [device address=\(address)] [size=64 bytes]",
                "DMA-API: pci 0000:00:05.0: device driver frees DMA memory with different size [device address=\(address)] [map size=128 bytes] [unmap size=64 bytes]",
                "DMA-API: pci 0000:00:05.0: device driver frees DMA memory with different direction [device address=\(address)] [size=128 bytes] [mapped with DMA_FROM_DEVICE] [unmapped with DMA_TO_DEVICE]",
            ])
    }

    @Test func aDoubleUnmapOfABounceBufferChangesNothing() throws {
        let rig = try Rig()
        let high = try rig.highPage()
        let a = try #require(rig.device.mapSingle(high, size: 4096, .toDevice))
        rig.device.unmapSingle(a, size: 4096, .toDevice)
        let b = try #require(rig.device.mapSingle(high, size: 4096, .toDevice))  // next fit: after a
        #expect(a != b)
        rig.device.unmapSingle(a, size: 4096, .toDevice)
        // The stale unmap of a is refused: b's slots stay in use.
        #expect(rig.mem.used == 2)
        rig.device.unmapSingle(b, size: 4096, .toDevice)
        #expect(rig.mem.used == 0)
    }

    @Test func syncsOutsideAMappingAreReported() throws {
        let rig = try Rig()
        let high = try rig.highPage()
        let dma = try #require(rig.device.mapSingle(high, size: 1000, .fromDevice))
        rig.device.syncSingleForCPU(dma + 900, size: 200, .fromDevice)
        rig.device.syncSingleForCPU(0x3000, size: 8, .fromDevice)
        rig.device.syncSingleForCPU(dma, size: 8, .toDevice)
        let address = "0x" + String(repeating: "0", count: 16 - String(dma, radix: 16).count) + String(dma, radix: 16)
        #expect(
            rig.newLines == [
                "DMA-API: pci 0000:00:05.0: device driver syncs DMA memory outside allocated range [device address=\(address)] [allocation size=1000 bytes] [sync offset+size=1100]",
                "DMA-API: pci 0000:00:05.0: device driver tries to sync DMA memory it has not allocated [device address=0x0000000000003000] [size=8 bytes]",
                "DMA-API: pci 0000:00:05.0: device driver syncs DMA memory with different direction [device address=\(address)] [size=8 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]",
            ])
        rig.device.unmapSingle(dma, size: 1000, .fromDevice)
    }

    @Test func mappingsHeldAtRemoveAreReported() throws {
        let rig = try Rig()
        let low = try rig.lowPage()
        _ = try #require(rig.device.mapSingle(low, size: 256, .bidirectional))
        _ = try #require(rig.device.allocCoherent(size: 4096))
        rig.device.driverName = "nvme"
        #expect(rig.device.checkPendingDMA() == 2)
        let address = "0x" + String(repeating: "0", count: 16 - String(low, radix: 16).count) + String(low, radix: 16)
        // The mapped page (pfn 0x1100, just above the swiotlb) is below the coherent block.
        #expect(
            rig.newLines == [
                "DMA-API: nvme 0000:00:05.0: device driver has pending DMA allocations while released from device [count=2]",
                "One of leaked entries details: [device address=\(address)] [size=256 bytes] [mapped with DMA_BIDIRECTIONAL] [mapped as single]",
            ])
        #expect(low == 0x110_0000)
    }

    @Test func theDeviceCannotTouchWhatIsNotMappedForIt() throws {
        let rig = try Rig()
        let low = try rig.lowPage()
        var byte: [UInt8] = [1]
        #expect(throws: DeviceAccessError.unmapped(dma: low, size: 1)) {
            try byte.withUnsafeBytes { try rig.device.deviceWrite(low, from: $0) }
        }
        let dma = try #require(rig.device.mapSingle(low, size: 64, .toDevice))
        // Mapped for the device to read, not to write.
        #expect(throws: DeviceAccessError.unmapped(dma: dma, size: 1)) {
            try byte.withUnsafeBytes { try rig.device.deviceWrite(dma, from: $0) }
        }
        try byte.withUnsafeMutableBytes { try rig.device.deviceRead(dma, into: $0) }
        #expect(rig.newLines.count == 2)
        #expect(rig.newLines[0].hasPrefix("pci 0000:00:05.0: dmaemu: device write to unmapped memory refused"))
    }
}

@Suite struct SWIOTLBConcurrencyTests {
    @Test func threadsBouncingAtOnce() throws {
        let rig = try Rig(dmaDebug: false)
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            let high = rig.ram.allocPages(order: 1)!
            for i in 0..<2000 {
                let size = 1 + (i * 37 + thread) % 8000
                guard let dma = rig.device.mapSingle(high, size: size, .bidirectional) else { continue }
                rig.device.unmapSingle(dma, size: size, .bidirectional)
            }
        }
        #expect(rig.mem.used == 0)
        #expect(rig.mem.pools[0].freeRuns(0..<512) == (0..<512).map { 128 - $0 % 128 })
    }

    @Test func aRestrictedDeviceAlwaysBouncesAndAllocatesFromItsPool() throws {
        let ram = try PhysicalMemory(size: 1 << 30)
        let pool = try #require(IOTLBMem(restricted: "restricted-dma", bytes: 1 << 20, ram: ram))
        let device = Device(name: "0000:00:06.0", ram: ram, swiotlb: pool, dmaDebug: true)
        let coherent = try #require(device.allocCoherent(size: 4096))
        #expect(pool.pools[0].contains(coherent.dma) && pool.used == 2)
        let page = try #require(ram.allocPages(order: 0, limit: 1 << 24))
        let dma = try #require(device.mapSingle(page, size: 64, .toDevice))
        #expect(pool.pools[0].contains(dma))
        device.unmapSingle(dma, size: 64, .toDevice)
        device.freeCoherent(size: 4096, cpu: coherent.cpu, dma: coherent.dma)
        #expect(pool.used == 0 && device.coherentAllocationCount == 0 && device.dmaDebugEntryCount == 0)
    }
}
