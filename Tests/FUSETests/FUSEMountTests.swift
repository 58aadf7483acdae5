import ControlFS
import FUSE
import Foundation
import Glibc
import Locking
import SystemPackage
import Testing

final class Counter: Sendable {
    let value = PthreadMutex(0)
    func withLock<R: Sendable>(_ body: (inout Int) -> R) -> R { value.withLock { body(&$0) } }
}

/// A counter device: `count` shows a number, `add` takes "N" and adds it.
func counterTree() -> (ControlDirectory, Counter) {
    let root = ControlDirectory()
    let count = Counter()
    let device = root.directory("devices").directory("0000:00:01.0")
    device.add("count", ControlAttribute(show: { "\(count.withLock { $0 })\n" }))
    device.add("add", ControlAttribute(store: { text throws(Errno) in
        guard let n = Int(text), n >= 0, n <= 1_000_000 else { throw .invalidArgument }
        count.withLock { $0 += n }
    }))
    device.add("pools", ControlAttribute(show: { "poolinfo - 0.1\nchain pool       373959 373984  128 11687\n" }))
    return (root, count)
}

@Suite(.serialized, .enabled(if: MountedTree.available, "needs /dev/fuse (CI has it, as root)"))
struct FUSEMountTests {
    @Test func catAndEchoWorkAsOnSysfs() throws {
        let (root, count) = counterTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        #expect(try mount.read("devices/0000:00:01.0/pools").get() == "poolinfo - 0.1\nchain pool       373959 373984  128 11687\n")
        #expect(mount.write("devices/0000:00:01.0/add", "100\n") == 0)
        #expect(mount.write("devices/0000:00:01.0/add", "5") == 0)
        #expect(try mount.read("devices/0000:00:01.0/count").get() == "105\n")
        // A bad write fails with EINVAL and changes nothing.
        #expect(mount.write("devices/0000:00:01.0/add", "lots\n") == EINVAL)
        #expect(mount.write("devices/0000:00:01.0/add", "-1") == EINVAL)
        #expect(count.withLock { $0 } == 105)
        // Read-only and write-only attributes refuse the other direction, even to root.
        #expect(mount.write("devices/0000:00:01.0/count", "1") == EACCES)
        if case .failure(let error) = mount.read("devices/0000:00:01.0/add") { #expect(error == .permissionDenied) } else { Issue.record("read of add succeeded") }
        #expect(mount.list("devices/0000:00:01.0") == ["add", "count", "pools"])
    }

    @Test func partialReadsAtOffsetsSeeOneSnapshot() throws {
        let (root, _) = counterTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        let fd = open(mount.path + "/devices/0000:00:01.0/pools", O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 10)
        #expect(pread(fd, &buffer, 10, 5) == 10)
        #expect(String(decoding: buffer, as: UTF8.self) == "nfo - 0.1\n")
        // 15 + 42 = 57 bytes: the last 4 start at 53.
        #expect(pread(fd, &buffer, 10, 53) == 4)
        #expect(String(decoding: buffer[..<4], as: UTF8.self) == "687\n")
        #expect(pread(fd, &buffer, 10, 4000) == 0)
    }

    @Test func theTreeCannotBeReshapedByFileOperations() throws {
        let (root, _) = counterTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        #expect(mkdir(mount.path + "/devices/new", 0o755) == -1 && errno == EPERM)
        #expect(unlink(mount.path + "/devices/0000:00:01.0/count") == -1 && errno == EPERM)
        #expect(open(mount.path + "/devices/newfile", O_WRONLY | O_CREAT, 0o644) == -1 && errno == EPERM)
        #expect(chmod(mount.path + "/devices/0000:00:01.0/count", 0o666) == -1 && errno == EPERM)
        #expect(truncate(mount.path + "/devices/0000:00:01.0/add", 0) == 0)
    }

    @Test func devicesComeAndGoWhileListed() throws {
        let (root, _) = counterTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        let devices = root.directory("devices")
        #expect(mount.list("devices") == ["0000:00:01.0"])
        devices.directory("dm-0").add("stats", ControlAttribute(show: { "ios 0\n" }))
        #expect(mount.list("devices") == ["0000:00:01.0", "dm-0"])
        #expect(try mount.read("devices/dm-0/stats").get() == "ios 0\n")
        devices.remove("dm-0")
        // The kernel's cached entry is invalidated from the server's queue: allow it a moment.
        var gone = false
        for _ in 0..<100 where !gone {
            if case .failure(.noSuchFileOrDirectory) = mount.read("devices/dm-0/stats") { gone = true } else { usleep(10_000) }
        }
        #expect(gone)
        #expect(mount.list("devices") == ["0000:00:01.0"])
    }

    @Test func concurrentReadersAndWriters() throws {
        let (root, count) = counterTree()
        let mount = try MountedTree(root)
        defer { mount.stop() }
        let failures = PthreadMutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for _ in 0..<200 {
                if worker % 2 == 0 {
                    if mount.write("devices/0000:00:01.0/add", "1\n") != 0 { failures.withLock { $0 += 1 } }
                } else if (try? mount.read("devices/0000:00:01.0/count").get())?.hasSuffix("\n") != true {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(count.withLock { $0 } == 400)
    }

    @Test func aMissingOrBusyMountpointIsAClearError() throws {
        let (root, _) = counterTree()
        #expect(throws: FUSEError.mountpointMissing("/nonexistent/dmaemu")) {
            try FUSEServer(root: root, mountpoint: "/nonexistent/dmaemu").mount(MountOptions(signalHandlers: false))
        }
        let mount = try MountedTree(root)
        defer { mount.stop() }
        #expect(throws: FUSEError.mountpointBusy(mount.path)) {
            try FUSEServer(root: root, mountpoint: mount.path).mount(MountOptions(signalHandlers: false))
        }
    }
}
