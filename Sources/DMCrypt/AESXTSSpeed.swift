// The cipher alone, for dmaemu-bench: dm-crypt's conversion of 1 MiB (2048 sectors) at a
// time on the calling thread, as a request context does it.
import Foundation
import SystemPackage

public enum AESXTSSpeed {
    /// MiB/s of aes-xts-plain64 encryption with a `keyBytes` key for about `seconds`.
    public static func encrypt(keyBytes: Int, seconds: Double) throws(Errno) -> Double {
        let key = (0..<keyBytes).map { UInt8(truncatingIfNeeded: $0 * 29 + 3) }
        let cipher = try AESXTS(key: key)
        let bytes = 1 << 20
        let scratch = AESXTS.Scratch(bytes: bytes)
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 16)
        defer { data.deallocate() }
        data.initializeMemory(as: UInt8.self, repeating: 0x5a)
        var sector: UInt64 = 0, passes = 0
        let start = ContinuousClock.now
        var elapsed = Duration.zero
        repeat {
            try cipher.encrypt(data, sector: sector, scratch: scratch)
            sector += UInt64(bytes / AESXTS.sectorSize)
            passes += 1
            elapsed = ContinuousClock.now - start
        } while elapsed < .seconds(seconds)
        let (s, attoseconds) = elapsed.components
        return Double(passes) / (Double(s) + Double(attoseconds) / 1e18)
    }
}
