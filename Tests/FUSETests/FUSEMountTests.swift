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
    /// fusermount3 stays beside the mount (auto_unmount) holding stdio and its socket, and
    /// nothing else of ours (forked by libfuse it inherited every fd the process had open,
    /// and other threads' sockets could be taken for its own); stop() unmounts and reaps it.
    @Test func fusermount3HoldsOnlyItsSocket() throws {
        var inherited: [Int32] = [-1, -1]
        #expect(pipe(&inherited) == 0)  // not close-on-exec, as a test runner's pipes are not
        defer { inherited.forEach { close($0) } }
        let (root, _) = counterTree()
        let mount = try MountedTree(root)
        let helpers = Self.children().filter { Self.arguments($0).first == "fusermount3" && Self.arguments($0).last == mount.path }
        // What its fds point at (it may be closing the /dev/fuse it sent us, or opening
        // /dev/null for its stdio, as it settles in to wait).
        let files = helpers.first.map(Self.openFiles) ?? [:]
        let ours = Self.openFiles(getpid())
        mount.stop()
        #expect(helpers.count == 1)
        #expect(files[3]?.hasPrefix("socket:") == true, "fusermount3's fd 3, named in its _FUSE_COMMFD: \(files)")
        let ownOpens: Set = ["/dev/fuse", "/dev/null"]
        #expect(files.filter { $0.key > 3 && ours.values.contains($0.value) && !ownOpens.contains($0.value) }.isEmpty, "fusermount3 holds our files: \(files)")
        #expect(!files.values.contains(ours[Int(inherited[0])] ?? "none"))
        #expect(helpers.allSatisfy { kill($0, 0) == -1 && errno == ESRCH }, "fusermount3 exited and was reaped")
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        #expect(!mounts.contains(" \(mount.path) "))
    }

    /// The test process's children, from every thread's /proc/self/task/*/children.
    static func children() -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.flatMap { task in
            ((try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8)) ?? "").split(separator: " ").compactMap { pid_t($0) }
        }
    }

    /// fd -> where /proc/PID/fd/fd links ("pipe:[123]", "/dev/fuse").
    static func openFiles(_ pid: pid_t) -> [Int: String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        var files: [Int: String] = [:]
        for name in names {
            if let fd = Int(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)") { files[fd] = target }
        }
        return files
    }

    static func arguments(_ pid: pid_t) -> [String] {
        guard let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }
}
