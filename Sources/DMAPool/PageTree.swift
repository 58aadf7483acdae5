// The red-black tree of Tony Battersby's dmapool, keyed by each page's dma address:
// free finds its page in O(log pages). Pages are never removed before destroy, so only
// insertion (with the kernel's rb_insert_color recolouring) and lookup are needed. Nodes
// are indices into one array, the pages' headers, so the tree allocates only as that
// array grows. What a lookup reads (the key and the two links) sits apart in 16 bytes a
// page, so the walk of a 10^6-block pool stays in the L2 cache rather than striding
// through 64-byte headers.
import DMA

struct PageTree {
    struct Key {
        let dma: DMAAddr
        var left: Int32 = -1
        var right: Int32 = -1
    }

    struct Node {
        var chain: ChainPage
        var parent: Int32 = -1
        var red = true
        /// avail_page_list links; `onAvail` is !list_empty(&page->avail_page_link).
        var availNext: Int32 = -1
        var availPrev: Int32 = -1
        var onAvail = false
    }

    var nodes: [Node] = []
    /// keys[i] is nodes[i]'s page dma and links.
    var keys: [Key] = []
    var root: Int32 = -1

    /// pool_find_page(): go left below a page, right past its end.
    func find(_ dma: DMAAddr, allocation: Int) -> Int? {
        var index = root
        while index >= 0 {
            let key = keys[Int(index)]
            if dma < key.dma {
                index = key.left
            } else if dma - key.dma >= DMAAddr(allocation) {
                index = key.right
            } else {
                return Int(index)
            }
        }
        return nil
    }

    enum InsertResult { case inserted(Int), overlap(existing: DMAAddr) }

    /// pool_insert_page(): descend as find does; a page overlapping the new range is refused.
    mutating func insert(_ chain: ChainPage, allocation: Int) -> InsertResult {
        let dma = chain.page.dma
        var parent: Int32 = -1
        var goLeft = false
        var index = root
        while index >= 0 {
            parent = index
            let key = keys[Int(index)]
            if dma < key.dma {
                goLeft = true
                index = key.left
            } else if dma - key.dma >= DMAAddr(allocation) {
                goLeft = false
                index = key.right
            } else {
                return .overlap(existing: key.dma)
            }
        }
        let new = Int32(nodes.count)
        nodes.append(Node(chain: chain, parent: parent))
        keys.append(Key(dma: dma))
        if parent < 0 {
            root = new
        } else if goLeft {
            keys[Int(parent)].left = new
        } else {
            keys[Int(parent)].right = new
        }
        insertColor(new)
        return .inserted(Int(new))
    }

    /// In-order: ascending dma addresses, as rb_first()/rb_next() visit them.
    func inOrder(_ body: (Node) -> Void) {
        var stack: [Int32] = []
        var index = root
        while index >= 0 || !stack.isEmpty {
            while index >= 0 {
                stack.append(index)
                index = keys[Int(index)].left
            }
            let top = stack.removeLast()
            body(nodes[Int(top)])
            index = keys[Int(top)].right
        }
    }

    /// Post-order, as rbtree_postorder_for_each_entry_safe() visits them at destroy.
    func postOrder(_ body: (Node) -> Void) {
        func visit(_ index: Int32) {
            guard index >= 0 else { return }
            visit(keys[Int(index)].left)
            visit(keys[Int(index)].right)
            body(nodes[Int(index)])
        }
        visit(root)
    }

    // MARK: - Balancing

    private mutating func insertColor(_ start: Int32) {
        var node = start
        while true {
            let parent = nodes[Int(node)].parent
            guard parent >= 0 else {
                nodes[Int(node)].red = false
                return
            }
            guard nodes[Int(parent)].red else { return }
            let grandparent = nodes[Int(parent)].parent  // a red parent is never the root
            let parentIsLeft = keys[Int(grandparent)].left == parent
            let uncle = parentIsLeft ? keys[Int(grandparent)].right : keys[Int(grandparent)].left
            if uncle >= 0 && nodes[Int(uncle)].red {
                nodes[Int(parent)].red = false
                nodes[Int(uncle)].red = false
                nodes[Int(grandparent)].red = true
                node = grandparent
                continue
            }
            var top = parent
            if parentIsLeft {
                if keys[Int(parent)].right == node {
                    rotateLeft(parent)
                    top = node
                }
                rotateRight(grandparent)
            } else {
                if keys[Int(parent)].left == node {
                    rotateRight(parent)
                    top = node
                }
                rotateLeft(grandparent)
            }
            nodes[Int(top)].red = false
            nodes[Int(grandparent)].red = true
            return
        }
    }

    private mutating func rotateLeft(_ x: Int32) {
        let y = keys[Int(x)].right
        let inner = keys[Int(y)].left
        keys[Int(x)].right = inner
        if inner >= 0 { nodes[Int(inner)].parent = x }
        replaceChild(of: nodes[Int(x)].parent, old: x, new: y)
        keys[Int(y)].left = x
        nodes[Int(x)].parent = y
    }

    private mutating func rotateRight(_ x: Int32) {
        let y = keys[Int(x)].left
        let inner = keys[Int(y)].right
        keys[Int(x)].left = inner
        if inner >= 0 { nodes[Int(inner)].parent = x }
        replaceChild(of: nodes[Int(x)].parent, old: x, new: y)
        keys[Int(y)].right = x
        nodes[Int(x)].parent = y
    }

    private mutating func replaceChild(of parent: Int32, old: Int32, new: Int32) {
        nodes[Int(new)].parent = parent
        if parent < 0 {
            root = new
        } else if keys[Int(parent)].left == old {
            keys[Int(parent)].left = new
        } else {
            keys[Int(parent)].right = new
        }
    }

    /// The black height, or nil when a red node has a red child or two paths differ: the
    /// tree's invariants, for tests.
    func blackHeight(_ index: Int32? = nil) -> Int? {
        let index = index ?? root
        guard index >= 0 else { return 1 }
        let node = nodes[Int(index)], key = keys[Int(index)]
        for child in [key.left, key.right] where child >= 0 && node.red && nodes[Int(child)].red {
            return nil
        }
        guard let left = blackHeight(key.left), let right = blackHeight(key.right), left == right else {
            return nil
        }
        return left + (node.red ? 0 : 1)
    }
}
