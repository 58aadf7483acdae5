// aes-xts-plain64 (IEEE 1619 XTS-AES, the IV of each 512-byte sector its number as a
// 64-bit little-endian integer): dm-crypt's default cipher, so that a lower disk written
// through dm-N decrypts with any standard implementation. For each sector j:
// T_0 = E_K2(j), T_(i+1) = T_i * x in GF(2^128), C_i = E_K1(P_i ^ T_i) ^ T_i. The block
// function is libcrypto's (EVPXTS), over runs of sectors at a time small enough to stay in
// cache, between two tweak passes (CXTS) that walk each sector's chain again rather than
// storing it.
import CXTS
import Crypto
import SystemPackage

struct AESXTS: Sendable {
    static let sectorSize = 512
    private static let blockSize = 16
    /// The bytes converted between two tweak passes (8 sectors).
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
        /// One initial tweak per sector.
        let tweaks: UnsafeMutableRawBufferPointer
        /// This context's libcrypto contexts, and the key they were keyed with on first use.
        var evp: (contexts: EVPXTS, key: SymmetricKey)?

        init(bytes: Int) {
            capacity = bytes
            tweaks = .allocate(byteCount: max(1, bytes / AESXTS.sectorSize) * AESXTS.blockSize, alignment: 16)
        }

        deinit {
            tweaks.deallocate()
        }
    }

    /// Encrypts whole sectors in place; the first is sector `sector` of the device.
    func encrypt(_ data: UnsafeMutableRawBufferPointer, sector: UInt64, scratch: Scratch) throws(Errno) {
        try convert(from: UnsafeRawPointer(data.baseAddress), into: data, sector: sector, scratch: scratch, encrypt: true)
    }

    /// Encrypts `source` into `destination` (the same size, apart or the same), as
    /// dm-crypt's writes go from the caller's pages into the out bio's.
    func encrypt(_ source: UnsafeRawPointer, into destination: UnsafeMutableRawBufferPointer, sector: UInt64, scratch: Scratch) throws(Errno) {
        try convert(from: source, into: destination, sector: sector, scratch: scratch, encrypt: true)
    }

    /// Decrypts whole sectors in place.
    func decrypt(_ data: UnsafeMutableRawBufferPointer, sector: UInt64, scratch: Scratch) throws(Errno) {
        try convert(from: UnsafeRawPointer(data.baseAddress), into: data, sector: sector, scratch: scratch, encrypt: false)
    }

    private func convert(from source: UnsafeRawPointer?, into data: UnsafeMutableRawBufferPointer, sector: UInt64,
                         scratch: Scratch, encrypt: Bool) throws(Errno) {
        let bytes = data.count
        guard bytes % Self.sectorSize == 0, bytes <= scratch.capacity else { throw .invalidArgument }
        guard bytes > 0, let source else { return }
        if scratch.evp?.key != key { scratch.evp = key.withUnsafeBytes { EVPXTS(key: $0) }.map { ($0, key) } }
        guard let evp = scratch.evp?.contexts else { throw .ioError }
        let sectors = bytes / Self.sectorSize
        // T_0 of each sector: E_K2(sector number).
        for s in 0..<sectors {
            scratch.tweaks.storeBytes(of: (sector &+ UInt64(s)).littleEndian, toByteOffset: s * 16, as: UInt64.self)
            scratch.tweaks.storeBytes(of: 0, toByteOffset: s * 16 + 8, as: UInt64.self)
        }
        guard evp.encryptTweaks(scratch.tweaks.baseAddress!, count: sectors) else { throw .ioError }
        let base = data.baseAddress!
        var at = 0
        while at < bytes {
            let length = min(Self.run, bytes - at)
            let tweaks = scratch.tweaks.baseAddress! + at / Self.sectorSize * Self.blockSize
            xts_xor_tweaks(base + at, source + at, tweaks, length / Self.sectorSize, Self.sectorSize)
            guard evp.crypt(base + at, bytes: length, encrypt: encrypt) else { throw .ioError }
            xts_xor_tweaks(base + at, base + at, tweaks, length / Self.sectorSize, Self.sectorSize)
            at += length
        }
    }
}
