// The seeded pattern `io write` and `io verify` put on a disk: byte o of the disk is byte
// o % 8 of splitmix64(seed, o / 8), so any range can be written or checked on its own,
// whatever the transfer size or alignment that wrote it.
public enum DataPattern {
    @inline(__always)
    public static func word(_ seed: UInt64, _ index: UInt64) -> UInt64 {
        var z = seed &+ (index &+ 1) &* 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    @inline(__always)
    public static func byte(_ seed: UInt64, at offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: word(seed, UInt64(offset) / 8) >> (UInt64(offset) % 8 * 8))
    }

    /// Fills `count` bytes at `memory` with the pattern of disk bytes [offset, offset + count).
    public static func fill(_ memory: UnsafeMutableRawPointer, offset: Int, count: Int, seed: UInt64) {
        var i = 0
        while i < count && (offset + i) % 8 != 0 {
            memory.storeBytes(of: byte(seed, at: offset + i), toByteOffset: i, as: UInt8.self)
            i += 1
        }
        while i + 8 <= count {
            memory.storeBytes(of: word(seed, UInt64(offset + i) / 8).littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            memory.storeBytes(of: byte(seed, at: offset + i), toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }

    /// The first byte of `count` at `memory` that differs from the pattern, or nil.
    public static func firstMismatch(_ memory: UnsafeRawPointer, offset: Int, count: Int, seed: UInt64) -> Int? {
        var i = 0
        while i < count && (offset + i) % 8 != 0 {
            if memory.load(fromByteOffset: i, as: UInt8.self) != byte(seed, at: offset + i) { return i }
            i += 1
        }
        while i + 8 <= count {
            if memory.loadUnaligned(fromByteOffset: i, as: UInt64.self) != word(seed, UInt64(offset + i) / 8).littleEndian { break }
            i += 8
        }
        while i < count {
            if memory.load(fromByteOffset: i, as: UInt8.self) != byte(seed, at: offset + i) { return i }
            i += 1
        }
        return nil
    }
}
