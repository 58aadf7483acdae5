// How a sysfs store reads its buffer: kstrtoul-style numbers (decimal, 0x hex, 0 octal,
// nothing around them) and space-separated words; anything else is EINVAL.
import DMAPool
import SystemPackage

enum StoreParsing {
    /// kstrtoull(text, 0): a whole unsigned number, at most `limit`.
    static func number(_ text: String, max limit: UInt64 = .max) throws(Errno) -> UInt64 {
        let value: UInt64?
        if text.hasPrefix("0x") || text.hasPrefix("0X") {
            value = UInt64(text.dropFirst(2), radix: 16)
        } else if text.count > 1 && text.hasPrefix("0") {
            value = UInt64(text.dropFirst(), radix: 8)
        } else {
            value = UInt64(text, radix: 10)
        }
        guard let value, value <= limit else { throw .invalidArgument }
        return value
    }

    /// memparse(): a number with an optional K, M or G suffix (binary), at most `limit`.
    static func size(_ text: String, max limit: UInt64 = .max) throws(Errno) -> UInt64 {
        let shifts: [Character: UInt64] = ["k": 10, "K": 10, "m": 20, "M": 20, "g": 30, "G": 30]
        guard let last = text.last, let shift = shifts[last] else { return try number(text, max: limit) }
        let value = try number(String(text.dropLast()), max: limit >> shift)
        return value << shift
    }

    static func words(_ text: String) -> [String] { text.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
}

/// The pool directory name: the name as dma_pool_create keeps it (31 bytes), with spaces
/// made underscores and '/' made '!' as sysfs does for kobject names.
func directoryName(ofPool name: String) -> String {
    String(DMAPool.keptName(name).map { $0 == " " ? "_" : $0 == "/" ? "!" : $0 })
}
