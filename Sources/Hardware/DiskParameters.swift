// The disk behind a block driver, set like its module parameters: `capacity` (bytes, with
// K/M/G; a multiple of 512) and `backing_file` (empty: sparse RAM; a path: that file,
// created sparse when missing, so that its data survives a restart).
import Lib
import SystemPackage

public struct DiskParameters: Equatable, Sendable {
    public var capacity = 1 << 30
    public var backingFile = ""

    public static let maxCapacity = 1 << 44

    public init() {}

    public var values: [(name: String, value: String)] { [("capacity", String(capacity)), ("backing_file", backingFile)] }

    /// Takes `name` if it is a disk parameter (true), EINVAL for a bad value.
    public mutating func set(_ name: String, _ value: String) throws(Errno) -> Bool {
        switch name {
        case "capacity":
            let bytes = Int(try StoreParsing.size(value, max: UInt64(Self.maxCapacity)))
            guard bytes >= 1 << 20, bytes % LBA.size == 0 else { throw .invalidArgument }
            capacity = bytes
        case "backing_file":
            guard value.isEmpty || value.hasPrefix("/") else { throw .invalidArgument }
            backingFile = value
        default:
            return false
        }
        return true
    }

    public func makeStore() throws(Errno) -> any BackingStore {
        backingFile.isEmpty ? try RAMStore(capacity: capacity) : try FileStore(path: backingFile, capacity: capacity)
    }
}
