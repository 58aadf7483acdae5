// dm-crypt's key as the target holds it: in a page of its own that core dumps leave out
// (MADV_DONTDUMP) and that is wiped when the key goes (explicit_bzero, as crypt_dtr()
// wipes cc->key), the hex digits parsed straight into it. The cipher's own copies are
// libcrypto's key schedules (cleansed when their contexts are freed) and swift-crypto's
// SymmetricKey (wiped when it is deallocated). `params/key` shows only its size.
import Glibc
import Lib
import SystemPackage

final class CryptKey: @unchecked Sendable {  // written once, at init; read-only after
    let count: Int
    private let page: UnsafeMutableRawPointer
    private static let pageBytes = 4096

    /// The key in `hex` (an even number of hex digits, at most a page's worth); EINVAL
    /// otherwise, ENOMEM without memory for it.
    init(hex: String) throws(Errno) {
        let digits = hex.utf8
        guard !digits.isEmpty, digits.count % 2 == 0, digits.count / 2 <= Self.pageBytes else { throw .invalidArgument }
        guard let page = mmap(nil, Self.pageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), page != MAP_FAILED else {
            throw .noMemory
        }
        _ = madvise(page, Self.pageBytes, MADV_DONTDUMP)
        self.page = page
        count = digits.count / 2
        var high: UInt8?, at = 0
        for digit in digits {
            // A throw from here runs deinit, which wipes and unmaps: every property is set.
            guard let value = hexDigit(digit) else { throw .invalidArgument }
            if let h = high {
                page.storeBytes(of: h << 4 | value, toByteOffset: at, as: UInt8.self)
                at += 1
                high = nil
            } else {
                high = value
            }
        }
    }

    deinit {
        explicit_bzero(page, Self.pageBytes)
        munmap(page, Self.pageBytes)
    }

    /// Where the key lives (for the test that core dumps leave it out).
    var address: UInt { UInt(bitPattern: page) }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws(Errno) -> R) throws(Errno) -> R {
        try body(UnsafeRawBufferPointer(start: page, count: count))
    }
}
