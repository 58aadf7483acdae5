import ControlFS
import FUSE
import Foundation
import Glibc
import SystemPackage

/// A control tree mounted for real on a fresh temporary directory, served by a thread of
/// the test process, unmounted by `stop()`.
final class MountedTree: @unchecked Sendable {
    let server: FUSEServer
    let path: String
    private let done = DispatchSemaphore(value: 0)

    /// Where FUSE is; under CI (CI=true, root, /dev/fuse) always, so that a missing
    /// /dev/fuse fails the mount tests rather than skipping them.
    static var available: Bool { access("/dev/fuse", R_OK | W_OK) == 0 || ProcessInfo.processInfo.environment["CI"] == "true" }

    init(_ root: ControlDirectory, pollMicroseconds: UInt64 = MountOptions.defaultPollMicroseconds) throws {
        var template = Array("/tmp/dmaemu-fuse-XXXXXX".utf8CString)
        path = String(cString: mkdtemp(&template)!)
        server = FUSEServer(root: root, mountpoint: path)
        try server.mount(MountOptions(signalHandlers: false, pollMicroseconds: pollMicroseconds))
        let server = self.server
        let done = self.done
        Thread.detachNewThread {
            server.run()
            done.signal()
        }
    }

    func stop() {
        server.stop()
        done.wait()
        rmdir(path)
    }

    /// cat: open, read to the end, close. Returns the text or the errno.
    func read(_ relative: String) -> Result<String, Errno> {
        let fd = open(path + "/" + relative, O_RDONLY)
        guard fd >= 0 else { return .failure(Errno(rawValue: errno)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            guard n >= 0 else { return .failure(Errno(rawValue: errno)) }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    /// echo TEXT > file: open with O_TRUNC, one write, close. Returns 0 or the errno.
    func write(_ relative: String, _ text: String) -> Int32 {
        let fd = open(path + "/" + relative, O_WRONLY | O_TRUNC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return Glibc.write(fd, bytes, bytes.count) == bytes.count ? 0 : errno
    }

    func list(_ relative: String) -> [String]? {
        try? FileManager.default.contentsOfDirectory(atPath: path + "/" + relative).sorted()
    }
}
