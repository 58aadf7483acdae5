@testable import Block
import PhysicalMemory
import Testing

/// bio_split_rw_at()'s bvec_gap_to_prev(), written out: with a virt boundary, a bvec may
/// follow another only if it starts on the boundary and the one before ends on it
/// (`offset & mask || (prev.bv_offset + prev.bv_len) & mask`); the bio is cut before the
/// first that does not, on a logical block.
@Suite struct BioSplitTests {
    /// Two single pages that are not physically adjacent: two bvecs of 4096 bytes, each
    /// starting at offset 0 and ending at 4096.
    func twoBvecs(_ ram: PhysicalMemory) throws -> RequestBuffer {
        let limits = BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 1 << 20)
        let buffer = RequestBuffer(ram: ram, limits: limits)
        let a = try #require(ram.allocPages(order: 0)), gap = try #require(ram.allocPages(order: 0))
        let b = try #require(ram.allocPages(order: 0))
        #expect(b != a + 4096)  // `gap` lies between them: not one bvec
        _ = gap
        let list: [(phys: PhysAddr, order: Int)] = [(a, 0), (b, 0)]
        list.withUnsafeBufferPointer { buffer.borrow(blocks: $0, length: 8192) }
        return buffer
    }

    @Test func noVirtBoundaryNoGap() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let buffer = try twoBvecs(ram)
        #expect(buffer.splitLength(from: 0, BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 1 << 20)) == 8192)
    }

    /// nvme's 4 KiB controller page: 4096 & 0xfff == 0 and the second starts at 0: no gap.
    @Test func pageBoundariesMeetNVMesVirtBoundary() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let buffer = try twoBvecs(ram)
        let nvme = BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 1 << 20, virtBoundaryMask: 0xfff)
        #expect(buffer.splitLength(from: 0, nvme) == 8192)
    }

    /// A 64 KiB virt boundary: the first bvec ends at 4096, and 4096 & 0xffff != 0, so the
    /// bio is cut after it; the rest is one request.
    @Test func aBvecEndingOffTheBoundaryEndsTheRequest() throws {
        let ram = try PhysicalMemory(size: 64 << 20)
        let buffer = try twoBvecs(ram)
        let wide = BlockLimits(maxSegments: 128, maxSegmentSize: 65536, maxTransfer: 1 << 20, virtBoundaryMask: 0xffff)
        #expect(buffer.splitLength(from: 0, wide) == 4096)
        #expect(buffer.splitLength(from: 4096, wide) == 4096)
    }
}
