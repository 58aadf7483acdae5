// aes-xts-plain64 (IEEE 1619 XTS-AES, the IV of each 512-byte sector its number as a
// 64-bit little-endian integer): dm-crypt's default cipher, so that a lower disk written
// through dm-N decrypts with any standard implementation.
//
// swift-crypto offers AES in CBC, CFB, CTR and GCM modes but no XTS and no raw ECB, so
// the block function is obtained in bulk from the modes it has, with one key schedule per
// call rather than one per block:
//   encryption: CFB decryption computes P_i = C_i ^ E(C_(i-1)), with C_0 the IV. Fed IV
//     = X_0 and the blocks X_1 ... X_n, it returns E(X_(i-1)) ^ X_i: one XOR from E(X).
//   decryption: CBC decryption computes P_i = D(C_i) ^ C_(i-1), with C_0 = IV = 0.
import Crypto
import CryptoExtras
import Foundation
import SystemPackage

struct AESXTS: Sendable {
    static let sectorSize = 512
    private static let blockSize = 16

    private let dataKey: SymmetricKey
    private let tweakKey: SymmetricKey

    /// `key`: both halves, data key first (32, 48 or 64 bytes: XTS-AES-128/192/256).
    init(key: [UInt8]) throws(Errno) {
        guard [32, 48, 64].contains(key.count) else { throw .invalidArgument }
        dataKey = SymmetricKey(data: key[..<(key.count / 2)])
        tweakKey = SymmetricKey(data: key[(key.count / 2)...])
    }

    /// The scratch space a conversion of up to `bytes` needs, reused across requests.
    final class Scratch {
        let capacity: Int
        /// The blocks XORed with their tweaks, and one spare block after them.
        let work: UnsafeMutableRawBufferPointer
        /// One initial tweak per sector, and one spare block.
        let tweaks: UnsafeMutableRawBufferPointer

        init(bytes: Int) {
            capacity = bytes
            work = .allocate(byteCount: bytes + AESXTS.blockSize, alignment: 16)
            tweaks = .allocate(byteCount: (bytes / AESXTS.sectorSize + 1) * AESXTS.blockSize, alignment: 16)
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
        let sectors = bytes / Self.sectorSize
        let blocks = bytes / Self.blockSize
        // T_0 of each sector: E_K2(sector number).
        for s in 0..<sectors {
            scratch.tweaks.storeBytes(of: (sector + UInt64(s)).littleEndian, toByteOffset: s * 16, as: UInt64.self)
            scratch.tweaks.storeBytes(of: 0, toByteOffset: s * 16 + 8, as: UInt64.self)
        }
        try Self.encryptBlocks(scratch.tweaks, count: sectors, key: tweakKey)
        withTweaks(scratch, sectors: sectors) { i, lo, hi in
            scratch.work.storeBytes(of: data.loadUnaligned(fromByteOffset: i * 16, as: UInt64.self) ^ lo, toByteOffset: i * 16, as: UInt64.self)
            scratch.work.storeBytes(of: data.loadUnaligned(fromByteOffset: i * 16 + 8, as: UInt64.self) ^ hi, toByteOffset: i * 16 + 8, as: UInt64.self)
        }
        if encrypt {
            try Self.encryptBlocks(scratch.work, count: blocks, key: dataKey)
        } else {
            try Self.decryptBlocks(scratch.work, count: blocks, key: dataKey)
        }
        withTweaks(scratch, sectors: sectors) { i, lo, hi in
            data.storeBytes(of: scratch.work.load(fromByteOffset: i * 16, as: UInt64.self) ^ lo, toByteOffset: i * 16, as: UInt64.self)
            data.storeBytes(of: scratch.work.load(fromByteOffset: i * 16 + 8, as: UInt64.self) ^ hi, toByteOffset: i * 16 + 8, as: UInt64.self)
        }
    }

    /// Calls `body(block index, tweak low, tweak high)` for every block: T_(j+1) = T_j * x
    /// in GF(2^128), little-endian, reduced by x^128 + x^7 + x^2 + x + 1.
    @inline(__always)
    private func withTweaks(_ scratch: Scratch, sectors: Int, _ body: (Int, UInt64, UInt64) -> Void) {
        let perSector = Self.sectorSize / Self.blockSize
        for s in 0..<sectors {
            var lo = UInt64(littleEndian: scratch.tweaks.load(fromByteOffset: s * 16, as: UInt64.self))
            var hi = UInt64(littleEndian: scratch.tweaks.load(fromByteOffset: s * 16 + 8, as: UInt64.self))
            for j in 0..<perSector {
                body(s * perSector + j, lo.littleEndian, hi.littleEndian)
                let carry = hi >> 63
                hi = hi << 1 | lo >> 63
                lo = lo << 1 ^ (0x87 & (0 &- carry))
            }
        }
    }

    /// E_K of each of the first `count` blocks, in place (the block after them is spare).
    private static func encryptBlocks(_ blocks: UnsafeMutableRawBufferPointer, count: Int, key: SymmetricKey) throws(Errno) {
        do {
            let iv = try AES._CFB.IV(ivBytes: UnsafeRawBufferPointer(rebasing: blocks[0..<16]))
            let shifted = UnsafeRawBufferPointer(rebasing: blocks[16..<((count + 1) * 16)])
            let out = try AES._CFB.decrypt(shifted, using: key, iv: iv)
            out.withUnsafeBytes { out in
                for i in 0..<(count * 2) {  // E(X_i) = out_i ^ X_(i+1), a word at a time
                    blocks.storeBytes(of: out.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                        ^ blocks.load(fromByteOffset: i * 8 + 16, as: UInt64.self), toByteOffset: i * 8, as: UInt64.self)
                }
            }
        } catch {
            throw .ioError
        }
    }

    /// D_K of each of the first `count` blocks, in place.
    private static func decryptBlocks(_ blocks: UnsafeMutableRawBufferPointer, count: Int, key: SymmetricKey) throws(Errno) {
        do {
            let zero = try AES._CBC.IV(ivBytes: [UInt8](repeating: 0, count: 16))
            let out = try AES._CBC.decrypt(UnsafeRawBufferPointer(rebasing: blocks[0..<(count * 16)]), using: key, iv: zero, noPadding: true)
            out.withUnsafeBytes { out in
                // D(Y_i) = out_i ^ Y_(i-1): backwards, so that Y_(i-1) is still there.
                for i in stride(from: count * 2 - 1, through: 0, by: -1) {
                    let previous: UInt64 = i >= 2 ? blocks.load(fromByteOffset: (i - 2) * 8, as: UInt64.self) : 0
                    blocks.storeBytes(of: out.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) ^ previous, toByteOffset: i * 8, as: UInt64.self)
                }
            }
        } catch {
            throw .ioError
        }
    }
}
