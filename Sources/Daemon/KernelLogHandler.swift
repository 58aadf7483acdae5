// swift-log's handler for dmaemud: each record becomes one kernel-style line on stderr,
// "<N>text" under systemd (JOURNAL_STREAM set; journald reads the syslog priority from the
// prefix), "[seconds.micros] text" as dmesg prints it otherwise. The printk ring's lines
// reach it through `forward(_:)`, carrying their exact syslog priority as metadata.
import Foundation
import Lib
import Logging
import Printk

public struct KernelLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let journal: Bool
    let start: ContinuousClock.Instant

    public init(level: Logger.Level, journal: Bool, start: ContinuousClock.Instant = .now) {
        logLevel = level
        self.journal = journal
        self.start = start
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let priority = event.metadata?["priority"].flatMap { Int("\($0)") } ?? Self.priority(event.level)
        let text: String
        if journal {
            text = "<\(priority)>\(event.message)\n"
        } else {
            let micros = event.metadata?["us"].flatMap { UInt64("\($0)") } ?? Self.microseconds(since: start)
            let message = KernelMessage(sequence: 0, level: LogLevel(rawValue: priority) ?? .info, text: "\(event.message)", microseconds: micros)
            text = message.dmesgLine + "\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// The syslog priority of a swift-log level.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    /// The swift-log level of a printk level.
    public static func level(_ level: LogLevel) -> Logger.Level {
        switch level {
        case .emerg, .alert, .crit: .critical
        case .err: .error
        case .warning: .warning
        case .notice: .notice
        case .info: .info
        case .debug: .debug
        }
    }

    static func microseconds(since start: ContinuousClock.Instant) -> UInt64 { UInt64((ContinuousClock.now - start).microseconds) }
}

extension Logger {
    /// Logs a printk line with its own priority and timestamp.
    public func forward(_ message: KernelMessage) {
        log(
            level: KernelLogHandler.level(message.level), "\(message.text)",
            metadata: ["priority": "\(message.level.rawValue)", "us": "\(message.microseconds)"])
    }
}
