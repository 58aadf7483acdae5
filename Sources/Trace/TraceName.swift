/// A name an event carries (dev_name(dev), a pool's name), kept as the bytes the
/// buffer records: made once from a String when its owner is made, so that recording an
/// event copies words and touches no String. Names longer than 63 bytes are cut there.
public struct TraceName: Sendable {
    public static let maxBytes = 63
    /// The bytes, zero-padded to whole words.
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var count = 0

    public init(_ name: String) {
        var bytes = Array(name.utf8.prefix(Self.maxBytes))
        count = bytes.count
        bytes += [UInt8](repeating: 0, count: 64 - bytes.count)
        withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: bytes) }
    }

    /// Words the record takes: one for the length, then the bytes.
    @inline(__always) public var recordWords: Int { 1 + (count + 7) / 8 }

    @inline(__always)
    public func write(to record: UnsafeMutablePointer<UInt64>) {
        record[0] = UInt64(count)
        withUnsafeBytes(of: words) { source in
            UnsafeMutableRawPointer(record + 1).copyMemory(from: source.baseAddress!, byteCount: (count + 7) / 8 * 8)
        }
    }

    /// The name recorded at `record` (at read time), and the words it took.
    static func read(_ record: UnsafeBufferPointer<UInt64>, at index: Int) -> (String, Int) {
        let count = Int(record[index])
        let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(record)[((index + 1) * 8)...].prefix(count))
        return (String(decoding: bytes, as: UTF8.self), 1 + (count + 7) / 8)
    }
}
