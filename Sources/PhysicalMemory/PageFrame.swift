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

/// A doubly linked list of page frames threaded through the mem_map's links, by its head
/// and tail frame numbers (PageFrame.none when empty): the buddy allocator's free lists
/// and the pcp lists.
enum FrameList {
    @inline(__always)
    static func insert(_ memMap: UnsafeMutablePointer<PageFrame>, _ pfn: PFN, head: inout UInt32, tail: inout UInt32, atTail: Bool) {
        let index = UInt32(pfn)
        if head == PageFrame.none {
            memMap[pfn].next = PageFrame.none
            memMap[pfn].prev = PageFrame.none
            head = index
            tail = index
        } else if atTail {
            memMap[pfn].prev = tail
            memMap[pfn].next = PageFrame.none
            memMap[Int(tail)].next = index
            tail = index
        } else {
            memMap[pfn].next = head
            memMap[pfn].prev = PageFrame.none
            memMap[Int(head)].prev = index
            head = index
        }
    }

    @inline(__always)
    static func remove(_ memMap: UnsafeMutablePointer<PageFrame>, _ pfn: PFN, head: inout UInt32, tail: inout UInt32) {
        let next = memMap[pfn].next
        let prev = memMap[pfn].prev
        if prev == PageFrame.none { head = next } else { memMap[Int(prev)].next = next }
        if next == PageFrame.none { tail = prev } else { memMap[Int(next)].prev = prev }
    }
}
