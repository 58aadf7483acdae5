import PhysicalMemory
import Testing

@Suite struct BulkAllocationTests {
    @Test func arrayFormFillsOnlyEmptySlots() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let held = try #require(ram.allocPages(order: 0))  // pfn 4096
        var array = [PhysAddr](repeating: 0, count: 8)
        array[2] = held
        let populated = array.withUnsafeMutableBufferPointer { ram.allocPagesBulk($0) }
        #expect(populated == 8)
        #expect(array[2] == held)
        // After pfn 4096, DMA32 hands out 4097, 4098, ... in order.
        #expect(array == [4097, 4098, held >> 12, 4099, 4100, 4101, 4102, 4103].map { $0 == held >> 12 ? held : $0 << 12 })
    }

    @Test func callbackFormHandsOverEachPage() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        var pages: [PhysAddr] = []
        #expect(ram.allocPagesBulk(count: 5) { pages.append($0) } == 5)
        #expect(pages == [4096, 4097, 4098, 4099, 4100].map { $0 << 12 })
        #expect(ram.unusedPages == 4095 + 12288 - 5)
    }

    @Test func shortWhenMemoryRunsOut() throws {
        // 32 pages: zone DMA manages pfns 1...31, so 31 pages in all.
        let ram = try PhysicalMemory(size: 32 * 4096)
        var produced = 0
        #expect(ram.allocPagesBulk(count: 100) { _ in produced += 1 } == 31)
        #expect(produced == 31)
        var array = [PhysAddr](repeating: 0, count: 4)
        #expect(array.withUnsafeMutableBufferPointer { ram.allocPagesBulk($0) } == 0)
    }

    @Test func shortWhenAnAllocationFails() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        ram.faults.mode = .failNth(4)
        var array = [PhysAddr](repeating: 0, count: 8)
        // Pages 1-3 arrive, the 4th fails and ends the call: 3 populated, the rest empty.
        #expect(array.withUnsafeMutableBufferPointer { ram.allocPagesBulk($0) } == 3)
        #expect(array[3...] == [0, 0, 0, 0, 0])
        // A second call fills the rest; the caller owns the partial result meanwhile.
        #expect(array.withUnsafeMutableBufferPointer { ram.allocPagesBulk($0) } == 8)
        #expect(Set(array).count == 8)
    }

    @Test func bulkRespectsTheLimit() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        var pages: [PhysAddr] = []
        // Below 16 MiB + 8 KiB: two pages of DMA32, then zone DMA from pfn 1.
        _ = ram.allocPagesBulk(count: 4, limit: (16 << 20) + 8192) { pages.append($0) }
        #expect(pages == [4096 << 12, 4097 << 12, 1 << 12, 2 << 12])
    }
}
