// The machine's printk ring: every engine reports through it, in the kernel's exact
// message texts, so that tests can read what a kernel would have printed and the daemon
// can show the same lines in kmsg. A bounded ring keeps a noisy driver from growing it
// without limit, as the kernel's log buffer does.
import Lib
import Locking

/// A printk log level; the raw value is the syslog priority the kernel uses.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case emerg = 0, alert, crit, err, warning, notice, info, debug

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// One printed line, without its trailing newline.
public struct KernelMessage: Sendable, Equatable {
    public let sequence: UInt64
    public let level: LogLevel
    public let text: String
    /// Microseconds since the log was created (the machine's boot), as printk stamps it.
    public let microseconds: UInt64

    public init(sequence: UInt64, level: LogLevel, text: String, microseconds: UInt64) {
        self.sequence = sequence
        self.level = level
        self.text = text
        self.microseconds = microseconds
    }

    /// The line as dmesg prints it: "[    1.234567] text".
    public var dmesgLine: String {
        let seconds = String(microseconds / 1_000_000)
        let fraction = String(microseconds % 1_000_000)
        return "[" + String(repeating: " ", count: max(0, 5 - seconds.count)) + seconds + "."
            + String(repeating: "0", count: 6 - fraction.count) + fraction + "] " + text
    }
}

public final class KernelLog: Sendable {
    private struct Ring {
        var messages: [KernelMessage] = []
        var head = 0
        var nextSequence: UInt64 = 0
    }

    public let capacity: Int
    private let ring = PthreadMutex(Ring())
    private let boot = ContinuousClock.now
    private let sink: (@Sendable (KernelMessage) -> Void)?

    /// `sink` sees every line as it is printed (the daemon forwards them to its logger).
    public init(capacity: Int = 4096, sink: (@Sendable (KernelMessage) -> Void)? = nil) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.sink = sink
    }

    /// The corresponding kernel function is `printk()`; one call prints one line.
    public func printk(_ level: LogLevel, _ text: String) {
        let message = ring.withLock { ring in
            let micros = UInt64((ContinuousClock.now - boot).microseconds)
            let message = KernelMessage(sequence: ring.nextSequence, level: level, text: text, microseconds: micros)
            ring.nextSequence += 1
            if ring.messages.count < capacity {
                ring.messages.append(message)
            } else {
                ring.messages[ring.head] = message
                ring.head = (ring.head + 1) % capacity
            }
            return message
        }
        sink?(message)
    }

    /// The lines still in the ring, oldest first.
    public var messages: [KernelMessage] {
        ring.withLock { ring in
            Array(ring.messages[ring.head...] + ring.messages[..<ring.head])
        }
    }

    /// The texts of the lines printed after `sequence` (all of them for nil), oldest first.
    public func texts(after sequence: UInt64? = nil) -> [String] {
        messages.filter { sequence == nil || $0.sequence > sequence! }.map(\.text)
    }

    /// The sequence number the next line will get; lets a caller read only what follows.
    public var nextSequence: UInt64 { ring.withLock { $0.nextSequence } }
}
