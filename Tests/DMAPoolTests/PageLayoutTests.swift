import DMA
import DMAPool
import PhysicalMemory
import Testing

/// Blocks per 4 KiB page. stack: every block that fits, min size 16. rbtree: Tony's ">"
/// test keeps the block ending on the boundary. legacy: ">=" loses the last block of a
/// page whenever the size divides it (4096/16 - 1 = 255, ...). 68 aligned to 32 is a
/// 96-byte block: 4096 / 96 = 42 rem 64, no block ends on the boundary, so all agree.
@Suite struct PageLayoutTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let size: Int, align: Int, boundary: Int, stack: Int, rbtree: Int, legacy: Int
        var testDescription: String { "size \(size) align \(align) boundary \(boundary)" }
    }

    static let cases = [
        Case(size: 16, align: 16, boundary: 0, stack: 256, rbtree: 256, legacy: 255),
        Case(size: 64, align: 64, boundary: 0, stack: 64, rbtree: 64, legacy: 63),
        Case(size: 128, align: 16, boundary: 0, stack: 32, rbtree: 32, legacy: 31),
        Case(size: 256, align: 256, boundary: 0, stack: 16, rbtree: 16, legacy: 15),
        Case(size: 1024, align: 1024, boundary: 0, stack: 4, rbtree: 4, legacy: 3),
        Case(size: 4096, align: 4096, boundary: 0, stack: 1, rbtree: 1, legacy: 1),
        Case(size: 68, align: 32, boundary: 4096, stack: 42, rbtree: 42, legacy: 42),
        // 64-byte blocks under a 1 KiB boundary: 16 per KiB, legacy 15 per KiB.
        Case(size: 64, align: 0, boundary: 1024, stack: 64, rbtree: 64, legacy: 60),
        // 96-byte blocks under 1 KiB: 10 per KiB (960), the 11th would cross at 1056.
        Case(size: 96, align: 32, boundary: 1024, stack: 40, rbtree: 40, legacy: 40),
    ]

    @Test(arguments: cases)
    func blocksPerPage(_ c: Case) throws {
        for (algorithm, expected) in [(DMAPoolAlgorithm.stack, c.stack), (.rbtree, c.rbtree), (.legacy, c.legacy)] {
            let pool = try DMAPool(
                name: "layout", device: try testDevice(), size: c.size, align: c.align, boundary: c.boundary,
                algorithm: algorithm)
            #expect(pool.geometry.blockOffsets.count == expected, "\(algorithm)")
            #expect(pool.blocksInFirstPage() == expected, "\(algorithm)")
        }
    }

    @Test func legacyNeverLinksTheBlockEndingOnThePage() throws {
        let pool = try DMAPool(name: "chain", device: try testDevice(), size: 128, align: 16, algorithm: .legacy)
        // Offsets 0, 128, ..., 3840 (31 blocks); 3968 would end exactly at 4096.
        #expect(pool.geometry.blockOffsets == Array(stride(from: 0, through: 3840, by: 128)))
        var dmas: [UInt64] = []
        for _ in 0..<31 { dmas.append(try #require(pool.alloc()).dma) }
        let base = dmas[0]
        #expect(dmas == (0..<31).map { base + UInt64($0 * 128) })
        // The 32nd block opens a new page instead of using base + 3968.
        #expect(try #require(pool.alloc()).dma % 4096 == 0)
    }

    @Test func stackMinimumBlockIs16Bytes() throws {
        let device = try testDevice()
        #expect(try DMAPool(name: "tiny", device: device, size: 1).geometry.size == 16)
        #expect(try DMAPool(name: "tiny", device: device, size: 1, algorithm: .legacy).geometry.size == 4)
        #expect(try DMAPool(name: "tiny", device: device, size: 1, algorithm: .rbtree).geometry.size == 4)
        // 4-byte legacy blocks: 4096/4 - 1 = 1023 per page; blocks column says 1024.
        let legacy = try DMAPool(name: "tiny", device: device, size: 4, algorithm: .legacy)
        #expect(legacy.blocksInFirstPage() == 1023)
        #expect(legacy.counters.blocks == 2 * 1024)
    }

    @Test func blocksLargerThanAPageTakeWholeAllocations() throws {
        let device = try testDevice()
        let pool = try DMAPool(name: "big", device: device, size: 5000, align: 8)
        // allocation = max(5000, 4096) = 5000, one block each; dma_alloc_coherent gives 8 KiB.
        #expect(pool.geometry.allocation == 5000 && pool.geometry.boundary == 5000)
        let a = try #require(pool.alloc())
        let b = try #require(pool.alloc())
        #expect(a.dma % 8192 == 0 && b.dma % 8192 == 0)
        #expect(pool.counters == (2, 2, 2))
    }

    @Test func stackHandsOutAscendingThenLIFO() throws {
        let pool = try DMAPool(name: "order", device: try testDevice(), size: 64)
        let blocks = (0..<4).compactMap { _ in pool.alloc() }
        #expect(blocks.map(\.dma) == (0..<4).map { blocks[0].dma + UInt64($0 * 64) })
        pool.free(blocks[1].cpu, dma: blocks[1].dma)
        pool.free(blocks[3].cpu, dma: blocks[3].dma)
        #expect(pool.alloc()?.dma == blocks[3].dma)
        #expect(pool.alloc()?.dma == blocks[1].dma)
        #expect(pool.alloc()?.dma == blocks[0].dma + 4 * 64)
    }

    @Test func stackSplicesANewPageInFrontOfTheStack() throws {
        let pool = try DMAPool(name: "splice", device: try testDevice(), size: 2048)
        let first = (0..<2).compactMap { _ in pool.alloc() }  // fills page 1
        pool.free(first[0].cpu, dma: first[0].dma)
        _ = pool.alloc()  // takes first[0] back
        let third = try #require(pool.alloc())  // page 2, offset 0
        #expect(pool.counters.pages == 2)
        #expect(third.dma % 4096 == 0 && third.dma != first[0].dma)
    }

    @Test func legacyAllocPrefersTheNewestPageWithRoom() throws {
        let pool = try DMAPool(name: "scan", device: try testDevice(), size: 1024, algorithm: .legacy)
        // 3 blocks per page: page 1 = a0...a2, page 2 starts with b0.
        let a = (0..<3).compactMap { _ in pool.alloc() }
        let b0 = try #require(pool.alloc())
        pool.free(a[1].cpu, dma: a[1].dma)
        // The list is scanned from its head, the newest page: b's page still has room.
        #expect(pool.alloc()?.dma == b0.dma + 1024)
        #expect(pool.alloc()?.dma == b0.dma + 2048)
        #expect(pool.alloc()?.dma == a[1].dma)
    }

    @Test func rbtreeReturnsAFreedPageToTheHeadOfTheAvailList() throws {
        let pool = try DMAPool(name: "avail", device: try testDevice(), size: 1024, algorithm: .rbtree)
        // 4 blocks per page: page 1 = a0...a3 (full, off the avail list), page 2 starts with b0.
        let a = (0..<4).compactMap { _ in pool.alloc() }
        let b0 = try #require(pool.alloc())
        pool.free(a[2].cpu, dma: a[2].dma)
        // Page 1 rejoins at the head of avail_page_list, so it serves next.
        #expect(pool.alloc()?.dma == a[2].dma)
        #expect(pool.alloc()?.dma == b0.dma + 1024)
    }

    @Test func rbtreeStaysBalanced() throws {
        let pool = try DMAPool(name: "tree", device: try testDevice(), size: 4096, algorithm: .rbtree)
        var blocks: [(cpu: UnsafeMutableRawPointer, dma: UInt64)] = []
        for _ in 0..<1000 { blocks.append(try #require(pool.alloc())) }
        let shape = try #require(pool.treeShape)
        #expect(shape.pages == 1000)
        // A red-black tree of n nodes has black height at most log2(n + 1) + 1 ~ 10.97.
        let height = try #require(shape.blackHeight)
        #expect(height >= 5 && height <= 11)
        // Every block is found again by its dma: freeing all leaves nothing active.
        for block in blocks.shuffled() { pool.free(block.cpu, dma: block.dma) }
        #expect(pool.counters.active == 0)
        #expect(pool.device.ram.log.texts().isEmpty)
    }
}
