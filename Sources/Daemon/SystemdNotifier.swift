// sd_notify(3) without libsystemd: one datagram of "KEY=VALUE" lines to $NOTIFY_SOCKET
// (a path, or "@name" in the abstract namespace). Nothing happens outside systemd.
import Glibc

public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String]) { socketPath = environment["NOTIFY_SOCKET"] }

    /// Sends the message; returns whether it was delivered (false without a socket).
    @discardableResult
    public func notify(_ message: String) -> Bool {
        guard let socketPath, !socketPath.isEmpty else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in bytes.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL), $0, length) }
        }
        return sent == bytes.count
    }

    /// The watchdog period asked by systemd (WATCHDOG_USEC), if it is meant for us.
    public static func watchdogMicroseconds(_ environment: [String: String]) -> UInt64? {
        if let pid = environment["WATCHDOG_PID"], pid != String(getpid()) { return nil }
        return environment["WATCHDOG_USEC"].flatMap(UInt64.init).flatMap { $0 > 0 ? $0 : nil }
    }
}
