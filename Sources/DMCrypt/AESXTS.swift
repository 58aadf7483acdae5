// aes-xts-plain64 (IEEE 1619 XTS-AES, the IV of each 512-byte sector its number as a
// 64-bit little-endian integer): dm-crypt's default cipher, so that a lower disk written
// through dm-N decrypts with any standard implementation. For each sector j:
// T_0 = E_K2(j), T_(i+1) = T_i * x in GF(2^128), C_i = E_K1(P_i ^ T_i) ^ T_i. The block
// function is libcrypto's (EVPXTS), over runs of sectors at a time small enough for
// their tweaks to stay in cache.
import Crypto
import SystemPackage

struct AESXTS: Sendable {
    static let sectorSize = 512
    private static let blockSize = 16
    /// The bytes converted between two passes over their tweaks (8 sectors).
    static let run = 4096

    /// Both halves, data key first; a SymmetricKey is wiped when it goes.
    private let key: SymmetricKey

    /// `key`: both halves, data key first (32, 48 or 64 bytes: XTS-AES-128/192/256).
    init(key: UnsafeRawBufferPointer) throws(Errno) {
        guard [32, 48, 64].contains(key.count), EVPXTS(key: key) != nil else { throw .invalidArgument }
        self.key = SymmetricKey(data: key)
    }

    init(key: [UInt8]) throws(Errno) {
        let made = key.withUnsafeBytes { bytes in Result { () throws(Errno) in try AESXTS(key: bytes) } }
        self = try made.get()
    }

    /// The scratch space a conversion of up to `bytes` needs, reused across requests.
    final class Scratch {
        let capacity: Int
        /// One run's tweaks.
        let work: UnsafeMutableRawBufferPointer
        /// One initial tweak per sector.
        let tweaks: UnsafeMutableRawBufferPointer
        /// This context's libcrypto contexts, and the key they were keyed with on first use.
        var evp: (contexts: EVPXTS, key: SymmetricKey)?

        init(bytes: Int) {
            capacity = bytes
            work = .allocate(byteCount: AESXTS.run, alignment: 16)
            tweaks = .allocate(byteCount: max(1, bytes / AESXTS.sectorSize) * AESXTS.blockSize, alignment: 16)
        }

        deinit {
            work.deallocate()
            tweaks.deallocate()
        }
    }

    /// Encrypts whole sectors in place; the first is sector `sector` of the device.
    func encrypt(_ data: UnsafeMutableRawBufferPointer, sector: UInt64, scratch: Scratch) throws(Errno) {
        try convert(data, sector: sector, scratch: scratch, encrypt: true)
    }

    /// Decrypts whole sectors in place.
    func decrypt(_ data: UnsafeMutableRawBufferPointer, sector: UInt64, scratch: Scratch) throws(Errno) {
        try convert(data, sector: sector, scratch: scratch, encrypt: false)
    }

    private func convert(_ data: UnsafeMutableRawBufferPointer, sector: UInt64, scratch: Scratch, encrypt: Bool) throws(Errno) {
        let bytes = data.count
        guard bytes % Self.sectorSize == 0, bytes <= scratch.capacity else { throw .invalidArgument }
        guard bytes > 0 else { return }
        if scratch.evp?.key != key { scratch.evp = key.withUnsafeBytes { EVPXTS(key: $0) }.map { ($0, key) } }
        guard let evp = scratch.evp?.contexts else { throw .ioError }
        let sectors = bytes / Self.sectorSize
        // T_0 of each sector: E_K2(sector number).
        for s in 0..<sectors {
            scratch.tweaks.storeBytes(of: (sector &+ UInt64(s)).littleEndian, toByteOffset: s * 16, as: UInt64.self)
            scratch.tweaks.storeBytes(of: 0, toByteOffset: s * 16 + 8, as: UInt64.self)
        }
        guard evp.encryptTweaks(scratch.tweaks.baseAddress!, count: sectors) else { throw .ioError }
        let base = data.baseAddress!, work = scratch.work.baseAddress!
        let perSector = Self.sectorSize / Self.blockSize
        var at = 0
        while at < bytes {
            let length = min(Self.run, bytes - at)
            // Each block XORed with its tweak, the tweaks kept for after.
            for s in 0..<(length / Self.sectorSize) {
                let first = (at / Self.sectorSize + s) * 16
                var lo = UInt64(littleEndian: scratch.tweaks.load(fromByteOffset: first, as: UInt64.self))
                var hi = UInt64(littleEndian: scratch.tweaks.load(fromByteOffset: first + 8, as: UInt64.self))
                for j in 0..<perSector {
                    let i = (s * perSector + j) * 16
                    work.storeBytes(of: lo.littleEndian, toByteOffset: i, as: UInt64.self)
                    work.storeBytes(of: hi.littleEndian, toByteOffset: i + 8, as: UInt64.self)
                    let block = base + at + i
                    block.storeBytes(of: block.loadUnaligned(as: UInt64.self) ^ lo.littleEndian, as: UInt64.self)
                    block.storeBytes(of: block.loadUnaligned(fromByteOffset: 8, as: UInt64.self) ^ hi.littleEndian, toByteOffset: 8, as: UInt64.self)
                    let carry = hi >> 63
                    hi = hi << 1 | lo >> 63
                    lo = lo << 1 ^ (0x87 & (0 &- carry))
                }
            }
            guard evp.crypt(base + at, bytes: length, encrypt: encrypt) else { throw .ioError }
            for w in 0..<(length / 8) {
                let word = base + at + w * 8
                word.storeBytes(of: word.loadUnaligned(as: UInt64.self) ^ work.load(fromByteOffset: w * 8, as: UInt64.self), as: UInt64.self)
            }
            at += length
        }
    }
}
