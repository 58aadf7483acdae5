import Lib
import PhysicalMemory
import Testing

/// The per-CPU page lists on the default 8 GiB machine with 2 CPUs, every figure worked
/// out from mm/page_alloc.c and mm/khugepaged.c (6.12). Zones: DMA 4095 managed pages,
/// DMA32 1044480, Normal 1048576; lowmem 2097151.
/// - calculate_min_free_kbytes(): int_sqrt(2097151 * 4 * 16) = 11585; then khugepaged's
///   set_recommended_min_free_kbytes(): 512 * 3 zones * (2 + 3 * 3) = 16896 pages, under 5%
///   of nr_free_buffer_pages() (2090064 / 20), so 67584 KiB (what this 8 GiB host's own
///   kernel shows); pages_min = 16896.
/// - Normal: min = 16896 * 1048576 / 2097151 = 8448; step = max(8448 >> 2, 1048576 * 10 /
///   10000) = 2112; low 10560, high 12672. batch = rounddown_pow_of_two(min(1048576 >> 10,
///   256) / 4 * 3 / 2) - 1 = 63; high_min = max(10560 / 2, 4 * 63) = 5280; high_max =
///   max(1048576 / 8 / 2, 252) = 65536.
/// - DMA: min = 16896 * 4095 / 2097151 = 32; step = max(8, 4) = 8; low 40, high 48. batch:
///   min(3, 256) / 4 = 0, so 1, and rounddown_pow_of_two(1) - 1 = 0, so 1; high_min =
///   max(40 / 2, 4) = 20; high_max = max(4095 / 8 / 2, 4) = 255.
@Suite struct PerCPUPagesTests {
    let normal: PhysAddr = 4 << 30
    func machine() throws -> PhysicalMemory { try PhysicalMemory(size: 8 << 30, cpus: 2) }

    @Test func watermarksAndSizesAreTheKernels() throws {
        let ram = try machine()
        #expect(ram.minFreeKbytes == 67584)
        #expect(ram.watermarks(in: .normal)! == (8448, 10560, 12672))
        #expect(ram.watermarks(in: .dma)! == (32, 40, 48))
        for cpu in 0..<2 {
            #expect(ram.pageSet(in: .normal, cpu: cpu) == .init(count: 0, high: 0, batch: 63, highMin: 5280, highMax: 65536))
            #expect(ram.pageSet(in: .dma, cpu: cpu) == .init(count: 0, high: 0, batch: 1, highMin: 20, highMax: 255))
        }
    }

    /// The first order-0 allocation refills: nr_pcp_alloc() clamps high to high_min
    /// (5280), grows it by the batch (5343, the zone being far above its high mark), takes
    /// min(63 << alloc_factor 0, max(5343 - 0 - 63, 63)) = 63 pages, and alloc_factor
    /// becomes 1. The pages come in the buddy's split order, the first handed out.
    @Test func theFirstAllocationTakesABatch() throws {
        let ram = try machine()
        let first = CPU.acting(as: 0) { ram.allocPages(order: 0) }
        #expect(first == normal)
        #expect(ram.pageSet(in: .normal, cpu: 0)!.count == 62)
        #expect(ram.pageSet(in: .normal, cpu: 0)!.high == 5343)
        #expect(ram.pageSet(in: .normal, cpu: 1)!.count == 0)
        // The 63 pages left the buddy lists: pfn 1048576's order-10 block split into
        // 1048639 (order 0), 1048640 (6), 1048704 (7), 1048832 (8) and 1049088 (9).
        #expect(ram.nrFree(in: .normal) == [1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1023])
        #expect(ram.freePages(in: .normal) == 1048576 - 63)
        #expect(ram.buddyInfo.hasSuffix("Node 0, zone   Normal      1      0      0      0      0      0      1      1      1      1   1023 \n"))
        let next = CPU.acting(as: 0) { (0..<62).compactMap { _ in ram.allocPages(order: 0) } }
        #expect(next == (1...62).map { normal + PhysAddr($0) * 4096 })
    }

    /// A freed page goes to the head of the list: the next allocation gets it back hot,
    /// without the zone. Below high (5343) nothing goes back to the buddy lists.
    @Test func aFreedPageComesBackFirst() throws {
        let ram = try machine()
        try CPU.acting(as: 0) {
            let pages = (0..<3).compactMap { _ in ram.allocPages(order: 0) }
            let free = ram.freePages
            ram.freePages(pages[1], order: 0)
            #expect(ram.pageSet(in: .normal, cpu: 0)!.count == 61)
            #expect(ram.freePages == free)
            #expect(ram.allocPages(order: 0) == pages[1])
            #expect(ram.allocPages(order: 0) == normal + 3 * 4096)
        }
    }

    /// alloc_pages_bulk() of 256 through the list: refills of 63, 126 (alloc_factor 1;
    /// high 5343 + 126 = 5469, room max(5469 - 0 - 63, 63)) and 252 (high 5721): 441 pages
    /// from the zone, 256 handed out, 185 left on the list, alloc_factor 3.
    @Test func aBulkAllocationRefillsInGrowingBatches() throws {
        let ram = try machine()
        let array = UnsafeMutableBufferPointer<PhysAddr>.allocate(capacity: 256)
        defer { array.deallocate() }
        array.initialize(repeating: 0)
        let populated = CPU.acting(as: 0) { ram.allocPagesBulk(array) }
        #expect(populated == 256)
        #expect(Array(array) == (0..<256).map { normal + PhysAddr($0) * 4096 })
        #expect(ram.pageSet(in: .normal, cpu: 0)! == .init(count: 185, high: 5721, batch: 63, highMin: 5280, highMax: 65536))
        #expect(ram.freePages(in: .normal) == 1048576 - 441)
    }

    /// The DMA zone's tiny lists: high_min 20 grows to 21 at the first refill, which takes
    /// one page (batch 1); a free keeps it (count 1 < high 21).
    @Test func theDMAZonesListsHoldAFewPages() throws {
        let ram = try machine()
        try CPU.acting(as: 1) {
            let page = try #require(ram.allocPages(order: 0, limit: 16 << 20))
            #expect(page == 4096)  // pfn 1, the bottom of ZONE_DMA
            #expect(ram.pageSet(in: .dma, cpu: 1)! == .init(count: 0, high: 21, batch: 1, highMin: 20, highMax: 255))
            ram.freePages(page, order: 0)
            #expect(ram.pageSet(in: .dma, cpu: 1)!.count == 1)
            #expect(ram.freePages(in: .dma) == 4094)
        }
    }

    /// 40 pages of ZONE_DMA allocated on CPU 0: refills of 1, 2, 4, 8, 16 and 32 pages
    /// (alloc_factor climbing to CONFIG_PCP_BATCH_SCALE_MAX, 5, then staying), high 20 grown
    /// by each batch to 83; 63 pages out of the zone, 23 left on the list.
    func fortyDMAPages(_ ram: PhysicalMemory) throws -> [PhysAddr] {
        let pages = CPU.acting(as: 0) { (0..<40).compactMap { _ in ram.allocPages(order: 0, limit: 16 << 20) } }
        try #require(pages.count == 40)
        #expect(ram.pageSet(in: .dma, cpu: 0)! == .init(count: 23, high: 83, batch: 1, highMin: 20, highMax: 255))
        #expect(ram.freePages(in: .dma) == 4095 - 63)
        return pages
    }

    /// Freed on CPU 1, whose high is still 0 (clamped to high_min 20): the 20th free finds
    /// count 20 >= high 20, so nr_pcp_high() raises high to free_count + batch = 21 and
    /// free_pcppages_bulk() returns nr_pcp_free() = clamp(free_count 20, batch 1, high 20 -
    /// 1) = 19 pages, the coldest (the first freed), from the tail. The 40th free: count 21
    /// >= 21, free_count capped at batch << 5 = 32, high 33, and clamp(32, 1, 20) = 20 go.
    @Test func freesPastHighGoBackInABatchFromTheTail() throws {
        let ram = try machine()
        let pages = try fortyDMAPages(ram)
        CPU.acting(as: 1) { for page in pages[..<20] { ram.freePages(page, order: 0) } }
        #expect(ram.pageSet(in: .dma, cpu: 1)! == .init(count: 1, high: 21, batch: 1, highMin: 20, highMax: 255))
        #expect(ram.freePages(in: .dma) == 4095 - 63 + 19)
        CPU.acting(as: 1) { for page in pages[20...] { ram.freePages(page, order: 0) } }
        #expect(ram.pageSet(in: .dma, cpu: 1)! == .init(count: 1, high: 33, batch: 1, highMin: 20, highMax: 255))
        #expect(ram.freePages(in: .dma) == 4095 - 63 + 39)
        // What stayed is the last freed, at the head: the next allocation takes it.
        #expect(CPU.acting(as: 1) { ram.allocPages(order: 0, limit: 16 << 20) } == pages[39])
    }

    /// ZONE_BELOW_HIGH shrinks a list instead. After the 40 pages, 250 order-4 blocks (no
    /// pcp) take ZONE_DMA from 4032 free pages to 32; the 250th allocation saw 48 - 15 <= high
    /// 48 + lowmem_reserve[ZONE_DMA] 0 and set the flag. CPU 0 then frees its 40 pages: each
    /// free lowers high by max(free_count, batch) down to high_min 20, and nr_pcp_high()
    /// returns max(count, high_min), so while count >= 20 every free sends nr_pcp_free() =
    /// clamp(free_count, 1, count - 1) pages back:
    ///   free  1: count 24, high 83 - 1 = 82, 1 goes (23);  free 2: 24, 80, 2 go (22);
    ///   free  3: 23, 77, 3 go (20);  free 4: 21, 73, 4 go (17);  5 and 6: 18, 19 (high 68,
    ///   62);  free 7: 20, 55, 7 go (13);  8 to 13: 14...19 (high 47, 38, 28, then 20);
    ///   free 14: 20, 14 go (6);  15 to 28: 7...20, and at 28 clamp(28, 1, 19) = 19 go (1);
    ///   29 to 40: 2...13.
    /// 50 pages back, 13 left, high 20. The flag never clears: zone_watermark_ok() for
    /// ZONE_MOVABLE wants more than 48 + lowmem_reserve[ZONE_MOVABLE] = (1044480 + 1048576)
    /// / 256 = 8176 free, more than ZONE_DMA has (without the reserve it would have cleared
    /// at free 7, 49 free pages, and high grown again).
    @Test func belowHighTheListsShrink() throws {
        let ram = try machine()
        let pages = try fortyDMAPages(ram)
        let blocks = (0..<250).compactMap { _ in ram.allocPages(order: 4, limit: 16 << 20) }
        #expect(blocks.count == 250 && ram.freePages(in: .dma) == 32)
        CPU.acting(as: 0) { for page in pages[..<4] { ram.freePages(page, order: 0) } }
        #expect(ram.pageSet(in: .dma, cpu: 0)! == .init(count: 17, high: 73, batch: 1, highMin: 20, highMax: 255))
        CPU.acting(as: 0) { for page in pages[4..<11] { ram.freePages(page, order: 0) } }
        #expect(ram.pageSet(in: .dma, cpu: 0)! == .init(count: 17, high: 20, batch: 1, highMin: 20, highMax: 255))
        CPU.acting(as: 0) { for page in pages[11...] { ram.freePages(page, order: 0) } }
        #expect(ram.pageSet(in: .dma, cpu: 0)! == .init(count: 13, high: 20, batch: 1, highMin: 20, highMax: 255))
        #expect(ram.freePages(in: .dma) == 32 + 50)
    }

    /// Each zone's protection, as setup_per_zone_lowmem_reserve() sets it: DMA's entries
    /// are the managed pages above it up to each index over 256, (0, 1044480 / 256,
    /// 2093056 / 256, the same, the same) = (0, 4080, 8176, 8176, 8176); DMA32's
    /// (0, 0, 1048576 / 256, ...) = 4096; Normal's over 32, with nothing above, 0.
    @Test func protectionIsTheLowmemReserve() throws {
        let info = try machine().zoneInfo
        let lines = info.split(separator: "\n").filter { $0.hasPrefix("        protection: ") }
        #expect(lines == ["        protection: (0, 4080, 8176, 8176, 8176)", "        protection: (0, 0, 4096, 4096, 4096)",
                          "        protection: (0, 0, 0, 0, 0)"])
    }

    /// An allocation that finds every zone empty drains all CPUs' lists
    /// (drain_all_pages()) and tries again: nothing parked on another CPU is lost.
    @Test func memoryPressureDrainsTheOtherCPUsLists() throws {
        let ram = try PhysicalMemory(size: 64 << 20, cpus: 2)
        let total = ram.unusedPages
        let parked = try CPU.acting(as: 1) { () -> Int in
            ram.freePages(try #require(ram.allocPages(order: 0)), order: 0)
            return ram.pcpPages
        }
        #expect(parked > 1)
        var held: [PhysAddr] = []
        CPU.acting(as: 0) { while let page = ram.allocPages(order: 0) { held.append(page) } }
        #expect(held.count == total)
        #expect(ram.pcpPages == 0 && ram.freePages == 0)
        for page in held { ram.freePages(page, order: 0) }
        ram.drainAllPages()
        #expect(ram.freePages == total)
    }

    /// Freeing a page twice is caught on the pcp path too, and changes nothing.
    @Test func aDoubleFreeIsReported() throws {
        let ram = try machine()
        try CPU.acting(as: 0) {
            let page = try #require(ram.allocPages(order: 0))
            ram.freePages(page, order: 0)
            let count = ram.pcpPages
            ram.freePages(page, order: 0)
            #expect(ram.pcpPages == count)
            let order1 = try #require(ram.allocPages(order: 1))
            ram.freePages(order1, order: 0)
        }
        let log = ram.log.texts()
        #expect(log.filter { $0.hasPrefix("BUG: Bad page state in process dmaemu") }.count == 2)
        #expect(log.contains("page dumped because: freed with order 0, allocated with order 1"))
    }

    /// The zoneinfo lines dmaemu models, in mm/vmstat.c's format.
    @Test func zoneinfo() throws {
        let ram = try machine()
        _ = CPU.acting(as: 0) { ram.allocPages(order: 0) }
        let info = ram.zoneInfo
        let normal = String(info[info.firstRange(of: "Node 0, zone   Normal")!.upperBound...])
        #expect(normal.hasPrefix("\n  pages free     1048513\n        boost    0\n        min      8448\n        low      10560\n        high     12672\n        promo    14784\n"))
        #expect(normal.contains("\n  pagesets\n    cpu: 0\n              count: 62\n              high:  5343\n              batch: 63\n    cpu: 1\n              count: 0\n              high:  0\n              batch: 63\n  start_pfn:           1048576\n"))
    }
}
