// The slot search of Linux 6.1 (kernel/dma/swiotlb.c's swiotlb_do_find_slots() as Debian's
// 6.1.192 has it), for machines that emulate 6.1. It differs from 6.12's in what it
// aligns: the stride grows with min_align_mask for maps of a page or more (6.12 keeps
// min_align_mask to the bits under a page), the search starts at the area's index
// rounded up to the stride, and a slot is not checked against the alloc alignment.
// Checked against the real kernel by Tests/OracleTests (Fixtures/swiotlb-6.1.0-57.txt).
import Lib
import PhysicalMemory

extension IOTLBPool {
    /// 6.1's search: the pool-absolute first slot, or nil. Its loop is a do-while that ends
    /// only back at its first index; a min_align_mask mismatch steps by one and can step
    /// over it, and then 6.1 never returns (a CPU stuck with the area lock and interrupts
    /// off: a map of more than a segment at an odd-slot offset does it). Here the search
    /// gives up after a pass over every slot and says so.
    func searchArea61(_ areaIndex: Int, _ request: Request, log: (String) -> Void) -> Int? {
        let allocAlignMask = request.allocAlignMask | UInt64(IOTLB.size - 1)
        let iotlbAlignMask = request.minAlignMask & ~allocAlignMask
        let boundaryMask = request.segmentBoundaryMask
        let tblDMA = start & boundaryMask
        let maxSlots = maxSlotCount(boundaryMask)
        let nslots = IOTLB.slots(request.allocSize)
        let offset = Int(request.origAddr & request.minAlignMask & UInt64(IOTLB.size - 1))
        var stride = Int(iotlbAlignMask >> IOTLB.shift) + 1
        if request.allocSize >= PhysicalMemory.pageSize { stride = max(stride, stride << (PhysicalMemory.pageShift - IOTLB.shift)) }
        stride = max(stride, Int(allocAlignMask >> IOTLB.shift) + 1)
        let slotBase = areaIndex * areaNslabs
        let areaNslabs = self.areaNslabs
        // wrap_area_index(): past the end is 0, not the remainder.
        func wrap(_ index: Int) -> Int { index >= areaNslabs ? 0 : index }

        let found = area(areaIndex).pointee.withLock { area -> Int?? in
            guard nslots <= areaNslabs - area.used else { return .some(nil) }
            let first = wrap((area.index + stride - 1) / stride * stride)
            var index = first
            var steps = 0
            repeat {
                steps += 1
                if steps > 2 * areaNslabs { return nil }  // 6.1 would loop here for ever
                let slotIndex = slotBase + index
                let tlbAddr = tblDMA + PhysAddr(slotIndex << IOTLB.shift)
                if request.origAddr != 0 && tlbAddr & iotlbAlignMask != request.origAddr & iotlbAlignMask {
                    index = wrap(index + 1)
                    continue
                }
                if !crossesBoundary(slotIndex, nslots, shift: IOTLB.slots(Int(truncatingIfNeeded: tblDMA)), maxSlots),
                    Int(lists[slotIndex]) >= nslots
                {
                    markUsed(slotIndex, nslots, allocSize: request.allocSize, offset: offset)
                    area.index = index + nslots < areaNslabs ? index + nslots : 0
                    area.used += nslots
                    return .some(slotIndex)
                }
                index = wrap(index + stride)
            } while index != first
            return .some(nil)
        }
        guard let found else {
            log("swiotlb_do_find_slots() of Linux 6.1 never returns for this map (\(request.allocSize) bytes): its search steps over where it began; failing the map instead")
            return nil
        }
        return found
    }
}
