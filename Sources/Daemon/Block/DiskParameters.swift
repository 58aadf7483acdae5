// The disk behind a block driver, set like its module parameters: `capacity` (bytes, with
// K/M/G; a multiple of 512) and `backing_file` (empty: sparse RAM; a path: that file,
// created sparse when missing, so that its data survives a restart).
import SystemPackage

struct DiskParameters: Equatable {
    var capacity = 1 << 30
    var backingFile = ""

    static let maxCapacity = 1 << 44

    var values: [(name: String, value: String)] { [("capacity", String(capacity)), ("backing_file", backingFile)] }

    /// Takes `name` if it is a disk parameter (true), EINVAL for a bad value.
    mutating func set(_ name: String, _ value: String) throws(Errno) -> Bool {
        switch name {
        case "capacity":
            let bytes = Int(try StoreParsing.size(value, max: UInt64(Self.maxCapacity)))
            guard bytes >= 1 << 20, bytes % BlockLimits.sectorSize == 0 else { throw .invalidArgument }
            capacity = bytes
        case "backing_file":
            guard value.isEmpty || value.hasPrefix("/") else { throw .invalidArgument }
            backingFile = value
        default:
            return false
        }
        return true
    }

    func makeStore() throws(Errno) -> any BackingStore {
        backingFile.isEmpty ? try RAMStore(capacity: capacity) : try FileStore(path: backingFile, capacity: capacity)
    }
}
