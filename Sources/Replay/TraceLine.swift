// One line of `trace` or `trace_pipe` taken apart without making Strings: the context
// that trace_print_context() printed ("<task>-<pid> [<cpu>] <flags> <secs>.<usecs>: ")
// and the event's name, then the TP_printk fields as key=value tokens, found by name,
// so that a kernel that adds or drops a field (dir= came to dma_alloc in 6.13) still
// reads. Values are byte ranges of the line until a field is asked for.
import Trace

/// A byte range of the line being read.
struct Span {
    var start: Int
    var end: Int
    var isEmpty: Bool { start >= end }
    var count: Int { end - start }
}

struct TraceLine {
    let bytes: UnsafeBufferPointer<UInt8>
    var task = Span(start: 0, end: 0)
    var pid: Int32 = 0
    var cpu = 0
    var flags: UInt64 = 0
    var nanoseconds: UInt64 = 0
    var event = Span(start: 0, end: 0)
    /// Tokens of the fields: the key (empty for a bare word) and the value.
    var keys: [Span] = []
    var values: [Span] = []

    /// The token arrays are the caller's, lent for this line (`spare`): a million lines
    /// make no arrays of their own.
    init(_ bytes: UnsafeBufferPointer<UInt8>, spare: inout (keys: [Span], values: [Span])) {
        self.bytes = bytes
        swap(&keys, &spare.keys)
        swap(&values, &spare.values)
    }

    /// Gives the token arrays back to the caller.
    mutating func giveBack(_ spare: inout (keys: [Span], values: [Span])) {
        swap(&keys, &spare.keys)
        swap(&values, &spare.values)
    }

    func slice(_ span: Span) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: bytes[span.start..<span.end]) }

    func string(_ span: Span) -> String { String(decoding: slice(span), as: UTF8.self) }

    func equals(_ span: Span, _ literal: StaticString) -> Bool {
        guard span.count == literal.utf8CodeUnitCount else { return false }
        return memcmp(bytes.baseAddress! + span.start, literal.utf8Start, span.count) == 0
    }

    static let space = UInt8(ascii: " ")

    /// The context and the event name; the fields are left for `tokenize`. A reason
    /// when the line is not an event line of a trace.
    mutating func readContext() -> String? {
        let n = bytes.count
        // "[<cpu>]" with only digits inside, the first such after the task and pid.
        var open = -1
        var i = 0
        while i < n {
            if bytes[i] == UInt8(ascii: "[") {
                var j = i + 1
                while j < n && isDigit(bytes[j]) { j += 1 }
                if j > i + 1 && j < n && bytes[j] == UInt8(ascii: "]") {
                    open = i
                    break
                }
            }
            i += 1
        }
        guard open > 0 else { return "not a trace line (no [cpu])" }
        guard let cpu = parseDecimal(slice(Span(start: open + 1, end: indexOf(UInt8(ascii: "]"), from: open)))), cpu < 4096
        else { return "bad cpu" }
        self.cpu = Int(cpu)
        // Back from the "[": spaces, an optional "(tgid)", spaces, the pid, the "-".
        var k = open - 1
        while k >= 0 && bytes[k] == Self.space { k -= 1 }
        if k >= 0 && bytes[k] == UInt8(ascii: ")") {
            while k >= 0 && bytes[k] != UInt8(ascii: "(") { k -= 1 }
            k -= 1
            while k >= 0 && bytes[k] == Self.space { k -= 1 }
        }
        let pidEnd = k + 1
        while k >= 0 && isDigit(bytes[k]) { k -= 1 }
        guard k >= 0, k + 1 < pidEnd, bytes[k] == UInt8(ascii: "-"), let pid = parseDecimal(slice(Span(start: k + 1, end: pidEnd))),
            pid <= UInt64(Int32.max)
        else { return "no <task>-<pid> before [cpu]" }
        self.pid = Int32(pid)
        var taskStart = 0
        while taskStart < k && bytes[taskStart] == Self.space { taskStart += 1 }
        task = Span(start: taskStart, end: k)
        // After "] ": the optional irq-info column, then the timestamp and ": ".
        var p = indexOf(UInt8(ascii: "]"), from: open) + 1
        var word = nextWord(&p)
        if !word.isEmpty && bytes[word.end - 1] != UInt8(ascii: ":") {
            guard word.count <= 5 else { return "bad context flags" }
            // Packed as Tracer.flagsWord packs them: the first character in the low byte.
            flags = 0
            for i in 0..<word.count { flags |= UInt64(bytes[word.start + i]) << (8 * UInt64(i)) }
            word = nextWord(&p)
        }
        guard word.count > 1, bytes[word.end - 1] == UInt8(ascii: ":"), let time = timestamp(Span(start: word.start, end: word.end - 1))
        else { return "no timestamp" }
        nanoseconds = time
        // "<event>: " (a kprobe's name may carry its group: "dmaemu/dma_pool_alloc" is not printed that way).
        let name = nextWord(&p)
        guard name.count > 1, bytes[name.end - 1] == UInt8(ascii: ":") else { return "no event name" }
        event = Span(start: name.start, end: name.end - 1)
        fieldsStart = p
        return nil
    }

    private(set) var fieldsStart = 0

    /// "<secs>.<fraction>" (microseconds by default, nanoseconds with a ns clock) in ns,
    /// or a counter clock's plain number.
    func timestamp(_ span: Span) -> UInt64? {
        guard let dot = (span.start..<span.end).first(where: { bytes[$0] == UInt8(ascii: ".") }) else {
            return parseDecimal(slice(span))
        }
        guard let seconds = parseDecimal(slice(Span(start: span.start, end: dot))),
            let fraction = parseDecimal(slice(Span(start: dot + 1, end: span.end))), span.end - dot - 1 <= 9, seconds < 1 << 33
        else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<(9 - (span.end - dot - 1)) { scale *= 10 }
        return seconds * 1_000_000_000 + fraction * scale
    }

    /// Splits the fields into tokens: `key=value` (a value in quotes may hold spaces), or
    /// a bare word (the device name, "[TRUNCATED]", "FORCE").
    mutating func tokenize() {
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        var p = fieldsStart
        let n = bytes.count
        while p < n {
            while p < n && bytes[p] == Self.space { p += 1 }
            guard p < n else { break }
            let start = p
            var equals = -1
            while p < n && bytes[p] != Self.space {
                if bytes[p] == UInt8(ascii: "=") && equals < 0 {
                    equals = p
                    if p + 1 < n && bytes[p + 1] == UInt8(ascii: "\"") {
                        // A quoted value ends at the quote before a space and a key, or at the end.
                        var q = p + 2
                        while q < n && !(bytes[q] == UInt8(ascii: "\"") && (q + 1 == n || bytes[q + 1] == Self.space)) { q += 1 }
                        keys.append(Span(start: start, end: equals))
                        values.append(Span(start: p + 2, end: min(q, n)))
                        p = min(q + 1, n)
                        equals = -2
                        break
                    }
                }
                p += 1
            }
            if equals == -2 { continue }
            if equals >= 0 {
                keys.append(Span(start: start, end: equals))
                values.append(Span(start: equals + 1, end: p))
            } else {
                keys.append(Span(start: start, end: start))
                values.append(Span(start: start, end: p))
            }
        }
    }

    /// The value of `key`, if the line has it.
    func value(_ key: StaticString) -> Span? {
        for i in keys.indices where equals(keys[i], key) { return values[i] }
        return nil
    }

    /// The n-th bare word.
    func word(_ n: Int) -> Span? {
        var seen = 0
        for i in keys.indices where keys[i].isEmpty {
            if seen == n { return values[i] }
            seen += 1
        }
        return nil
    }

    func hasWord(_ literal: StaticString) -> Bool { keys.indices.contains { keys[$0].isEmpty && equals(values[$0], literal) } }

    private func indexOf(_ byte: UInt8, from: Int) -> Int {
        var i = from
        while i < bytes.count && bytes[i] != byte { i += 1 }
        return i
    }

    private func nextWord(_ p: inout Int) -> Span {
        while p < bytes.count && bytes[p] == Self.space { p += 1 }
        let start = p
        while p < bytes.count && bytes[p] != Self.space { p += 1 }
        return Span(start: start, end: p)
    }
}

@inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

#if canImport(Glibc)
import Glibc
#endif
