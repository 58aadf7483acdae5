// XTS-AES on OpenSSL's libcrypto: the AES block function comes from its EVP ECB ciphers
// (aes-128/192/256-ecb, AES-NI where the CPU has it), in bulk, and XTS around it here, as
// the kernel's xts template wraps ecb(aes). libcrypto's own EVP_aes_*_xts would do, but it
// takes one IV per update, and re-initialising its context for each 512-byte sector costs
// about 450 ns, more than the sector's encryption (this machine: 1617 MiB/s against 3032
// for this construction, in the same run); it also has no XTS-AES-192.
// An EVP context is used by one thread at a time: each request context (its Scratch)
// keys its own.
import CLibcrypto

final class EVPXTS {
    /// K1 encrypting and decrypting the data, K2 encrypting the tweaks.
    private let dataEncrypt: OpaquePointer
    private let dataDecrypt: OpaquePointer
    private let tweak: OpaquePointer

    /// Contexts keyed with `key` (data key, then tweak key: 32, 48 or 64 bytes), or nil
    /// where libcrypto fails.
    init?(key: UnsafeRawBufferPointer) {
        let cipher: OpaquePointer?
        switch key.count {
        case 32: cipher = EVP_aes_128_ecb()
        case 48: cipher = EVP_aes_192_ecb()
        case 64: cipher = EVP_aes_256_ecb()
        default: cipher = nil
        }
        let half = key.count / 2
        let bytes = key.baseAddress!.assumingMemoryBound(to: UInt8.self)
        func keyed(_ key: UnsafePointer<UInt8>, encrypt: Int32) -> OpaquePointer? {
            guard let cipher, let ctx = EVP_CIPHER_CTX_new() else { return nil }
            guard EVP_CipherInit_ex(ctx, cipher, nil, key, nil, encrypt) == 1, EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 else {
                EVP_CIPHER_CTX_free(ctx)
                return nil
            }
            return ctx
        }
        let contexts = [keyed(bytes, encrypt: 1), keyed(bytes, encrypt: 0), keyed(bytes + half, encrypt: 1)]
        guard let e = contexts[0], let d = contexts[1], let t = contexts[2] else {
            for case let ctx? in contexts { EVP_CIPHER_CTX_free(ctx) }
            return nil
        }
        (dataEncrypt, dataDecrypt, tweak) = (e, d, t)
    }

    /// Frees the contexts; OpenSSL wipes their key schedules.
    deinit {
        EVP_CIPHER_CTX_free(dataEncrypt)
        EVP_CIPHER_CTX_free(dataDecrypt)
        EVP_CIPHER_CTX_free(tweak)
    }

    /// E_K2 of `count` 16-byte blocks in place.
    func encryptTweaks(_ blocks: UnsafeMutableRawPointer, count: Int) -> Bool {
        update(tweak, blocks, count * 16)
    }

    /// E_K1 or D_K1 of `bytes` (whole blocks) in place.
    func crypt(_ blocks: UnsafeMutableRawPointer, bytes: Int, encrypt: Bool) -> Bool {
        update(encrypt ? dataEncrypt : dataDecrypt, blocks, bytes)
    }

    private func update(_ ctx: OpaquePointer, _ blocks: UnsafeMutableRawPointer, _ bytes: Int) -> Bool {
        var length: Int32 = 0
        let p = blocks.assumingMemoryBound(to: UInt8.self)
        return EVP_CipherUpdate(ctx, p, &length, p, Int32(bytes)) == 1 && Int(length) == bytes
    }
}
