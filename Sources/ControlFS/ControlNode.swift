// A sysfs-like tree with no FUSE in it: directories whose children come and go as the
// machine changes (devices, pools), and attributes that show a value and store a write.
// Nodes are long-lived objects, as kobjects are, so the FUSE layer can give each one a
// stable inode; a directory tells its observer when a child appears or disappears.
import Locking
import SystemPackage

/// A node of the control tree.
public protocol ControlNode: AnyObject, Sendable {
    /// Permission bits (0444, 0200, 0644, 0755, ...).
    var mode: UInt16 { get }
}

/// What the FUSE layer wants to hear about: a child added or removed under a directory.
public protocol ControlObserver: AnyObject, Sendable {
    func childrenChanged(_ directory: ControlDirectory, name: String)
}

public final class ControlDirectory: ControlNode {
    public let mode: UInt16
    private let entries = PthreadMutex<[(name: String, node: any ControlNode)]>([])
    private let observer = PthreadMutex<(any ControlObserver)?>(nil)

    public init(mode: UInt16 = 0o755) { self.mode = mode }

    /// The children in the order they were added, as sysfs lists attributes.
    public var children: [(name: String, node: any ControlNode)] { entries.withLock { $0 } }

    public func child(_ name: String) -> (any ControlNode)? {
        entries.withLock { $0.first { $0.name == name }?.node }
    }

    /// Adds or replaces a child; returns it, for chaining.
    @discardableResult
    public func add<Node: ControlNode>(_ name: String, _ node: Node) -> Node {
        entries.withLock { entries in
            entries.removeAll { $0.name == name }
            entries.append((name, node))
        }
        notify(name)
        return node
    }

    /// A subdirectory, made when missing.
    @discardableResult
    public func directory(_ name: String, mode: UInt16 = 0o755) -> ControlDirectory {
        if let existing = child(name) as? ControlDirectory { return existing }
        return add(name, ControlDirectory(mode: mode))
    }

    /// Removes a child; returns whether there was one.
    @discardableResult
    public func remove(_ name: String) -> Bool {
        let removed = entries.withLock { entries -> Bool in
            let count = entries.count
            entries.removeAll { $0.name == name }
            return entries.count != count
        }
        if removed { notify(name) }
        return removed
    }

    /// Sets who hears about changes under this directory and every directory below it,
    /// now and added later.
    public func setObserver(_ new: (any ControlObserver)?) {
        observer.withLock { $0 = new }
        for (_, node) in children { (node as? ControlDirectory)?.setObserver(new) }
    }

    private func notify(_ name: String) {
        let current = observer.withLock { $0 }
        if let current, let added = child(name) as? ControlDirectory { added.setObserver(current) }
        current?.childrenChanged(self, name: name)
    }

    /// The node at a relative path such as "devices/0000:85:00.0/pools".
    public func node(at path: String) -> (any ControlNode)? {
        var node: any ControlNode = self
        for part in path.split(separator: "/") where !part.isEmpty {
            guard let directory = node as? ControlDirectory, let next = directory.child(String(part)) else { return nil }
            node = next
        }
        return node
    }
}

/// A sysfs attribute: `show` renders its value (fresh on every open), `store` takes one
/// write, parsed whole, and throws the errno a sysfs store would return.
public final class ControlAttribute: ControlNode {
    public typealias Show = @Sendable () throws(Errno) -> String
    public typealias Store = @Sendable (String) throws(Errno) -> Void

    public typealias Truncate = @Sendable () throws(Errno) -> Void
    /// One ioctl(2): `argument` holds the bytes the command's _IOC_SIZE says, as they came
    /// (for _IOC_WRITE) and as they go back (for _IOC_READ); returns ioctl's result.
    public typealias IOControl = @Sendable (_ command: UInt32, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) -> Int32

    public let mode: UInt16
    let show: Show?
    let store: Store?
    /// What truncating the file to 0 does (O_TRUNC, `: > file`); nothing when nil, as a
    /// sysfs attribute ignores it.
    let truncate: Truncate?
    /// What ioctl(2) does, as a debugfs file's unlocked_ioctl; ENOTTY when nil.
    let ioctl: IOControl?

    /// The mode defaults from what the attribute can do: 0444, 0200 or 0644.
    public init(mode: UInt16? = nil, show: Show? = nil, store: Store? = nil, truncate: Truncate? = nil, ioctl: IOControl? = nil) {
        self.mode = mode ?? (show != nil && store != nil ? 0o644 : store != nil ? 0o200 : 0o444)
        self.show = show
        self.store = store
        self.truncate = truncate
        self.ioctl = ioctl
    }

    public var isReadable: Bool { show != nil }
    public var isWritable: Bool { store != nil }

    /// Longest write taken, as sysfs takes at most a page.
    public static let maxWrite = 4096

    /// The content an open sees: show() once, as sysfs fills its buffer once per open.
    public func snapshot() throws(Errno) -> [UInt8] {
        guard let show else { throw .permissionDenied }
        return Array(try show().utf8)
    }

    /// One write(2): the whole buffer is the value, one trailing newline allowed; more
    /// than a page, or bytes that are not UTF-8, are EINVAL.
    public func write(_ bytes: some Collection<UInt8>) throws(Errno) {
        guard let store else { throw .permissionDenied }
        guard bytes.count <= Self.maxWrite, var text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidArgument
        }
        if text.hasSuffix("\n") { text.removeLast() }
        try store(text)
    }

    /// A truncation to size 0.
    public func truncated() throws(Errno) { try truncate?() }

    /// An ioctl(2) on an open of the attribute.
    public func control(_ command: UInt32, _ argument: UnsafeMutableRawBufferPointer) throws(Errno) -> Int32 {
        guard let ioctl else { throw .inappropriateIOCTLForDevice }
        return try ioctl(command, argument)
    }
}

/// A file read as a stream, as tracefs's trace_pipe is: each read takes what is there
/// and consumes it, waiting while there is nothing; no snapshot, no offset.
public final class ControlStream: ControlNode {
    /// Fills at most `buffer.count` bytes; waits for some unless `nonBlocking` (then
    /// EAGAIN), gives up with EINTR once `interrupted()` is true.
    public typealias Read = @Sendable (
        _ buffer: UnsafeMutableRawBufferPointer, _ nonBlocking: Bool, _ interrupted: () -> Bool
    ) throws(Errno) -> Int

    public let mode: UInt16
    public let read: Read

    public init(mode: UInt16 = 0o444, read: @escaping Read) {
        self.mode = mode
        self.read = read
    }
}

/// A file with a size and random access, as a block device node is: reads and writes go
/// to `read`/`write` at their offset and length, no snapshot, no whole-write parsing.
public final class ControlBlockFile: ControlNode {
    public typealias Size = @Sendable () -> Int
    /// Reads up to `buffer.count` bytes at `offset`; returns how many (0 at the end).
    public typealias Read = @Sendable (_ buffer: UnsafeMutableRawBufferPointer, _ offset: Int) throws(Errno) -> Int
    /// Writes `buffer` at `offset`; returns how many bytes were taken.
    public typealias Write = @Sendable (_ buffer: UnsafeRawBufferPointer, _ offset: Int) throws(Errno) -> Int
    public typealias Flush = @Sendable () throws(Errno) -> Void

    public let mode: UInt16
    public let size: Size
    public let read: Read
    public let write: Write
    public let flush: Flush

    public init(mode: UInt16 = 0o600, size: @escaping Size, read: @escaping Read, write: @escaping Write, flush: @escaping Flush) {
        self.mode = mode
        self.size = size
        self.read = read
        self.write = write
        self.flush = flush
    }
}
