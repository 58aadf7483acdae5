// The machine's mem_map: one descriptor per 4 KiB page frame, kept beside the RAM rather
// than inside it, as the kernel keeps struct page apart from the page, so that free-list
// links never overwrite what a driver left in a freed page. The array is an untouched
// anonymous mapping, so a descriptor costs nothing until its page takes part in the
// buddy allocator, and all-zero means "in use, not a block head".

/// A page frame number: a physical address shifted right by the page shift.
public typealias PFN = Int

struct PageFrame {
    static let none = UInt32.max

    /// Free-list links, valid while this page heads a free block.
    var next: UInt32
    var prev: UInt32
    /// order + 1 while this page heads a free block of that order, else 0 (PageBuddy).
    var freeOrder: UInt8
    /// order + 1 while this page heads an allocated block of that order, else 0.
    var allocOrder: UInt8
    /// page_private(): the allocating layer's word for an allocated block's head page,
    /// zeroed when the block is handed out.
    var owner: UInt64
}
