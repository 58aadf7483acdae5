import Foundation
import Glibc
import Testing

/// Whether a test whose prerequisites are `available` runs: always under CI (CI=true, as
/// root with /dev/fuse), so that there a missing prerequisite fails instead of skipping.
func runsHere(_ available: Bool) -> Bool { available || ProcessInfo.processInfo.environment["CI"] == "true" }

/// The built dmaemud, next to this test binary.
let daemonPath = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dmaemud").path

/// The [machine] and [swiotlb] tables of the small machines the daemon tests start.
let smallMachineTables = """
    [machine]
    ram = "1G"
    [swiotlb]
    size = "4M"
    """

/// A counter or gauge in the daemon's metrics (read as cat reads it: Foundation's
/// String(contentsOfFile:) stops at the 4096 bytes stat reports, and metrics is longer).
func metric(_ name: String, _ mountpoint: String) -> Int? {
    cat(mountpoint + "/metrics")?.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        .flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
}

/// dmaemud running `config` at a fresh mountpoint until `body` (given the mountpoint and
/// the process) returns, once `ready` (a path under the mount) exists; then SIGTERM.
func withDaemon(config text: String, ready: String, arguments: [String] = [], _ body: (String, Process) throws -> Void) throws {
    var template = Array("/tmp/dmaemud-test-XXXXXX".utf8CString)
    let mountpoint = String(cString: mkdtemp(&template)!)
    let config = mountpoint + ".toml"
    defer {
        rmdir(mountpoint)
        unlink(config)
    }
    try text.write(toFile: config, atomically: false, encoding: .utf8)
    let daemon = Process()
    daemon.executableURL = URL(fileURLWithPath: daemonPath)
    daemon.arguments = [mountpoint, "--config", config] + arguments
    daemon.standardError = FileHandle.nullDevice
    try daemon.run()
    defer {
        daemon.terminate()
        daemon.waitUntilExit()
    }
    for _ in 0..<500 where access(mountpoint + "/" + ready, F_OK) != 0 { usleep(20_000) }
    try body(mountpoint, daemon)
}

@Suite(.enabled(if: runsHere(access("/dev/fuse", R_OK | W_OK) == 0), "needs /dev/fuse (CI has it, as root)"))
struct DaemonEndToEndTests {
    @Test func startNotifyServeAndStopOnSIGTERM() throws {
        #expect(FileManager.default.isExecutableFile(atPath: daemonPath), "build dmaemud first (make test does)")
        var template = Array("/tmp/dmaemud-e2e-XXXXXX".utf8CString)
        let mountpoint = String(cString: mkdtemp(&template)!)
        defer { rmdir(mountpoint) }
        let socketPath = mountpoint + ".notify"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer {
            close(fd)
            unlink(socketPath)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: daemonPath)
        daemon.arguments = [mountpoint]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = socketPath
        environment["WATCHDOG_USEC"] = "200000"  // WATCHDOG=1 every 100 ms
        daemon.environment = environment
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()

        var buffer = [UInt8](repeating: 0, count: 512)
        let received = recv(fd, &buffer, buffer.count, 0)
        #expect(received > 0)
        let message = String(decoding: buffer[..<max(received, 0)], as: UTF8.self)
        #expect(message.hasPrefix("READY=1\nSTATUS=serving 3 devices at \(mountpoint)"))

        let ping = recv(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[..<max(ping, 0)], as: UTF8.self) == "WATCHDOG=1")

        let pools = mountpoint + "/devices/0000:00:04.0"
        try "chain 128 16\n".write(toFile: pools + "/create_pool", atomically: false, encoding: .utf8)
        try "373959\n".write(toFile: pools + "/dma_pools/chain/alloc", atomically: false, encoding: .utf8)
        #expect(try String(contentsOfFile: pools + "/pools", encoding: .utf8) == "poolinfo - 0.1\nchain            373959 373984  128 11687\n")

        // The shipped HBA was probed at start, as the current kernel lays it out.
        let hba = try String(contentsOfFile: mountpoint + "/devices/0000:85:00.0/pools", encoding: .utf8)
        #expect(hba.contains("\nchain pool       373959 373984  128 11687\n"))

        // The loop counts what it served: above, at least an open, a write and a release
        // for each of the two writes and an open, two reads and a release for each cat.
        #expect(metric("dmaemu_fuse_requests_total", mountpoint) ?? 0 >= 14)

        daemon.terminate()  // SIGTERM
        daemon.waitUntilExit()
        #expect(daemon.terminationReason == .exit && daemon.terminationStatus == 0)
        // Watchdog pings until the stop, then STOPPING.
        var last = ""
        for _ in 0..<1000 {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard n > 0 else { break }
            last = String(decoding: buffer[..<n], as: UTF8.self)
        }
        #expect(last.hasPrefix("STOPPING=1"))
        // The mountpoint is released: an empty directory again.
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountpoint).isEmpty)
        #expect(!String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: "/proc/self/mounts"))) ?? Data(), as: UTF8.self).contains(mountpoint))
    }
}

@Suite(.enabled(if: runsHere(access("/dev/fuse", R_OK | W_OK) == 0), "needs /dev/fuse (CI has it, as root)"))
struct PollOptionTests {
    @Test func pollZeroNeverPollsAndOutOfRangeIsRefused() throws {
        let config = """
            [machine]
            ram = "256M"
            [[device]]
            driver = "generic"
            name = "gen0"
            """
        try withDaemon(config: config, ready: "devices/gen0/state", arguments: ["--poll-us", "0"]) { mountpoint, _ in
            for _ in 0..<50 {
                #expect(cat(mountpoint + "/devices/gen0/state") == "bound\n")
                // The reader has served the cat's last request (its release) and sleeps
                // again before the next cat: under a loaded machine's other tests, cats
                // back to back found it still busy and queued without a wakeup.
                usleep(10_000)
            }
            // 50 cats are 200 requests at least; with no window every one that was not
            // queued already woke the reader (each cat's first at least), and none was
            // caught polling.
            #expect(metric("dmaemu_fuse_requests_total", mountpoint) ?? 0 >= 200)
            #expect(metric("dmaemu_fuse_requests_polled_total", mountpoint) == 0)
            #expect(metric("dmaemu_fuse_reader_wakeups_total", mountpoint) ?? 0 >= 50)
        }
        let refused = Process()
        refused.executableURL = URL(fileURLWithPath: daemonPath)
        refused.arguments = ["/nonexistent", "--poll-us", "10001"]
        let message = Pipe()
        refused.standardError = message
        try refused.run()
        refused.waitUntilExit()
        #expect(refused.terminationStatus == 64)  // EX_USAGE, before anything is mounted
        let text = String(decoding: message.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("--poll-us must be 0...10000"))
    }
}
