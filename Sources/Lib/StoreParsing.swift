// How a sysfs store or a module parameter reads its text: kstrtoull()'s numbers (decimal,
// 0x hex, 0 octal, nothing around them), memparse()'s sizes and space-separated words;
// anything else is EINVAL.
import SystemPackage

public enum StoreParsing {
    /// kstrtoull(text, 0): a whole unsigned number, at most `limit`.
    public static func number(_ text: String, max limit: UInt64 = .max) throws(Errno) -> UInt64 {
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

    /// kstrtoint(text, 0): a whole signed number of 32 bits (a debugfs atomic_t's).
    public static func int32(_ text: String) throws(Errno) -> Int32 {
        guard text.hasPrefix("-") else { return Int32(try number(text, max: UInt64(Int32.max))) }
        return Int32(truncatingIfNeeded: -Int64(try number(String(text.dropFirst()), max: UInt64(Int32.max) + 1)))
    }

    /// memparse(): a number with an optional K, M or G suffix (binary), at most `limit`.
    public static func size(_ text: String, max limit: UInt64 = .max) throws(Errno) -> UInt64 {
        let shifts: [Character: UInt64] = ["k": 10, "K": 10, "m": 20, "M": 20, "g": 30, "G": 30]
        guard let last = text.last, let shift = shifts[last] else { return try number(text, max: limit) }
        let value = try number(String(text.dropLast()), max: limit >> shift)
        return value << shift
    }

    public static func words(_ text: String) -> [String] { text.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
}
