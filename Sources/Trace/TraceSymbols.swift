// The names the dma events print for numbers (decode_dma_data_direction(),
// decode_dma_attrs(), show_gfp_flags()), one table each, read both ways: TraceText prints
// with them and a replay reads a recorded line's names back into the numbers.
import Lib

public enum TraceSymbols {
    /// enum dma_data_direction, by value.
    static let directions = ["BIDIRECTIONAL", "TO_DEVICE", "FROM_DEVICE", "NONE"]

    /// The DMA_ATTR_* bits decode_dma_attrs() names in `kernel` (6.18 adds MMIO).
    static func attributes(_ kernel: KernelVersion) -> [(UInt64, String)] {
        kernel >= .v6_18 ? attributeNames + [(1 << 10, "MMIO")] : attributeNames
    }

    private static let attributeNames: [(UInt64, String)] = [
        (1 << 1, "WEAK_ORDERING"), (1 << 2, "WRITE_COMBINE"), (1 << 4, "NO_KERNEL_MAPPING"), (1 << 5, "SKIP_CPU_SYNC"),
        (1 << 6, "FORCE_CONTIGUOUS"), (1 << 7, "ALLOC_SINGLE_PAGES"), (1 << 8, "NO_WARN"), (1 << 9, "PRIVILEGED"),
    ]

    /// A direction's name (or "0x.." as printed for a bad one) back to its value.
    public static func direction(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
        if let index = directionBytes.firstIndex(where: { $0.elementsEqual(text) }) { return UInt64(index) }
        return hexNumber(text)
    }

    /// An attrs= value ("" for none, "SKIP_CPU_SYNC|NO_WARN", leftover bits in hex).
    public static func attributes(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? { flags(text, attributeBytes) }

    /// A flags= value of dma_alloc ("none", "GFP_KERNEL|__GFP_ZERO", ...).
    public static func gfp(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
        text.elementsEqual("none".utf8) ? 0 : flags(text, gfpBytes)
    }

    private static let directionBytes = directions.map { Array($0.utf8) }
    private static let attributeBytes = (attributeNames + [(1 << 10, "MMIO")]).map { ($0.0, Array($0.1.utf8)) }
    private static let gfpBytes = GFPNames.names.map { ($0.0, Array($0.1.utf8)) }

    /// __print_flags() read back: names joined by "|", any of them "0x" and hex.
    static func flags(_ text: UnsafeBufferPointer<UInt8>, _ table: [(UInt64, [UInt8])]) -> UInt64? {
        var value: UInt64 = 0
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count && text[end] != UInt8(ascii: "|") { end += 1 }
            let part = UnsafeBufferPointer(rebasing: text[start..<end])
            if let (mask, _) = table.first(where: { $0.1.elementsEqual(part) }) {
                value |= mask
            } else if let number = hexNumber(part) {
                value |= number
            } else {
                return nil
            }
            start = end + 1
        }
        return value
    }

    /// "0x" and hex digits.
    public static func hexNumber(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard text.count > 2, text[0] == UInt8(ascii: "0"), text[1] | 0x20 == UInt8(ascii: "x") else { return nil }
        return parseHex(UnsafeBufferPointer(rebasing: text[2...]))
    }
}

/// Hex digits (no prefix) as a number; nil for anything else or more than 64 bits.
public func parseHex(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
    guard !text.isEmpty, text.count <= 16 else { return nil }
    var value: UInt64 = 0
    for byte in text {
        guard let digit = hexDigit(byte) else { return nil }
        value = value << 4 | UInt64(digit)
    }
    return value
}

/// Decimal digits as a number; nil for anything else or an overflow.
public func parseDecimal(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
    guard !text.isEmpty, text.count <= 20 else { return nil }
    var value: UInt64 = 0
    for byte in text {
        guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
        let (times, o1) = value.multipliedReportingOverflow(by: 10)
        let (sum, o2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
        guard !o1 && !o2 else { return nil }
        value = sum
    }
    return value
}

/// show_gfp_flags(): trace/events/mmflags.h's names, most bits first; "none" for 0.
enum GFPNames {
    static let dma: UInt64 = 1 << 0, highmem: UInt64 = 1 << 1, dma32: UInt64 = 1 << 2, movable: UInt64 = 1 << 3
    static let reclaimable: UInt64 = 1 << 4, high: UInt64 = 1 << 5, io: UInt64 = 1 << 6, fs: UInt64 = 1 << 7
    static let zero: UInt64 = 1 << 8, directReclaim: UInt64 = 1 << 10, kswapdReclaim: UInt64 = 1 << 11
    static let write: UInt64 = 1 << 12, noWarn: UInt64 = 1 << 13, retryMayfail: UInt64 = 1 << 14, noFail: UInt64 = 1 << 15
    static let noRetry: UInt64 = 1 << 16, memalloc: UInt64 = 1 << 17, comp: UInt64 = 1 << 18, noMemalloc: UInt64 = 1 << 19
    static let hardwall: UInt64 = 1 << 20, thisNode: UInt64 = 1 << 21, account: UInt64 = 1 << 22, zeroTags: UInt64 = 1 << 23
    static let reclaim = directReclaim | kswapdReclaim
    static let kernel = reclaim | io | fs
    static let user = kernel | hardwall, highUserMovable = user | highmem | movable
    static let transhugeLight = (highUserMovable | comp | noMemalloc | noWarn) & ~reclaim

    static let names: [(UInt64, String)] = [
        (transhugeLight | directReclaim, "GFP_TRANSHUGE"), (transhugeLight, "GFP_TRANSHUGE_LIGHT"),
        (highUserMovable, "GFP_HIGHUSER_MOVABLE"), (user | highmem, "GFP_HIGHUSER"),
        (user, "GFP_USER"), (kernel | account, "GFP_KERNEL_ACCOUNT"), (kernel, "GFP_KERNEL"),
        (reclaim | io, "GFP_NOFS"), (high | kswapdReclaim, "GFP_ATOMIC"), (reclaim, "GFP_NOIO"),
        (kswapdReclaim | noWarn, "GFP_NOWAIT"), (dma, "GFP_DMA"), (highmem, "__GFP_HIGHMEM"), (dma32, "GFP_DMA32"),
        (high, "__GFP_HIGH"), (io, "__GFP_IO"), (fs, "__GFP_FS"), (noWarn, "__GFP_NOWARN"), (retryMayfail, "__GFP_RETRY_MAYFAIL"),
        (noFail, "__GFP_NOFAIL"), (noRetry, "__GFP_NORETRY"), (comp, "__GFP_COMP"), (zero, "__GFP_ZERO"),
        (noMemalloc, "__GFP_NOMEMALLOC"), (memalloc, "__GFP_MEMALLOC"), (hardwall, "__GFP_HARDWALL"), (thisNode, "__GFP_THISNODE"),
        (reclaimable, "__GFP_RECLAIMABLE"), (movable, "__GFP_MOVABLE"), (account, "__GFP_ACCOUNT"), (write, "__GFP_WRITE"),
        (reclaim, "__GFP_RECLAIM"), (directReclaim, "__GFP_DIRECT_RECLAIM"), (kswapdReclaim, "__GFP_KSWAPD_RECLAIM"),
        (zeroTags, "__GFP_ZEROTAGS"),
    ]
}

