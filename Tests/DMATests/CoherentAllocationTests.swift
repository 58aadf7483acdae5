import DMA
import PhysicalMemory
import Testing

@Suite struct CoherentAllocationTests {
    @Test func bitMasks() {
        #expect(dmaBitMask(24) == 0xff_ffff)
        #expect(dmaBitMask(32) == 0xffff_ffff)
        #expect(dmaBitMask(64) == .max)
    }

    @Test func ordersAsGetOrder() {
        #expect(pageOrder(1) == 0)
        #expect(pageOrder(4096) == 0)
        #expect(pageOrder(4097) == 1)
        // mpt3sas's reply pool: 1335296 bytes = 326 pages -> 512 pages, order 9.
        #expect(pageOrder(1_335_296) == 9)
        // Its sense pool: 970272 bytes = 236.9 pages -> 256, order 8.
        #expect(pageOrder(970_272) == 8)
    }

    @Test func theCoherentMaskChoosesTheZone() throws {
        let ram = try PhysicalMemory()
        let device = Device(name: "0000:85:00.0", ram: ram)
        // A PCI function starts with 32-bit masks: DMA32, from its bottom (16 MiB).
        let low = try #require(device.allocCoherent(size: 4096))
        #expect(low.dma == 16 << 20)
        #expect(ram.phys(low.cpu) == low.dma)
        device.coherentDMAMask = dmaBitMask(64)
        let high = try #require(device.allocCoherent(size: 4096))
        #expect(high.dma == 4 << 30)
        device.coherentDMAMask = dmaBitMask(24)
        let isa = try #require(device.allocCoherent(size: 8192))
        #expect(isa.dma < 16 << 20 && isa.dma % 8192 == 0)
        #expect(device.coherentAllocationCount == 3)
    }

    @Test func memoryIsZeroedAndContiguous() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let device = Device(name: "0000:00:02.0", ram: ram)
        let first = try #require(device.allocCoherent(size: 3 * 4096))
        first.cpu.initializeMemory(as: UInt8.self, repeating: 0xee, count: 4 * 4096)
        device.freeCoherent(size: 3 * 4096, cpu: first.cpu, dma: first.dma)
        // The same block comes back (freed to the head of its list) and is zeroed, all
        // four pages of the order-2 block.
        let again = try #require(device.allocCoherent(size: 3 * 4096))
        #expect(again.dma == first.dma)
        let bytes = UnsafeRawBufferPointer(start: again.cpu, count: 4 * 4096)
        #expect(bytes.allSatisfy { $0 == 0 })
    }

    @Test func badFreesAreReportedInDMADebugWords() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let device = Device(name: "0000:00:02.0", ram: ram)
        let block = try #require(device.allocCoherent(size: 4096))
        let free = ram.unusedPages
        device.freeCoherent(size: 4096, cpu: block.cpu, dma: 0x1234_0000)
        #expect(ram.unusedPages == free)
        device.freeCoherent(size: 100, cpu: block.cpu, dma: block.dma)
        #expect(ram.unusedPages == free + 1)
        device.freeCoherent(size: 4096, cpu: block.cpu, dma: block.dma)
        // Unbound, a PCI device is named by its bus; block.dma is 16 MiB = 0x1000000.
        #expect(
            ram.log.texts() == [
                "DMA-API: pci 0000:00:02.0: device driver tries to free DMA memory it has not allocated "
                    + "[device address=0x0000000012340000] [size=4096 bytes]",
                "DMA-API: pci 0000:00:02.0: device driver frees DMA memory with different size "
                    + "[device address=0x0000000001000000] [map size=4096 bytes] [unmap size=100 bytes]",
                "DMA-API: pci 0000:00:02.0: device driver tries to free DMA memory it has not allocated "
                    + "[device address=0x0000000001000000] [size=4096 bytes]",
            ])
    }

    @Test func messagesNameTheBoundDriver() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let device = Device(name: "0000:85:00.0", ram: ram)
        device.err("unbound")
        device.driverName = "mpt3sas"
        device.err("bound")
        #expect(ram.log.texts() == ["pci 0000:85:00.0: unbound", "mpt3sas 0000:85:00.0: bound"])
        #expect(ram.log.messages.map(\.level) == [.err, .err])
    }

    @Test func tooLargeOrEmptyRequestsFail() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let device = Device(name: "0000:00:02.0", ram: ram)
        #expect(device.allocCoherent(size: 0) == nil)
        #expect(device.allocCoherent(size: (4 << 20) + 1) == nil)  // above MAX_PAGE_ORDER
        #expect(device.allocCoherent(size: 4 << 20) != nil)
    }
}

@Suite struct CoherentOwnershipTests {
    @Test func anotherDevicesBlockIsRefused() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let owner = Device(name: "0000:00:02.0", ram: ram)
        let other = Device(name: "0000:00:03.0", ram: ram)
        let block = try #require(owner.allocCoherent(size: 8192))
        let free = ram.unusedPages
        other.freeCoherent(size: 8192, cpu: block.cpu, dma: block.dma)
        #expect(ram.unusedPages == free)
        #expect(owner.coherentAllocationCount == 1 && other.coherentAllocationCount == 0)
        owner.freeCoherent(size: 8192, cpu: block.cpu, dma: block.dma)
        #expect(ram.unusedPages == free + 2)
        #expect(
            ram.log.texts() == [
                "DMA-API: pci 0000:00:03.0: device driver tries to free DMA memory it has not allocated "
                    + "[device address=0x0000000001000000] [size=8192 bytes]"
            ])
    }
}
