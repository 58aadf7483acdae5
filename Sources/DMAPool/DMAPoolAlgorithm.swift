/// Which kernel generation of mm/dmapool.c a pool reproduces.
public enum DMAPoolAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    /// v6.4 and later (Keith Busch): one LIFO stack of free blocks across all pages,
    /// links kept inside the free blocks; O(1) alloc and free.
    case stack
    /// Tony Battersby's v6 series (2022): pages in a red-black tree by dma address for
    /// free, a list of pages with free blocks for alloc; in-page free chains.
    case rbtree
    /// Up to v6.3: page-list scans on alloc and free, in-page 4-byte free chains, the
    /// `>=` boundary test that wastes a page's last block, an overcounting blocks column.
    case legacy

    public var description: String { rawValue }
}
