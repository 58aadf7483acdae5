// The data of one block request: RAM pages as the page cache would hold them, taken as the
// largest contiguous blocks the buddy allocator gives (large folios), with the request's
// first sector at its in-page offset. blk_rq_map_sg() turns them into a scatter list,
// merging physically adjacent blocks and splitting at the queue's segment limits. One
// buffer per submitting thread, reused: a request allocates nothing on the heap.
import DMA
import PhysicalMemory
import SystemPackage

/// The queue limits a driver sets (struct queue_limits).
public struct BlockLimits: Equatable, Sendable {
    /// SECTOR_SIZE: the unit the block layer counts in, whatever the disk's logical block.
    public static let sectorSize = 512
    /// max_segments.
    public var maxSegments: Int
    /// max_segment_size.
    public var maxSegmentSize: Int
    /// max_hw_sectors in bytes.
    public var maxTransfer: Int
    /// seg_boundary_mask.
    public var segmentBoundaryMask: UInt64 = 0xffff_ffff
    /// virt_boundary_mask: a request's segments may only meet at such a boundary (nvme:
    /// its controller page), else the bio is split there.
    public var virtBoundaryMask: UInt64 = 0
    /// BLK_DEF_MAX_SECTORS_CAP in bytes: what max_sectors is at most unless a user raises it.
    public static let defaultMaxSectorsCap = 2560 * sectorSize

    public init(maxSegments: Int, maxSegmentSize: Int, maxTransfer: Int, segmentBoundaryMask: UInt64 = 0xffff_ffff,
                virtBoundaryMask: UInt64 = 0) {
        self.maxSegments = maxSegments
        self.maxSegmentSize = maxSegmentSize
        self.maxTransfer = maxTransfer
        self.segmentBoundaryMask = segmentBoundaryMask
        self.virtBoundaryMask = virtBoundaryMask
    }

    /// max_sectors in bytes: max_hw_sectors capped as blk_validate_limits() caps it. The
    /// most one request carries; a bio is split there.
    public var maxSectorsBytes: Int { min(maxTransfer, Self.defaultMaxSectorsCap) }

    /// get_max_segment_size(): how much of `length` bytes at `phys` one segment may take.
    @inline(__always)
    func segmentSize(at phys: PhysAddr, _ length: Int) -> Int {
        min(length, Int(min(segmentBoundaryMask - (segmentBoundaryMask & phys), UInt64(maxSegmentSize) - 1)) + 1)
    }
}

public final class RequestBuffer {
    public let ram: PhysicalMemory
    public let limits: BlockLimits
    let blocks: UnsafeMutableBufferPointer<(phys: PhysAddr, order: Int)>
    private(set) var blockCount = 0
    /// Offset of byte 0 of the data in the first block.
    public private(set) var pageOffset = 0
    public private(set) var length = 0
    /// The pages are someone else's (a stacked driver's bio): release() forgets them.
    private var borrowed = false
    public let scatterList: UnsafeMutableBufferPointer<ScatterEntry>
    /// The most bytes the buffer holds (a bio larger than a request is split into pieces).
    public let capacity: Int
    /// The pieces of this bio in flight at once, each describing part of its pages.
    private var pieces: [RequestBuffer] = []
    /// Where the driver writes a piece's completion status (the iod's, the tracker's).
    let status: UnsafeMutablePointer<UInt16> = .allocate(capacity: 1)
    /// The requests of a bio sent through this buffer by a submitter that waits (made once
    /// for the queue it goes to).
    private var waitingFlight: BlockFlight?

    /// A buffer of up to `capacity` bytes (one request's worth unless said).
    public init(ram: PhysicalMemory, limits: BlockLimits, capacity: Int? = nil) {
        self.ram = ram
        self.limits = limits
        self.capacity = capacity ?? limits.maxTransfer
        let pages = self.capacity / PhysicalMemory.pageSize + 2
        blocks = .allocate(capacity: pages)
        scatterList = .allocate(capacity: limits.maxSegments)
        scatterList.initialize(repeating: ScatterEntry(phys: 0, length: 0))
    }

    deinit {
        release()
        blocks.deallocate()
        scatterList.deallocate()
        status.deallocate()
    }

    /// Takes pages for `length` bytes starting `pageOffset` bytes into the first page;
    /// false (nothing kept) when RAM runs out.
    public func allocate(length: Int, pageOffset: Int) -> Bool {
        release()
        guard (pageOffset + length + PhysicalMemory.pageSize - 1) / PhysicalMemory.pageSize <= blocks.count else { return false }
        self.length = length
        self.pageOffset = pageOffset
        var pages = (pageOffset + length + PhysicalMemory.pageSize - 1) / PhysicalMemory.pageSize
        while pages > 0 {
            var order = min(Int.bitWidth - 1 - pages.leadingZeroBitCount, PhysicalMemory.maxOrder)
            var phys: PhysAddr?
            while phys == nil && order >= 0 {
                phys = ram.allocPages(order: order)
                if phys == nil { order -= 1 }
            }
            guard let phys else {
                release()
                return false
            }
            blocks[blockCount] = (phys, order)
            blockCount += 1
            pages -= 1 << order
        }
        return true
    }

    public func release() {
        if !borrowed {
            for i in 0..<blockCount { ram.freePages(blocks[i].phys, order: blocks[i].order) }
        }
        borrowed = false
        blockCount = 0
        length = 0
    }

    /// Describes bytes [start, start + count) of `source` (a piece of another request,
    /// as a split bio shares its parent's pages) without taking pages of its own.
    public func borrow(from source: RequestBuffer, start: Int, count: Int) {
        release()
        borrowed = true
        var position = -source.pageOffset  // buffer offset of the current block's first byte
        for i in 0..<source.blockCount {
            let size = PhysicalMemory.pageSize << source.blocks[i].order
            if position + size > start && position < start + count {
                if blockCount == 0 { pageOffset = start - position }
                blocks[blockCount] = source.blocks[i]
                blockCount += 1
            }
            position += size
        }
        length = count
    }

    /// The buffer that describes the piece `depth` of this bio in flight to a queue with
    /// `limits` (made once for the queue the bio goes to).
    func piece(_ depth: Int, _ limits: BlockLimits) -> RequestBuffer {
        while pieces.count <= depth { pieces.append(RequestBuffer(ram: ram, limits: limits)) }
        if pieces[depth].limits != limits { pieces[depth] = RequestBuffer(ram: ram, limits: limits) }
        return pieces[depth]
    }

    func flight(_ queue: BlockQueue) -> BlockFlight {
        if let flight = waitingFlight, flight.queue === queue { return flight }
        let flight = BlockFlight(queue, slots: 1)
        waitingFlight = flight
        return flight
    }

    /// Describes pages a stacked driver allocated (its out bio), data from the first
    /// page's start; they stay the caller's.
    public func borrow(blocks list: UnsafeBufferPointer<(phys: PhysAddr, order: Int)>, length: Int) {
        release()
        borrowed = true
        for block in list {
            blocks[blockCount] = block
            blockCount += 1
        }
        pageOffset = 0
        self.length = length
    }

    /// blk_rq_map_sg(): the scatter list, or nil when it needs more than max_segments.
    public func mapScatterList() -> Int? {
        var count = 0
        var remaining = length
        var skip = pageOffset
        var i = 0
        while remaining > 0 {
            let block = blocks[i]
            var phys = block.phys + PhysAddr(skip)
            var left = min((PhysicalMemory.pageSize << block.order) - skip, remaining)
            skip = 0
            i += 1
            while left > 0 {
                // A segment grows while the next bytes are physically adjacent, up to the
                // segment size and the boundary.
                let boundaryLeft = Int(limits.segmentBoundaryMask - (phys & limits.segmentBoundaryMask)) + 1
                if count > 0, scatterList[count - 1].phys + PhysAddr(scatterList[count - 1].length) == phys {
                    let last = scatterList[count - 1]
                    let room = min(limits.maxSegmentSize - last.length,
                                   Int(limits.segmentBoundaryMask - (last.phys & limits.segmentBoundaryMask)) + 1 - last.length)
                    if room > 0 {
                        let n = min(room, left)
                        scatterList[count - 1].length += n
                        phys += PhysAddr(n)
                        left -= n
                        remaining -= n
                        continue
                    }
                }
                guard count < limits.maxSegments else { return nil }
                let n = min(left, limits.maxSegmentSize, boundaryLeft)
                scatterList[count] = ScatterEntry(phys: phys, length: n)
                count += 1
                phys += PhysAddr(n)
                left -= n
                remaining -= n
            }
        }
        return count
    }

    /// The CPU's access to buffer bytes [start, start + count), piece by contiguous piece:
    /// `body(pointer, offset in the buffer, length)`.
    @inline(__always)
    public func withPieces<E: Error>(from start: Int, count: Int, _ body: (UnsafeMutableRawPointer, Int, Int) throws(E) -> Void) throws(E) {
        var position = 0  // buffer offset of the current block's first data byte
        var skip = pageOffset
        let end = start + count
        for i in 0..<blockCount where position < end {
            let size = (PhysicalMemory.pageSize << blocks[i].order) - skip
            let lo = max(start, position), hi = min(end, position + size)
            if lo < hi {
                try body(ram.virt(blocks[i].phys + PhysAddr(skip + lo - position)), lo, hi - lo)
            }
            position += size
            skip = 0
        }
    }
}
