import PhysicalMemory
import Testing

/// A 64 MiB machine: zone DMA manages pfns 1..<4096 (pfn 0 is reserved), DMA32 4096..<16384,
/// and there is no Normal zone.
private func smallMachine() throws -> PhysicalMemory { try PhysicalMemory(size: 64 << 20) }

@Suite struct BuddyAllocatorTests {
    @Test func zonesOfA64MiBMachine() throws {
        let ram = try smallMachine()
        #expect(ram.zoneKinds == [.dma, .dma32])
        // DMA: pfns 1...4095. Aligned blocks from pfn 1: 1 (order 0), 2 (1), 4 (2), ...,
        // 512 (order 9), then 1024, 2048, 3072 (order 10).
        #expect(ram.nrFree(in: .dma) == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3])
        // DMA32: 12288 pages = 12 blocks of 1024.
        #expect(ram.nrFree(in: .dma32) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12])
        #expect(ram.nrFree(in: .normal) == Array(repeating: 0, count: 11))
        #expect(ram.managedPages(in: .dma) == 4095)
        #expect(ram.unusedPages == 4095 + 12288)
    }

    @Test func buddyinfoFormat() throws {
        let ram = try smallMachine()
        // "Node %d, zone %8s " then "%6lu " per order, then a newline.
        let dma = "Node 0, zone      DMA " + String(repeating: "     1 ", count: 10) + "     3 \n"
        let dma32 = "Node 0, zone    DMA32 " + String(repeating: "     0 ", count: 10) + "    12 \n"
        #expect(ram.buddyInfo == dma + dma32)
    }

    @Test func eightGiBMachineHasThreeZones() throws {
        let ram = try PhysicalMemory()
        #expect(ram.size == 8 << 30)
        #expect(ram.zoneKinds == [.dma, .dma32, .normal])
        // DMA32: pfns 4096..<1048576 = 1044480 pages = 1020 blocks of order 10;
        // Normal: 4 GiB..8 GiB = 1024 blocks.
        #expect(ram.nrFree(in: .dma32)[10] == 1020)
        #expect(ram.nrFree(in: .normal)[10] == 1024)
        #expect(ram.buddyInfo.hasSuffix("Node 0, zone   Normal " + String(repeating: "     0 ", count: 10) + "  1024 \n"))
        // An unrestricted allocation comes from the highest zone, from its bottom.
        #expect(ram.allocPages(order: 0) == 4 << 30)
    }

    @Test func splittingHandsOutTheLowHalfAndKeepsTheBuddies() throws {
        // The boot pageset: each page straight from the buddy lists (PerCPUPagesTests has
        // the pcp lists' batches).
        let ram = try PhysicalMemory(size: 64 << 20, pcpLists: false)
        // The first order-10 block of DMA32 (pfn 4096) splits: pfn 4096 is returned and
        // 4097 (order 0), 4098 (1), 4100 (2), ..., 4608 (9) go back.
        #expect(ram.allocPages(order: 0) == 4096 << 12)
        #expect(ram.nrFree(in: .dma32) == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 11])
        #expect(ram.allocPages(order: 0) == 4097 << 12)
        // No order-0 block is left: the order-1 block at 4098 splits into 4098 and 4099.
        #expect(ram.allocPages(order: 0) == 4098 << 12)
        #expect(ram.allocPages(order: 0) == 4099 << 12)
        #expect(ram.nrFree(in: .dma32) == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 11])
    }

    @Test func freeingMergesBuddiesBackToTheBoot() throws {
        let ram = try smallMachine()
        let boot = ram.buddyInfo
        let pages = (0..<4).compactMap { _ in ram.allocPages(order: 0) }
        let block = try #require(ram.allocPages(order: 3))
        for page in pages.reversed() { ram.freePages(page, order: 0) }
        ram.freePages(block, order: 3)
        // The pcp lists keep what they refilled and what was freed until drained.
        #expect(ram.buddyInfo != boot && ram.pcpPages > 0)
        ram.drainAllPages()
        #expect(ram.buddyInfo == boot && ram.pcpPages == 0)
    }

    @Test(arguments: 0...10)
    func blocksAreAlignedToTheirOrder(order: Int) throws {
        let ram = try smallMachine()
        for _ in 0..<3 {
            let phys = try #require(ram.allocPages(order: order))
            #expect(phys % (4096 << UInt64(order)) == 0)
            // Real memory: the whole block can be written and read back.
            let bytes = ram.virt(phys).assumingMemoryBound(to: UInt8.self)
            bytes[0] = 0x5a
            bytes[(4096 << order) - 1] = 0xa5
            #expect(bytes[0] == 0x5a && bytes[(4096 << order) - 1] == 0xa5)
        }
    }

    @Test func limitSelectsTheZoneAndFallsBack() throws {
        let ram = try smallMachine()
        // Below 16 MiB only zone DMA qualifies; its order-0 list holds pfn 1.
        #expect(ram.allocPages(order: 0, limit: 16 << 20) == 1 << 12)
        // Exhaust DMA32's twelve 4 MiB blocks; the next one falls back to DMA's first, pfn 1024.
        for _ in 0..<12 { #expect(ram.allocPages(order: 10) != nil) }
        #expect(ram.allocPages(order: 10) == 1024 << 12)
        #expect(ram.allocPages(order: 10) == 2048 << 12)
        #expect(ram.allocPages(order: 10) == 3072 << 12)
        #expect(ram.allocPages(order: 10) == nil)
    }

    @Test func aLimitInsideAZoneIsHonoured() throws {
        let ram = try smallMachine()
        // DMA32 starts at 16 MiB; a limit of 16 MiB + 8 KiB admits only its first two pages.
        let limit: PhysAddr = (16 << 20) + 8192
        #expect(ram.allocPages(order: 0, limit: limit) == 4096 << 12)
        #expect(ram.allocPages(order: 0, limit: limit) == 4097 << 12)
        // 4098 would end above the limit: it is put back and zone DMA serves (pfn 1).
        #expect(ram.allocPages(order: 0, limit: limit) == 1 << 12)
    }

    @Test func badFreesAreReportedAndChangeNothing() throws {
        let ram = try smallMachine()
        let page = try #require(ram.allocPages(order: 1))
        let before = ram.buddyInfo
        ram.freePages(page + 4096, order: 0)  // inside the block, not its head
        ram.freePages(page, order: 0)  // wrong order
        #expect(ram.buddyInfo == before)
        ram.freePages(page, order: 1)
        ram.freePages(page, order: 1)  // double free
        // page is pfn 4096 = 0x1000; the tail page is pfn 0x1001.
        #expect(
            ram.log.texts() == [
                "BUG: Bad page state in process dmaemu  pfn:01001",
                "BUG: Bad page state in process dmaemu  pfn:01000",
                "page dumped because: freed with order 0, allocated with order 1",
                "BUG: Bad page state in process dmaemu  pfn:01000",
            ])
    }

    @Test func sizeMustBeWholePages() {
        #expect(throws: PhysicalMemoryError.badSize(1000)) { try PhysicalMemory(size: 1000) }
        #expect(throws: PhysicalMemoryError.badSize(4096 * 31)) { try PhysicalMemory(size: 4096 * 31) }
    }
}
