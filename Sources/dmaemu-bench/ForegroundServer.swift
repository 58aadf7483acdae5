// A FUSE server (dmaemud, fuse_hello) run in the foreground for a benchmark, and what the
// benchmark does to its files.
import Foundation

func startServer(_ path: String, _ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// SIGTERM, which makes a foreground FUSE server unmount and exit; if it has not within
/// 5 s, SIGKILL and a lazy unmount, so no mount outlives the run.
func stopServer(_ server: Process, _ mountpoint: String) {
    guard server.isRunning else { return }
    server.terminate()
    for _ in 0..<50 where server.isRunning { usleep(100_000) }
    guard server.isRunning else { return }
    kill(server.processIdentifier, SIGKILL)
    server.waitUntilExit()
    umount2(mountpoint, Int32(MNT_DETACH))
}

func waitForPath(_ path: String) throws {
    for _ in 0..<100 {
        if access(path, F_OK) == 0 { return }
        usleep(100_000)
    }
    throw BenchError(description: "\(path) did not appear within 10 s")
}

/// open(O_WRONLY|O_TRUNC) + write + close, as `echo TEXT > path`.
func writeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_TRUNC)
    guard fd >= 0 else { throw BenchError(description: "open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let bytes = Array((text + "\n").utf8)
    guard Foundation.write(fd, bytes, bytes.count) == bytes.count else {
        throw BenchError(description: "write \(path): \(String(cString: strerror(errno)))")
    }
}
