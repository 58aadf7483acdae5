import DMA
import DMAPool
import PhysicalMemory
import Testing

/// DMAPOOL_DEBUG: poison 0xa7 on free pages and freed blocks, 0xa9 on allocated ones,
/// and each generation's complaint texts ("%s %s, ..." with its function name).
@Suite struct DebugTests {
    func bytes(_ block: (cpu: UnsafeMutableRawPointer, dma: UInt64), _ count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: block.cpu, count: count))
    }

    @Test(arguments: DMAPoolAlgorithm.allCases)
    func allocatedBlocksAreFilledWith0xa9(_ algorithm: DMAPoolAlgorithm) throws {
        let pool = try DMAPool(name: "poison", device: try testDevice(), size: 64, algorithm: algorithm, debug: true)
        let block = try #require(pool.alloc())
        #expect(bytes(block, 64) == Array(repeating: 0xa9, count: 64))
        pool.free(block.cpu, dma: block.dma)
        // Freed: 0xa7 past the link the engine keeps in the block (16 bytes, or 4 before v6.4).
        let link = algorithm == .stack ? 16 : 4
        #expect(bytes(block, 64)[link...] == ArraySlice(repeating: 0xa7, count: 64 - link))
    }

    @Test(arguments: DMAPoolAlgorithm.allCases, [false, true])
    func zallocZeroes(_ algorithm: DMAPoolAlgorithm, debug: Bool) throws {
        let pool = try DMAPool(name: "zero", device: try testDevice(), size: 100, algorithm: algorithm, debug: debug)
        let dirty = try #require(pool.alloc())
        dirty.cpu.initializeMemory(as: UInt8.self, repeating: 0xff, count: pool.geometry.size)
        pool.free(dirty.cpu, dma: dirty.dma)
        let block = try #require(pool.zalloc())
        #expect(block.dma == dirty.dma)
        #expect(bytes(block, pool.geometry.size).allSatisfy { $0 == 0 })
    }

    @Test func stackCorruptionIsReportedWithAHexDump() throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "test pool", device: device, size: 32, debug: true)
        let block = try #require(pool.alloc())
        pool.free(block.cpu, dma: block.dma)
        block.cpu.storeBytes(of: 0x41, toByteOffset: 20, as: UInt8.self)  // a use after free
        let again = try #require(pool.alloc())
        #expect(again.dma == block.dma)
        let lines = device.ram.log.texts()
        #expect(lines.count == 3)
        #expect(lines[0] == "pci 0000:00:01.0: pool_check_block test pool, \(pointer(block.dma)) (corrupted)")
        #expect(lines[1].hasPrefix("00000000: "))  // the link: next pointer and dma
        #expect(lines[2] == "00000010: a7 a7 a7 a7 41 a7 a7 a7 a7 a7 a7 a7 a7 a7 a7 a7  ....A...........")
        // Still handed out, then poisoned as allocated.
        #expect(bytes(again, 32) == Array(repeating: 0xa9, count: 32))
    }

    @Test func legacyCorruptionNamesDmaPoolAlloc() throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "old", device: device, size: 20, align: 4, algorithm: .legacy, debug: true)
        let block = try #require(pool.alloc())
        pool.free(block.cpu, dma: block.dma)
        block.cpu.storeBytes(of: 0x00, toByteOffset: 19, as: UInt8.self)
        _ = try #require(pool.alloc())
        let lines = device.ram.log.texts()
        #expect(lines[0] == "pci 0000:00:01.0: dma_pool_alloc old, \(pointer(block.dma)) (corrupted)")
        // 20 bytes: a full row and a row of 4; the first 4 bytes hold the in-page link,
        // here the offset of the next free block, 20 = 14 00 00 00.
        #expect(lines[1] == "00000000: 14 00 00 00 a7 a7 a7 a7 a7 a7 a7 a7 a7 a7 a7 a7  ................")
        #expect(lines[2] == "00000010: a7 a7 a7 00                                      ....")
    }

    @Test func stackDoubleFreeAndBadDma() throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "chain pool", device: device, size: 128, debug: true)
        let block = try #require(pool.alloc())
        _ = try #require(pool.alloc())
        pool.free(block.cpu, dma: block.dma)
        pool.free(block.cpu, dma: block.dma)
        pool.free(block.cpu + 128, dma: 0x4000_0000)
        #expect(pool.counters.active == 1)
        #expect(
            device.ram.log.texts() == [
                "pci 0000:00:01.0: pool_block_err chain pool, dma \(pad(block.dma)) already free",
                "pci 0000:00:01.0: pool_block_err chain pool, \(pointer(block.dma + 128))/0x0000000040000000 (bad dma)",
            ])
        // The stack is intact: the next two allocations are the freed block, then a fresh one.
        #expect(pool.alloc()?.dma == block.dma)
        #expect(pool.alloc()?.dma == block.dma + 256)
    }

    @Test(arguments: [DMAPoolAlgorithm.legacy, .rbtree])
    func olderGenerationsCheckVaddrAndDoubleFree(_ algorithm: DMAPoolAlgorithm) throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "chain pool", device: device, size: 128, algorithm: algorithm, debug: true)
        let a = try #require(pool.alloc())
        let b = try #require(pool.alloc())
        pool.free(a.cpu, dma: a.dma)
        pool.free(a.cpu, dma: a.dma)
        pool.free(b.cpu, dma: a.dma)  // vaddr and dma disagree
        pool.free(b.cpu, dma: 0x4000_0000)
        #expect(pool.counters.active == 1)
        #expect(
            device.ram.log.texts() == [
                "pci 0000:00:01.0: dma_pool_free chain pool, dma \(pad(a.dma)) already free",
                "pci 0000:00:01.0: dma_pool_free chain pool, \(pointer(b.dma)) (bad vaddr)/\(pad(a.dma))",
                "pci 0000:00:01.0: dma_pool_free chain pool, \(pointer(b.dma))/0x0000000040000000 (bad dma)",
            ])
    }

    @Test func legacyFindsTheBadDmaEvenWithoutDebug() throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "nodebug", device: device, size: 64, algorithm: .legacy)
        let block = try #require(pool.alloc())
        pool.free(block.cpu, dma: 0x10)
        #expect(device.ram.log.texts() == ["pci 0000:00:01.0: dma_pool_free nodebug, \(pointer(block.dma))/0x0000000000000010 (bad dma)"])
        #expect(pool.counters.active == 1)
    }

    @Test func busyDestroyLeaksEveryPage() throws {
        let device = try testDevice()
        let ram = device.ram
        let boot = ram.unusedPages
        let pool = try DMAPool(name: "busy", device: device, size: 2048)
        let blocks = (0..<3).compactMap { _ in pool.alloc() }  // two pages
        pool.free(blocks[2].cpu, dma: blocks[2].dma)
        pool.destroy()
        #expect(ram.log.texts() == ["pci 0000:00:01.0: dma_pool_destroy busy busy"])
        #expect(ram.unusedPages == boot - 2)
        #expect(device.coherentAllocationCount == 2)
        #expect(device.pools == nil)
        // A destroyed pool hands out nothing more.
        #expect(pool.alloc() == nil)
    }

    @Test(arguments: [DMAPoolAlgorithm.legacy, .rbtree])
    func olderGenerationsLeakOnlyTheBusyPages(_ algorithm: DMAPoolAlgorithm) throws {
        let device = try testDevice()
        let ram = device.ram
        let boot = ram.unusedPages
        let pool = try DMAPool(name: "busy", device: device, size: 2048, algorithm: algorithm)
        // Two blocks per page (legacy: 2048 divides 4096, so only 1): fill three pages' worth.
        let perPage = algorithm == .legacy ? 1 : 2
        let blocks = (0..<(3 * perPage)).compactMap { _ in pool.alloc() }
        for block in blocks[perPage...] { pool.free(block.cpu, dma: block.dma) }
        pool.destroy()
        #expect(ram.log.texts() == ["pci 0000:00:01.0: dma_pool_destroy busy, \(pointer(blocks[0].dma)) busy"])
        #expect(ram.unusedPages == boot - 1)
        #expect(device.coherentAllocationCount == 1)
    }

    @Test(arguments: DMAPoolAlgorithm.allCases)
    func pagesStayUntilDestroy(_ algorithm: DMAPoolAlgorithm) throws {
        let device = try testDevice()
        let ram = device.ram
        let boot = ram.unusedPages
        let pool = try DMAPool(name: "keep", device: device, size: 512, algorithm: algorithm)
        let blocks = (0..<100).compactMap { _ in pool.alloc() }
        let pages = pool.counters.pages
        for block in blocks { pool.free(block.cpu, dma: block.dma) }
        #expect(pool.counters.active == 0 && pool.counters.pages == pages)
        #expect(ram.unusedPages == boot - pages)
        pool.destroy()
        #expect(ram.unusedPages == boot)
        #expect(device.coherentAllocationCount == 0)
        #expect(ram.log.texts().isEmpty)
    }
}
