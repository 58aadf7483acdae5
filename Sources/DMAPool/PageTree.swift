// The red-black tree of Tony Battersby's dmapool, keyed by each page's dma address:
// free finds its page in O(log pages). Pages are never removed before destroy, so only
// insertion (with the kernel's rb_insert_color recolouring) and lookup are needed. Nodes
// are indices into one array, the pages' headers, so the tree allocates only as that
// array grows.
import DMA

struct PageTree {
    struct Node {
        var chain: ChainPage
        var left: Int32 = -1
        var right: Int32 = -1
        var parent: Int32 = -1
        var red = true
        /// avail_page_list links; `onAvail` is !list_empty(&page->avail_page_link).
        var availNext: Int32 = -1
        var availPrev: Int32 = -1
        var onAvail = false
    }

    var nodes: [Node] = []
    var root: Int32 = -1

    /// pool_find_page(): go left below a page, right past its end.
    func find(_ dma: DMAAddr, allocation: Int) -> Int? {
        var index = root
        while index >= 0 {
            let page = nodes[Int(index)].chain.page
            if dma < page.dma {
                index = nodes[Int(index)].left
            } else if dma - page.dma >= DMAAddr(allocation) {
                index = nodes[Int(index)].right
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
            let page = nodes[Int(index)].chain.page
            if dma < page.dma {
                goLeft = true
                index = nodes[Int(index)].left
            } else if dma - page.dma >= DMAAddr(allocation) {
                goLeft = false
                index = nodes[Int(index)].right
            } else {
                return .overlap(existing: page.dma)
            }
        }
        let new = Int32(nodes.count)
        nodes.append(Node(chain: chain, parent: parent))
        if parent < 0 {
            root = new
        } else if goLeft {
            nodes[Int(parent)].left = new
        } else {
            nodes[Int(parent)].right = new
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
                index = nodes[Int(index)].left
            }
            let top = stack.removeLast()
            body(nodes[Int(top)])
            index = nodes[Int(top)].right
        }
    }

    /// Post-order, as rbtree_postorder_for_each_entry_safe() visits them at destroy.
    func postOrder(_ body: (Node) -> Void) {
        func visit(_ index: Int32) {
            guard index >= 0 else { return }
            visit(nodes[Int(index)].left)
            visit(nodes[Int(index)].right)
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
            let parentIsLeft = nodes[Int(grandparent)].left == parent
            let uncle = parentIsLeft ? nodes[Int(grandparent)].right : nodes[Int(grandparent)].left
            if uncle >= 0 && nodes[Int(uncle)].red {
                nodes[Int(parent)].red = false
                nodes[Int(uncle)].red = false
                nodes[Int(grandparent)].red = true
                node = grandparent
                continue
            }
            var top = parent
            if parentIsLeft {
                if nodes[Int(parent)].right == node {
                    rotateLeft(parent)
                    top = node
                }
                rotateRight(grandparent)
            } else {
                if nodes[Int(parent)].left == node {
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
        let y = nodes[Int(x)].right
        let inner = nodes[Int(y)].left
        nodes[Int(x)].right = inner
        if inner >= 0 { nodes[Int(inner)].parent = x }
        replaceChild(of: nodes[Int(x)].parent, old: x, new: y)
        nodes[Int(y)].left = x
        nodes[Int(x)].parent = y
    }

    private mutating func rotateRight(_ x: Int32) {
        let y = nodes[Int(x)].left
        let inner = nodes[Int(y)].right
        nodes[Int(x)].left = inner
        if inner >= 0 { nodes[Int(inner)].parent = x }
        replaceChild(of: nodes[Int(x)].parent, old: x, new: y)
        nodes[Int(y)].right = x
        nodes[Int(x)].parent = y
    }

    private mutating func replaceChild(of parent: Int32, old: Int32, new: Int32) {
        nodes[Int(new)].parent = parent
        if parent < 0 {
            root = new
        } else if nodes[Int(parent)].left == old {
            nodes[Int(parent)].left = new
        } else {
            nodes[Int(parent)].right = new
        }
    }

    /// The black height, or nil when a red node has a red child or two paths differ: the
    /// tree's invariants, for tests.
    func blackHeight(_ index: Int32? = nil) -> Int? {
        let index = index ?? root
        guard index >= 0 else { return 1 }
        let node = nodes[Int(index)]
        for child in [node.left, node.right] where child >= 0 && node.red && nodes[Int(child)].red {
            return nil
        }
        guard let left = blackHeight(node.left), let right = blackHeight(node.right), left == right else {
            return nil
        }
        return left + (node.red ? 0 : 1)
    }
}
