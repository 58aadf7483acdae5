// A pool's shape, decided once at create: block size after the minimum and alignment,
// the coherent allocation each "page" is, the boundary, and which offsets of a page
// become blocks. Each kernel generation derives these with its own rules; keeping the
// derivation here makes the three engines differ only in how they track free blocks.
import PhysicalMemory

public struct DMAPoolGeometry: Sendable, Equatable {
    /// The block size after raising to the minimum and aligning (pool->size).
    public let size: Int
    /// The alignment asked for (0 taken as 1); the kernel keeps it only in the size.
    public let align: Int
    /// Bytes per coherent allocation: max(size, PAGE_SIZE) (pool->allocation).
    public let allocation: Int
    /// No block crosses a multiple of this (pool->boundary).
    public let boundary: Int
    /// The offsets within one allocation that become blocks, ascending.
    public let blockOffsets: [Int]
    /// For the in-page chains of legacy and rbtree: the link each block holds when the
    /// page is fresh, exactly as the kernel's loop stored it (a value >= allocation ends it).
    let chainLinks: [Int]
    /// What the `pools` blocks column adds per page: legacy's allocation / size, Tony's
    /// blks_per_alloc; for stack the real count.
    public let blocksColumnPerPage: Int

    /// The corresponding kernel function is `dma_pool_create()`, its argument checks.
    public init(size requested: Int, align: Int, boundary requestedBoundary: Int, algorithm: DMAPoolAlgorithm)
        throws(DMAPoolError)
    {
        let align = align == 0 ? 1 : align
        guard align > 0, align & (align - 1) == 0 else { throw .alignNotPowerOfTwo(align: align) }
        guard requested != 0 else { throw .zeroSize }
        guard requested > 0, algorithm == .legacy || requested <= Int(Int32.max) else {
            throw .sizeTooLarge(size: requested)
        }
        // v6.4 overlays struct dma_block (two 8-byte words) on a free block; before it a
        // 4-byte int offset was enough.
        let minimum = algorithm == .stack ? 16 : 4
        let (aligned, overflow) = max(requested, minimum).addingReportingOverflow(align - 1)
        guard !overflow else { throw .sizeTooLarge(size: requested) }
        let size = aligned & ~(align - 1)
        let allocation = max(size, PhysicalMemory.pageSize)
        var boundary = requestedBoundary
        if boundary == 0 {
            boundary = allocation
        } else if boundary < size {
            throw .boundaryTooSmall(boundary: boundary, size: size)
        } else if boundary & (boundary - 1) != 0 {
            throw .boundaryNotPowerOfTwo(boundary: boundary)
        }
        if algorithm == .stack { boundary = min(boundary, allocation) }

        self.size = size
        self.align = align
        self.allocation = allocation
        self.boundary = boundary
        switch algorithm {
        case .stack:
            blockOffsets = Self.stackOffsets(size: size, allocation: allocation, boundary: boundary)
            chainLinks = []
            blocksColumnPerPage = blockOffsets.count
        case .rbtree, .legacy:
            let chain = Self.chain(size: size, allocation: allocation, boundary: boundary, wasteLast: algorithm == .legacy)
            blockOffsets = chain.map(\.offset)
            chainLinks = chain.map(\.next)
            blocksColumnPerPage =
                algorithm == .legacy
                ? allocation / size
                : (allocation / boundary) * (boundary / size) + (allocation % boundary) / size
        }
    }

    /// v6.4+ pool_initialise_page(): a block at each offset whose end stays within the
    /// allocation; one that would cross next_boundary is skipped to the boundary.
    static func stackOffsets(size: Int, allocation: Int, boundary: Int) -> [Int] {
        var offsets: [Int] = []
        var offset = 0
        var nextBoundary = boundary
        while offset + size <= allocation {
            if offset + size > nextBoundary {
                offset = nextBoundary
                nextBoundary += boundary
                continue
            }
            offsets.append(offset)
            offset += size
        }
        return offsets
    }

    /// The in-page chain of pool_initialise_page() before v6.4: each block's successor is
    /// offset + size unless the block after that would reach next_boundary, in which case
    /// the chain jumps to the boundary. Legacy tests `next + size >= next_boundary`, so a
    /// block ending exactly on the boundary is never linked; Tony's "fix boundary
    /// comparison" tests `>`. With a boundary above the allocation and a size that does
    /// not divide it, both kernels chained a last block that overran the page; the chain
    /// stops before it here, so the emulated RAM beyond the page stays intact.
    static func chain(size: Int, allocation: Int, boundary: Int, wasteLast: Bool) -> [(offset: Int, next: Int)] {
        var links: [(offset: Int, next: Int)] = []
        var offset = 0
        var nextBoundary = boundary
        repeat {
            var next = offset + size
            if wasteLast ? next + size >= nextBoundary : next + size > nextBoundary {
                next = nextBoundary
                nextBoundary += boundary
            }
            if next < allocation && next + size > allocation { next = allocation }
            links.append((offset, next))
            offset = next
        } while offset < allocation
        return links
    }
}
