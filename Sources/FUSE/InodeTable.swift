// The FUSE inode table: the kernel names nodes by inode number, and may hold a number
// until it sends FORGET for every lookup it was given. Each known node keeps its number
// (and stays alive) while its lookup count is above zero; the root is 1 and permanent.
import ControlFS
import Locking

final class InodeTable: Sendable {
    struct Entry {
        let node: any ControlNode
        var lookups: Int
    }

    static let root: UInt64 = 1
    private struct Table {
        var entries: [UInt64: Entry] = [:]
        var numbers: [ObjectIdentifier: UInt64] = [:]
        var next: UInt64 = 2
    }

    private let table = PthreadMutex(Table())

    init(root: ControlDirectory) {
        table.withLock { table in
            table.entries[Self.root] = Entry(node: root, lookups: 1)
            table.numbers[ObjectIdentifier(root)] = Self.root
        }
    }

    func node(_ ino: UInt64) -> (any ControlNode)? { table.withLock { $0.entries[ino]?.node } }

    /// The number of a node the kernel has looked up, or nil.
    func number(of node: any ControlNode) -> UInt64? { table.withLock { $0.numbers[ObjectIdentifier(node)] } }

    /// A lookup reply: the node's number, its count raised by one.
    func lookedUp(_ node: any ControlNode) -> UInt64 {
        table.withLock { table in
            let key = ObjectIdentifier(node)
            if let ino = table.numbers[key] {
                table.entries[ino]!.lookups += 1
                return ino
            }
            let ino = table.next
            table.next += 1
            table.numbers[key] = ino
            table.entries[ino] = Entry(node: node, lookups: 1)
            return ino
        }
    }

    /// FORGET: the kernel drops `count` lookups; at zero the number is released.
    func forget(_ ino: UInt64, _ count: UInt64) {
        guard ino != Self.root else { return }
        table.withLock { table in
            guard var entry = table.entries[ino] else { return }
            entry.lookups -= Int(count)
            if entry.lookups <= 0 {
                table.entries[ino] = nil
                table.numbers[ObjectIdentifier(entry.node)] = nil
            } else {
                table.entries[ino] = entry
            }
        }
    }

    var count: Int { table.withLock { $0.entries.count } }
}
