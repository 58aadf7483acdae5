// Open files and directories: what an open saw, kept until release, so that reads at any
// offset of one open return the same snapshot, as a sysfs buffer does.
import ControlFS
import Locking

enum Handle {
    /// A directory entry as opendir saw it; `node` is nil for "." and "..".
    typealias Entry = (name: String, isDirectory: Bool, ino: UInt64, node: (any ControlNode)?)

    case file(ControlAttribute, snapshot: [UInt8])
    case block(ControlBlockFile)
    case stream(ControlStream, nonBlocking: Bool)
    case directory([Entry])
}

final class HandleTable: Sendable {
    private struct Table {
        var handles: [UInt64: Handle] = [:]
        var next: UInt64 = 1
    }

    private let table = PthreadMutex(Table())

    func open(_ handle: Handle) -> UInt64 {
        table.withLock { table in
            let id = table.next
            table.next += 1
            table.handles[id] = handle
            return id
        }
    }

    func get(_ id: UInt64) -> Handle? { table.withLock { $0.handles[id] } }

    func release(_ id: UInt64) { table.withLock { _ = $0.handles.removeValue(forKey: id) } }
}
