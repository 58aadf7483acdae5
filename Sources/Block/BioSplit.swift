// bio_split_to_limits() for a read or write (block/blk-merge.c, bio_split_rw_at() and
// get_max_io_size() of 6.12): where a bio larger than one request is cut. The bio's bvecs
// are its physically contiguous runs of pages (bio_add_page() merges adjacent pages into
// one); a request takes whole bvecs while they fit max_segments and max_sectors, splits a
// bvec into segments at max_segment_size and the segment boundary, and ends where two
// bvecs leave a gap at the virt boundary. The cut is aligned down to the logical block.
import PhysicalMemory

extension RequestBuffer {
    /// The bytes from `start` that the first request of a queue with `limits` carries (all
    /// that is left when the rest fits one request).
    func splitLength(from start: Int, _ limits: BlockLimits) -> Int {
        let maxBytes = limits.maxSectorsBytes
        let page = PhysicalMemory.pageSize
        let virt = limits.virtBoundaryMask
        var segments = 0, bytes = 0
        var previousEnd: Int?  // bv_offset + bv_len of the bvec before, for the gap check
        var position = -pageOffset  // byte offset of block i's first byte in the bio
        var i = 0
        while i < blockCount {
            // One bvec: this block and those physically after it.
            let first = blocks[i].phys
            var size = page << blocks[i].order
            i += 1
            while i < blockCount && blocks[i].phys == first + PhysAddr(size) {
                size += page << blocks[i].order
                i += 1
            }
            let lo = max(start, position), hi = min(length, position + size)
            defer { position += size }
            guard lo < hi else { continue }
            let phys = first + PhysAddr(lo - position)
            let offset = Int(phys & PhysAddr(page - 1))
            let length = hi - lo
            // bvec_gap_to_prev()
            if let previousEnd, virt != 0, UInt64(offset) & virt != 0 || UInt64(previousEnd) & virt != 0 {
                return cut(bytes)
            }
            if segments < limits.maxSegments && bytes + length <= maxBytes && offset + length <= page {
                segments += 1
                bytes += length
            } else {
                // bvec_split_segs()
                var left = min(length, maxBytes - bytes), taken = 0
                while left > 0 && segments < limits.maxSegments {
                    let n = limits.segmentSize(at: phys + PhysAddr(taken), left)
                    segments += 1
                    taken += n
                    left -= n
                    if UInt64(offset + taken) & virt != 0 { break }
                }
                bytes += taken
                if taken < length { return cut(bytes) }
            }
            previousEnd = offset + length
        }
        return self.length - start
    }

    /// bio_split_alignment(): a split ends on a logical block.
    private func cut(_ bytes: Int) -> Int { bytes / BlockLimits.sectorSize * BlockLimits.sectorSize }
}
